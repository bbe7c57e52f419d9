"""Review 15 (templates): adversarial tests. Real ZooKeeper, real `zkherd` processes."""

from __future__ import annotations

import signal
import time

from tests.integration.test_templates import run_with, tpl, zkherd_once
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for


def test_tree_leaf_that_gains_a_child_is_rendered_again(zk_server, zk, zk_base, tmp_path):
    """tree(): a leaf gets only a data watch (templates.Reads.tree), and a new child of a znode does
    not fire its data watch. A leaf that becomes a folder is never seen: the file keeps the old tree."""
    zk.create(zk_base + "/t/leaf", b"text", makepath=True)
    zk.create(zk_base + "/t/other", b"o")
    src = tpl(tmp_path, "tree.j2", "{{ tree('%s/t') | tojson }}\n" % zk_base)
    dest = tmp_path / "tree.json"
    renderer = Zkherd(["render", "--zk", zk_server.hosts, "--change-delay", "0.05", "%s=%s" % (src, dest)],
                      tmp_path / "render.log")
    try:
        wait_for(lambda: dest.exists() and dest.read_text() == '{"leaf": "text", "other": "o"}\n', 20,
                 message=renderer.log)
        zk.create(zk_base + "/t/leaf/kid", b"k")
        fresh = tmp_path / "fresh.json"
        done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, fresh)])
        assert done.returncode == 0 and fresh.read_text() == '{"leaf": {"kid": "k"}, "other": "o"}\n', done.stderr
        wait_for(lambda: dest.read_text() == fresh.read_text(), 10,
                 message=lambda: "long-running renderer still has %r" % dest.read_text())
    finally:
        renderer.stop()


def test_tree_folder_that_loses_its_children_matches_a_fresh_render(zk_server, zk, zk_base, tmp_path):
    """tree(): a folder's cached data entry keeps numChildren of its first read (deleting children
    does not fire a data watch): after its last child goes, the long-running render says {} where
    a fresh render of the same state says the folder's text - one file, two answers."""
    zk.create(zk_base + "/f/dir/kid", b"k", makepath=True)
    zk.set(zk_base + "/f/dir", b"dirtext")
    src = tpl(tmp_path, "tree.j2", "{{ tree('%s/f') | tojson }}\n" % zk_base)
    dest = tmp_path / "tree.json"
    renderer = Zkherd(["render", "--zk", zk_server.hosts, "--change-delay", "0.05", "%s=%s" % (src, dest)],
                      tmp_path / "render.log")
    try:
        wait_for(lambda: dest.exists() and dest.read_text() == '{"dir": {"kid": "k"}}\n', 20, message=renderer.log)
        zk.delete(zk_base + "/f/dir/kid")
        fresh = tmp_path / "fresh.json"
        done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, fresh)])
        assert done.returncode == 0, done.stderr
        wait_for(lambda: dest.read_text() != '{"dir": {"kid": "k"}}\n', 10, message=renderer.log)
        time.sleep(0.5)
        assert dest.read_text() == fresh.read_text(), (dest.read_text(), fresh.read_text())
    finally:
        renderer.stop()


def yaml_bomb(levels, width):
    """A few hundred bytes of YAML whose aliases expand to width**(levels-1) strings when printed."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append("a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * width)))
    lines.append("top: *a%d" % (levels - 1))
    return "\n".join(lines).encode()


def test_range_beyond_the_sandbox_limit_is_a_render_error(zk_server, zk_base, tmp_path):
    src = tpl(tmp_path, "big.j2", "{% for i in range(10**9) %}{% endfor %}x\n")
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, tmp_path / "big")])
    assert done.returncode == 65 and "Traceback" not in done.stderr, done.stderr


def test_sigterm_ends_render_while_a_template_loops(zk_server, zk, zk_base, tmp_path):
    """A template whose render never ends in practice (10**10 iterations within the sandbox's
    range limit) blocks the one loop: SIGTERM is only posted, never acted on."""
    zk.create(zk_base + "/go", b"0", makepath=True)
    src = tpl(tmp_path, "spin.j2", "{% if znode('%s/go') == '1' %}{% for i in range(100000) %}"
              "{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}x\n".replace("%s", zk_base, 1))
    dest = tmp_path / "spin"
    renderer = Zkherd(["render", "--zk", zk_server.hosts, "--change-delay", "0.05", "%s=%s" % (src, dest)],
                      tmp_path / "render.log")
    try:
        wait_for(dest.exists, 20, message=renderer.log)
        zk.set(zk_base + "/go", b"1")
        time.sleep(1.0)
        renderer.signal(signal.SIGTERM)
        assert renderer.wait(10) == 0
    finally:
        if renderer.proc.poll() is None:
            renderer.kill()


def test_deleting_a_bad_optional_znode_is_a_newer_version(zk_server, zk, zk_base, tmp_path):
    """A version is the newest mzxid among the entries a render used (zkreads.ZnodeCache.version);
    a znode read with default= that is missing counts for nothing. A push that sets /a and creates a
    bad /opt in one transaction fails health; the fix - deleting /opt - renders different content
    with the *same* version, which is refused as "the version that failed": the rollout stays paused."""
    zk.create(zk_base + "/a", b"1", makepath=True)
    src = tpl(tmp_path, "o.j2", "a={{ znode('%(b)s/a') }} opt={{ znode('%(b)s/opt', default='none') }}\n"
              % {"b": zk_base})
    dest = tmp_path / "o.conf"
    runner = run_with(zk_server, tmp_path, [(src, dest)], "--rolling-lock", zk_base + "/roll",
                      "--health", "! grep -q bad %s" % dest, "--health-delay", "0.3", "--health-interval", "0.1",
                      "--health-fall", "1", child=["sh", "-c", "while :; do sleep 0.1; done"])
    try:
        runner.wait_log("child is healthy", timeout=30)
        txn = zk.transaction()
        txn.set_data(zk_base + "/a", b"2")
        txn.create(zk_base + "/opt", b"bad")
        txn.commit()
        runner.wait_log("configuration version failed", timeout=20)
        zk.delete(zk_base + "/opt")
        wait_for(lambda: dest.read_text() == "a=2 opt=none\n", 15,
                 message=lambda: "the fix is not installed: %r\n%s" % (dest.read_text(), runner.log()[-1500:]))
    finally:
        runner.stop()


def test_on_change_commands_never_overlap(zk_server, zk, zk_base, tmp_path):
    """Long-running render: a change installed while the last --on-change still runs starts a second
    one beside it (renderer.install overwrites self.on_change): two reloads at once."""
    zk.create(zk_base + "/oc", b"0", makepath=True)
    src = tpl(tmp_path, "oc.j2", "oc={{ znode('%s/oc') }}\n" % zk_base)
    dest = tmp_path / "oc.conf"
    marks = tmp_path / "marks"
    on_change = "echo begin >> %s; sleep 1.5; echo end >> %s" % (marks, marks)
    renderer = Zkherd(["render", "--zk", zk_server.hosts, "--change-delay", "0.05", "%s=%s" % (src, dest),
                       "--on-change", on_change], tmp_path / "render.log")
    try:
        wait_for(lambda: marks.exists() and marks.read_text() == "begin\n", 20, message=renderer.log)
        zk.set(zk_base + "/oc", b"1")
        assert marks.read_text() == "begin\n", "the first reload ended before the change: nothing could overlap"
        wait_for(lambda: dest.read_text() == "oc=1\n", 10, message=renderer.log)
        # both reloads have ended (begin, end twice, in whatever order): overlapping or not, they show
        wait_for(lambda: marks.read_text().split().count("end") >= 2, 15, message=renderer.log)
        lines = marks.read_text().split()
        assert lines == ["begin", "end"] * (len(lines) // 2), lines
    finally:
        renderer.stop()
