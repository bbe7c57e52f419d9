"""Issue 15, templates: `zkherd run --template SRC.j2=DEST` and `zkherd render`. Real ZooKeeper,
real `zkherd` processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.integration.test_mirror_shapes import SERVICE
from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

# a child that records each start, so that restarts can be counted
COUNTING = ["sh", "-c", 'echo start >> "$STARTS"; while :; do sleep 0.1; done']


def tpl(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_with(zk_server, tmp_path, templates, *extra, child=SERVICE, env=None, log="run.log"):
    alert = 'echo "$ZKHERD_ALERT $ZKHERD_ALERT_MESSAGE" >> %s' % (tmp_path / "alerts")
    args = ["run", "--zk", zk_server.hosts, "--change-delay", "0.05", "--alert", alert]
    for src, dest in templates:
        args += ["--template", "%s=%s" % (src, dest)]
    return Zkherd([*args, *extra, "--", *child], tmp_path / log, env=env)


def alerts(tmp_path):
    path = tmp_path / "alerts"
    return path.read_text().splitlines() if path.exists() else []


def zkherd_once(args, timeout=30):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "zkherd", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_functions_render_znode_children_tree_farm(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/app/port", b"8080", makepath=True)
    zk.create(zk_base + "/app/conf", json.dumps({"name": "web", "n": 3}).encode())
    zk.create(zk_base + "/app/yconf", b"a: [1, 2]\n")
    zk.create(zk_base + "/app/tree/x/y", b"deep", makepath=True)
    zk.set(zk_base + "/app/tree", b"top")
    zk.create(zk_base + "/farm/m2", json.dumps({"ip": "10.0.0.2", "enabled": 1}).encode(), makepath=True)
    zk.create(zk_base + "/farm/m1", json.dumps({"ip": "10.0.0.1", "enabled": 1}).encode())
    zk.create(zk_base + "/farm/m3", json.dumps({"ip": "10.0.0.3", "enabled": 0}).encode())
    base = zk_base
    src = tpl(tmp_path, "t.j2", (
        "port={{ znode('%(b)s/app/port') }}\n"
        "name={{ znode('%(b)s/app/conf', type='json').name }} n={{ znode('%(b)s/app/conf', type='json').n * 2 }}\n"
        "yaml={{ znode('%(b)s/app/yconf', type='yaml').a }}\n"
        "kids={{ children('%(b)s/app') | join(',') }}\n"
        "tree={{ tree('%(b)s/app/tree') | tojson }}\n"
        "{% for name, m in farm('%(b)s/farm', filter='enabled=1').items() %}server {{ name }} {{ m.ip }}\n"
        "{% endfor %}"
        "absent={{ znode('%(b)s/nope', default='dflt') }}\n").replace("%(b)s", base))
    dest = tmp_path / "out" / "app.conf"
    dest.parent.mkdir()
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, dest)])
    assert done.returncode == 0, done.stderr
    text = dest.read_text()
    assert "port=8080\n" in text
    assert "name=web n=6\n" in text
    assert "yaml=[1, 2]\n" in text
    assert "kids=conf,port,tree,yconf\n" in text
    assert json.loads(text.split("tree=")[1].split("\n")[0]) == {"x": {"y": "deep"}}
    assert "server m1 10.0.0.1\nserver m2 10.0.0.2\n" in text and "m3" not in text
    assert "absent=dflt\n" in text


def test_templates_and_mirror_change_as_one_set(zk_server, zk, zk_base, tmp_path):
    """Two templates and a mirrored file: a transaction that changes the znodes of all three is one
    set: the check command records every staged set; no set ever holds one side without the other."""
    zk.create(zk_base + "/c/a", b"0", makepath=True)
    zk.create(zk_base + "/c/b", b"0")
    zk.create(zk_base + "/c/m", b"0")
    t1 = tpl(tmp_path, "a.j2", "a={{ znode('%s/c/a') }}\n" % zk_base)
    t2 = tpl(tmp_path, "b.j2", "b={{ znode('%s/c/b') }}\n" % zk_base)
    etc = tmp_path / "etc"
    etc.mkdir()
    record = tmp_path / "sets"
    check = ('for f in $ZKHERD_STAGED_FILES; do printf "%%s " "$(cat "${f#*=}")"; done >> %s; echo >> %s'
             % (record, record))
    runner = run_with(zk_server, tmp_path, [(t1, etc / "a"), (t2, etc / "b")], "--mirror",
                      "%s=%s" % (etc / "m", zk_base + "/c/m"), "--check-cmd", check, "--on-change", "none")
    try:
        runner.wait_log("started child", timeout=30)
        for i in range(1, 16):
            txn = zk.transaction()
            for name in "abm":
                txn.set_data(zk_base + "/c/" + name, str(i).encode())
            txn.commit()
            time.sleep(0.02 * (i % 3))
        wait_for(lambda: (etc / "a").read_text() == "a=15\n" and (etc / "b").read_text() == "b=15\n"
                 and (etc / "m").read_text() == "15", 20, message=runner.log)
        for line in record.read_text().splitlines():
            values = {word.split("=")[-1] for word in line.split()}
            assert len(values) == 1, (line, record.read_text())
        assert not runner.has("Traceback|ERROR")
    finally:
        runner.stop()


def test_burst_of_changes_one_restart_newest_content(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/v", b"0", makepath=True)
    src = tpl(tmp_path, "v.j2", "v={{ znode('%s/v') }}\n" % zk_base)
    dest = tmp_path / "v.conf"
    starts = tmp_path / "starts"
    runner = run_with(zk_server, tmp_path, [(src, dest)], "--change-delay", "0.5", child=COUNTING,
                      env={"STARTS": str(starts)})
    try:
        runner.wait_log("started child", timeout=30)
        for i in range(1, 21):
            zk.set(zk_base + "/v", str(i).encode())
        wait_for(lambda: dest.read_text() == "v=20\n", 15)
        wait_for(lambda: len(starts.read_text().splitlines()) == 2, 15)
        time.sleep(1.5)
        assert len(starts.read_text().splitlines()) == 2
    finally:
        runner.stop()


def test_missing_znode_waits_at_start_then_keeps_the_last_file(zk_server, zk, zk_base, tmp_path):
    src = tpl(tmp_path, "m.j2", "v={{ znode('%s/late') }}\n" % zk_base)
    dest = tmp_path / "m.conf"
    runner = run_with(zk_server, tmp_path, [(src, dest)], "--on-change", "none")
    try:
        runner.wait_log("waiting for.*%s/late" % zk_base, timeout=30)
        assert not dest.exists() and not runner.has("started child")
        zk.create(zk_base + "/late", b"1")
        runner.wait_log("started child", timeout=15)
        assert dest.read_text() == "v=1\n"
        zk.delete(zk_base + "/late")
        runner.wait_log("missing.*%s/late" % zk_base, timeout=15)
        assert dest.read_text() == "v=1\n" and runner.proc.poll() is None
        zk.create(zk_base + "/late", b"2")
        wait_for(lambda: dest.read_text() == "v=2\n", 15)
    finally:
        runner.stop()


def test_malformed_template_exits_64(zk_server, tmp_path):
    src = tpl(tmp_path, "bad.j2", "line one\n{{ znode('/x') \n")
    done = zkherd_once(["run", "--zk", zk_server.hosts, "--template", "%s=%s" % (src, tmp_path / "o"), "--", "true"])
    assert done.returncode == 64 and "bad.j2" in done.stderr and "line 2" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (tmp_path / "none.j2", tmp_path / "o")])
    assert done.returncode == 64 and "none.j2" in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()


def test_template_raising_at_render_time_keeps_the_last_file(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/d", b"2", makepath=True)
    zk.create(zk_base + "/j", b'{"k": 1}')
    src = tpl(tmp_path, "r.j2", "q={{ 10 // (znode('%(b)s/d') | int) }} k={{ znode('%(b)s/j', type='json').k }}\n"
              % {"b": zk_base})
    dest = tmp_path / "r.conf"
    runner = run_with(zk_server, tmp_path, [(src, dest)], "--on-change", "none")
    try:
        runner.wait_log("started child", timeout=30)
        assert dest.read_text() == "q=5 k=1\n"
        child = runner.child_pid
        zk.set(zk_base + "/d", b"0")  # ZeroDivisionError
        runner.wait_log("cannot render.*r.j2", timeout=15)
        zk.set(zk_base + "/d", b"1")
        zk.set(zk_base + "/j", b"{not json")
        runner.wait_log("cannot render.*%s/j" % zk_base, timeout=15)
        time.sleep(1.5)
        assert dest.read_text() == "q=5 k=1\n" and runner.child_pid == child
        kinds = [line.split()[0] for line in alerts(tmp_path)]
        assert kinds.count("render-failed") == 2, alerts(tmp_path)
        zk.set(zk_base + "/j", b'{"k": 7}')
        wait_for(lambda: dest.read_text() == "q=10 k=7\n", 15, message=runner.log)
        assert not runner.has("Traceback")
    finally:
        runner.stop()


def test_unreachable_zookeeper_at_start_69(tmp_path):
    src = tpl(tmp_path, "u.j2", "{{ znode('/x') }}\n")
    dest = tmp_path / "u.conf"
    done = zkherd_once(["run", "--zk", "127.0.0.1:1", "--connect-timeout", "1", "--template",
                        "%s=%s" % (src, dest), "--", "true"])
    assert done.returncode == 69, done.stderr
    done = zkherd_once(["render", "--zk", "127.0.0.1:1", "--connect-timeout", "1", "--once", "%s=%s" % (src, dest)])
    assert done.returncode == 69, done.stderr
    assert not dest.exists() and "Traceback" not in done.stderr


def test_check_cmd_stops_a_breaking_value(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/n", b"1", makepath=True)
    src = tpl(tmp_path, "n.j2", "n={{ znode('%s/n') }}\n" % zk_base)
    dest = tmp_path / "n.conf"
    check = "grep -q '^n=[0-9]*$' \"$ZKHERD_STAGED_FILE\""
    runner = run_with(zk_server, tmp_path, [(src, dest)], "--check-cmd", check, "--on-change", "none")
    try:
        runner.wait_log("started child", timeout=30)
        zk.set(zk_base + "/n", b"oops")
        runner.wait_log("check command rejected", timeout=15)
        time.sleep(1.0)
        assert dest.read_text() == "n=1\n"
        assert runner.log().count("check command rejected the new") == 1
        zk.set(zk_base + "/n", b"2")
        wait_for(lambda: dest.read_text() == "n=2\n", 15)
    finally:
        runner.stop()


def test_sandbox_data_is_never_template_code(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/s", b"{{ 7*7 }} {{ ''.__class__ }}", makepath=True)
    src = tpl(tmp_path, "s.j2", "{{ znode('%s/s') }}\n" % zk_base)
    dest = tmp_path / "s.conf"
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, dest)])
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == "{{ 7*7 }} {{ ''.__class__ }}\n"
    evil = tpl(tmp_path, "e.j2", "{{ ''.__class__.__mro__ }}\n")
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (evil, tmp_path / "e.conf")])
    assert done.returncode == 65 and "e.j2" in done.stderr, done.stderr
    assert not (tmp_path / "e.conf").exists() and "Traceback" not in done.stderr


def test_render_long_running_with_on_change(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/lr", b"1", makepath=True)
    src = tpl(tmp_path, "lr.j2", "lr={{ znode('%s/lr') }}\n" % zk_base)
    dest = tmp_path / "lr.conf"
    changes = tmp_path / "changes"
    renderer = Zkherd(["render", "--zk", zk_server.hosts, "--change-delay", "0.05", "%s=%s" % (src, dest),
                       "--on-change", "cat %s >> %s" % (dest, changes)], tmp_path / "render.log")
    try:
        wait_for(lambda: changes.exists() and changes.read_text() == "lr=1\n", 20, message=renderer.log)
        zk.set(zk_base + "/lr", b"2")
        wait_for(lambda: changes.read_text() == "lr=1\nlr=2\n", 15, message=renderer.log)
        renderer.signal(15)
        assert renderer.wait() == 0
        assert not renderer.has("Traceback")
    finally:
        renderer.stop()


def test_dest_through_a_symlink_is_refused(zk_server, zk, zk_base, tmp_path):
    """A DEST that is a symlink is never written through (as mirrored files): the set is refused."""
    zk.create(zk_base + "/sl", b"1", makepath=True)
    src = tpl(tmp_path, "sl.j2", "{{ znode('%s/sl') }}\n" % zk_base)
    secret = tmp_path / "secret"
    secret.write_text("precious\n")
    (tmp_path / "link").symlink_to(secret)
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, tmp_path / "link")])
    assert done.returncode == 73 and "symlink" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert secret.read_text() == "precious\n" and (tmp_path / "link").is_symlink()


def test_a_set_is_one_state_under_a_stream_of_transactions(zk_server, zk, zk_base, tmp_path):
    """A template over 40 znodes and a mirrored file, all set to one value by each transaction of a
    writer that hardly pauses: every set the check command sees holds one value only (a render
    whose znodes moved while it ran is thrown away, cached values included)."""
    names = ["k%02d" % i for i in range(40)]
    for name in names + ["m"]:
        zk.create(zk_base + "/c/" + name, b"0", makepath=True)
    src = tpl(tmp_path, "all.j2", "".join("{{ znode('%s/c/%s') }}\n" % (zk_base, n) for n in names))
    etc = tmp_path / "etc"
    etc.mkdir()
    record = tmp_path / "sets"
    check = ('for f in $ZKHERD_STAGED_FILES; do cat "${f#*=}"; echo; done | sort -u | grep . | wc -l >> %s'
             % record)
    runner = run_with(zk_server, tmp_path, [(src, etc / "all")], "--mirror", "%s=%s" % (etc / "m", zk_base + "/c/m"),
                      "--check-cmd", check, "--on-change", "none", "--change-delay", "0")
    try:
        runner.wait_log("started child", timeout=30)
        deadline, i = time.monotonic() + 4.0, 0
        while time.monotonic() < deadline:
            i += 1
            txn = zk.transaction()
            for name in names[::-1] + ["m"]:
                txn.set_data(zk_base + "/c/" + name, str(i).encode())
            txn.commit()
            time.sleep(0.002 * (i % 8))  # now and then a gap in which a render can complete
        wait_for(lambda: (etc / "m").read_text() == str(i) and (etc / "all").read_text() == ("%d\n" % i) * 40, 20,
                 message=runner.log)
        counts = record.read_text().split()
        assert len(counts) >= 3 and set(counts) == {"1"}, counts
    finally:
        runner.stop()
