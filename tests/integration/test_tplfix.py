"""The templates review's findings, fixed (prompts h15-tplfix): real ZooKeeper, real `zkherd` processes."""

from __future__ import annotations

import signal
import time

from kazoo.security import make_digest_acl

from tests.integration.test_review15_templates import yaml_bomb
from tests.integration.test_templates import run_with, tpl, zkherd_once
from tests.support.runner import Zkherd, exclusive_child, overlaps, starts
from tests.support.zkutil import wait_for


def test_yaml_aliases_are_a_render_error_naming_the_znode(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/y", yaml_bomb(9, 9), makepath=True)
    src = tpl(tmp_path, "y.j2", "{{ znode('%s/y', type='yaml') }}\n" % zk_base)
    started = time.monotonic()
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, tmp_path / "y")])
    assert done.returncode == 65 and "aliases" in done.stderr and zk_base + "/y" in done.stderr, done.stderr
    assert time.monotonic() - started < 10 and not (tmp_path / "y").exists()


def test_deeply_nested_json_is_a_render_error(zk_server, zk, zk_base, tmp_path):
    for name, data in (("deep", b"[" * 500 + b"]" * 500), ("deeper", b"[" * 100000 + b"]" * 100000)):
        zk.create("%s/%s" % (zk_base, name), data, makepath=True)
        src = tpl(tmp_path, name + ".j2", "{{ znode('%s/%s', type='json') }}\n" % (zk_base, name))
        done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, tmp_path / name)])
        assert done.returncode == 65 and "nested deeper" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_repeating_by_a_number_from_zookeeper_is_bounded(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/n", b"1000000000", makepath=True)
    src = tpl(tmp_path, "n.j2", "{{ 'x' * (znode('%s/n') | int) }}{{ 10 ** (znode('%s/n') | int) }}\n"
              % (zk_base, zk_base))
    started = time.monotonic()
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, tmp_path / "n")])
    assert done.returncode == 65 and "SecurityError" in done.stderr, done.stderr
    assert time.monotonic() - started < 10


def test_render_timeout_is_a_render_error(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/go", b"1", makepath=True)
    src = tpl(tmp_path, "spin.j2", "{%% if znode('%s/go') == '1' %%}{%% for i in range(100000) %%}"
              "{%% for j in range(100000) %%}{%% endfor %%}{%% endfor %%}{%% endif %%}x\n" % zk_base)
    started = time.monotonic()
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "--render-timeout", "1",
                        "%s=%s" % (src, tmp_path / "spin")])
    assert done.returncode == 65 and "--render-timeout" in done.stderr, done.stderr
    assert time.monotonic() - started < 15 and not (tmp_path / "spin").exists()


def test_slow_zookeeper_answers_do_not_count_against_the_render_timeout(
        zk_server, zk, zk_base, tmp_path, fault_proxy):
    """Reads that depend on earlier ones (children, then each child) go one by one: through a proxy
    that delays every answer by 0.3 s, seven of them take about 2 s, more than --render-timeout 1 -
    yet the template's own work is a few milliseconds: the file is rendered, not a render error."""
    for index in range(6):
        zk.create("%s/pool/m%d" % (zk_base, index), b"v%d" % index, makepath=True)
    proxy = fault_proxy()
    proxy.delay(0.15)
    src = tpl(tmp_path, "pool.j2", "{%% for c in children('%s/pool') %%}{{ c }}={{ znode('%s/pool/' ~ c) }}\n"
              "{%% endfor %%}" % (zk_base, zk_base))
    started = time.monotonic()
    done = zkherd_once(["render", "--zk", proxy.hosts, "--once", "--render-timeout", "1",
                        "%s=%s" % (src, tmp_path / "pool")])
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started > 2.0  # the reads were slow indeed
    assert (tmp_path / "pool").read_text() == "".join("m%d=v%d\n" % (i, i) for i in range(6))


def test_sigterm_during_a_render_stops_run_and_its_child(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/go", b"0", makepath=True)
    src = tpl(tmp_path, "spin.j2", "{%% if znode('%s/go') == '1' %%}{%% for i in range(100000) %%}"
              "{%% for j in range(100000) %%}{%% endfor %%}{%% endfor %%}{%% endif %%}x\n" % zk_base)
    runner = run_with(zk_server, tmp_path, [(src, tmp_path / "spin")], "--render-timeout", "0")
    try:
        runner.wait_log("started child", timeout=30)
        zk.set(zk_base + "/go", b"1")
        time.sleep(1.0)
        runner.signal(signal.SIGTERM)
        assert runner.wait(15) in (0, 143), runner.log()[-2000:]
    finally:
        if runner.proc.poll() is None:
            runner.kill()


def test_sighup_renders_again_and_keeps_running(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/h", b"1", makepath=True)
    src = tpl(tmp_path, "h.j2", "h={{ znode('%s/h') }}\n" % zk_base)
    dest = tmp_path / "h.conf"
    renderer = Zkherd(["render", "--zk", zk_server.hosts, "%s=%s" % (src, dest)], tmp_path / "render.log")
    try:
        wait_for(dest.exists, 20, message=renderer.log)
        renderer.signal(signal.SIGHUP)
        renderer.wait_log("received SIGHUP", timeout=10)
        time.sleep(0.5)
        assert renderer.proc.poll() is None, renderer.log()
        zk.set(zk_base + "/h", b"2")
        wait_for(lambda: dest.read_text() == "h=2\n", 10, message=renderer.log)
    finally:
        renderer.stop()


def test_yaml_bomb_never_lets_a_standby_start(zk_server, zk, zk_base, tmp_path):
    """The review's scenario, waited for by what the fix does: the holder logs the refused alias,
    keeps its session and its child; the standby never starts (three session timeouts later)."""
    work = tmp_path / "work"
    lock = zk_base + "/lock"
    zk.create(zk_base + "/cfg", b"x: 1", makepath=True)
    zk.create(zk_base + "/other", b"1")
    bad = tpl(tmp_path, "bad.j2", "cfg={{ znode('%s/cfg', type='yaml') }}\n" % zk_base)
    good = tpl(tmp_path, "good.j2", "o={{ znode('%s/other') }}\n" % zk_base)
    common = ["--lock", lock, "--session-timeout", "3", "--on-change", "none"]
    holder = run_with(zk_server, tmp_path, [(bad, tmp_path / "a.conf")], *common,
                      child=exclusive_child(work, name="holder"), log="holder.log")
    standby = None
    try:
        holder.wait_log("started child", timeout=30)
        standby = run_with(zk_server, tmp_path, [(good, tmp_path / "b.conf")], *common,
                           child=exclusive_child(work, name="standby"), log="standby.log")
        standby.wait_log("queued for lock", timeout=30)
        zk.set(zk_base + "/cfg", yaml_bomb(9, 9))
        holder.wait_log("aliases", timeout=20)
        time.sleep(9.0)
        assert overlaps(work) == [] and len(starts(work)) == 1, (starts(work), holder.log()[-3000:])
        assert holder.proc.poll() is None
    finally:
        for runner in (standby, holder):
            if runner is not None:
                runner.stop()


def test_render_once_on_a_dark_zookeeper_exits_69_with_a_message(zk_server, zk, zk_base, tmp_path, fault_proxy):
    zk.create(zk_base + "/dark", b"1", makepath=True)
    proxy = fault_proxy()
    proxy.before_request("get_data", nth=1, then="blackhole")
    src = tpl(tmp_path, "dark.j2", "d={{ znode('%s/dark') }}\n" % zk_base)
    renderer = Zkherd(["render", "--zk", proxy.hosts, "--session-timeout", "2", "--connect-timeout", "3", "--once",
                       "%s=%s" % (src, tmp_path / "dark.conf")], tmp_path / "render.log")
    try:
        assert renderer.wait(30) == 69, renderer.log()
        assert renderer.has("stopped answering") and not renderer.has("Traceback")
        assert not (tmp_path / "dark.conf").exists()
    finally:
        if renderer.proc.poll() is None:
            renderer.kill()


def test_a_znode_created_later_that_the_renderer_may_not_read_is_not_silent(zk_server, zk_admin, zk_base, tmp_path):
    """A template reads a missing znode with default=; the znode is then made with an ACL the renderer
    may not read. ZooKeeper does not deliver the exists watch's NodeCreated to such a client: without
    the recheck of missing znodes (configfiles/sync.ABSENT_RECHECK, 10 s) the default stayed in the
    file for ever, silently. Now the next recheck reads it, and the denial is a render error in the log."""
    renderer, dest = motd_renderer(zk_server, zk_base, tmp_path)
    try:
        renderer.wait_log("configuration installed", timeout=30)
        zk_admin.create(zk_base + "/d/motd", b"hello", acl=[make_digest_acl("other", "pw", all=True)],
                        makepath=True)
        wait_for(lambda: renderer.has("cannot read znode %s/d/motd" % zk_base), 25, message=renderer.log)
        assert dest.read_text() == "motd = none yet\n"  # the last good file stays
        assert renderer.proc.poll() is None
    finally:
        renderer.stop()


def motd_renderer(zk_server, zk_base, tmp_path, more=""):
    """A long-running `zkherd render` of ZK_BASE/d/motd (default 'none yet'), plus the lines *more*:
    (the Zkherd process, its DEST)."""
    src = tpl(tmp_path, "t.j2", "motd = {{ znode('%s/d/motd', default='none yet') | trim }}\n" % zk_base + more)
    dest = tmp_path / "out" / "f.conf"
    dest.parent.mkdir()
    renderer = Zkherd(["render", "--zk", zk_server.hosts, "--change-delay", "0.05", "%s=%s" % (src, dest)],
                      tmp_path / "r.log")
    return renderer, dest
