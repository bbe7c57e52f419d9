"""Issue 15, templates under faults: the watch-kept cache after a partition that expires the session
(its watches are gone with it). Real ZooKeeper, a TCP proxy, real `zkherd` processes."""

from __future__ import annotations

import time

from tests.integration.test_templates import run_with, tpl, zkherd_once
from tests.support.zkutil import wait_for


def test_a_change_made_while_the_session_expired_is_rendered(zk_server, zk, zk_base, tmp_path, fault_proxy):
    zk.create(zk_base + "/a", b"1", makepath=True)
    zk.create(zk_base + "/b", b"1")
    src = tpl(tmp_path, "ab.j2", "a={{ znode('%(b)s/a') }} b={{ znode('%(b)s/b') }}\n" % {"b": zk_base})
    dest = tmp_path / "ab.conf"
    proxy = fault_proxy()

    class Through:
        hosts = proxy.hosts

    runner = run_with(Through, tmp_path, [(src, dest)], "--on-change", "none", "--session-timeout", "2")
    try:
        runner.wait_log("started child", timeout=30)
        zk.set(zk_base + "/b", b"2")
        wait_for(lambda: dest.read_text() == "a=1 b=2\n", 15)
        proxy.blackhole()
        runner.wait_log("lost contact", timeout=15)
        zk.set(zk_base + "/a", b"2")  # no watch of the runner's sees this one
        time.sleep(5.0)  # the server expires the 2 s session (it is told only when it is back)
        proxy.heal()
        runner.wait_log("session expired", timeout=30)
        wait_for(lambda: dest.read_text() == "a=2 b=2\n", 30, message=runner.log)
        zk.set(zk_base + "/b", b"3")  # the new session's watches work
        wait_for(lambda: dest.read_text() == "a=2 b=3\n", 15, message=runner.log)
        assert runner.proc.poll() is None and not runner.has("Traceback")
    finally:
        runner.stop()


def test_a_znode_the_template_may_not_read_is_a_render_error(zk_server, zk, zk_base, tmp_path):
    """An ACL that denies the read: a render error naming the znode (65 with --once), not the end of
    a long-running command (77 is for the command's own paths)."""
    from kazoo.security import make_digest_acl

    zk.create(zk_base + "/secret", b"s", acl=[make_digest_acl("boss", "pw", all=True)], makepath=True)
    src = tpl(tmp_path, "acl.j2", "s={{ znode('%s/secret') }}\n" % zk_base)
    dest = tmp_path / "acl.conf"
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, dest)])
    assert done.returncode == 65 and "%s/secret" % zk_base in done.stderr and "Traceback" not in done.stderr, \
        done.stderr
    assert not dest.exists()


def test_render_once_of_a_missing_znode_writes_nothing(zk_server, zk_base, tmp_path):
    src = tpl(tmp_path, "gone.j2", "g={{ znode('%s/not-there') }}\n" % zk_base)
    dest = tmp_path / "gone.conf"
    done = zkherd_once(["render", "--zk", zk_server.hosts, "--once", "%s=%s" % (src, dest)])
    assert done.returncode == 75 and "%s/not-there" % zk_base in done.stderr, done.stderr
    assert not dest.exists() and "Traceback" not in done.stderr
