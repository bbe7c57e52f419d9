"""Review 15 (last commits): findings as failing tests."""

from __future__ import annotations

import time

from kazoo.security import make_digest_acl

from tests.integration.test_tplfix import motd_renderer


def test_missing_znode_recheck_is_not_starved_by_other_changes(zk_server, zk_admin, zk_base, tmp_path):
    """sync.ConfigSync.look resets last_look on every look, and rechecks missing znodes only when the
    look comes ABSENT_RECHECK (10 s) after the previous one. A template that also reads a znode that
    changes more often than every 10 s (a counter, a farm with churn) is looked at more often than that:
    the recheck never runs, and a znode created later with an ACL the renderer may not read stays
    silent (the default in the file) for ever - the very case the recheck was made for."""
    zk_admin.create(zk_base + "/d/tick", b"0", makepath=True)
    renderer, dest = motd_renderer(zk_server, zk_base, tmp_path, more="tick = {{ znode('%s/d/tick') }}\n" % zk_base)
    try:
        renderer.wait_log("configuration installed", timeout=30)
        zk_admin.create(zk_base + "/d/motd", b"hello", acl=[make_digest_acl("other", "pw", all=True)])
        deadline = time.monotonic() + 35  # three and a half recheck periods
        tick = 0
        while time.monotonic() < deadline and not renderer.has("cannot read znode %s/d/motd" % zk_base):
            tick += 1
            zk_admin.set(zk_base + "/d/tick", str(tick).encode())
            time.sleep(4)
        assert dest.read_text() == "motd = none yet\ntick = %d\n" % tick  # it looked, often
        assert renderer.has("cannot read znode %s/d/motd" % zk_base), renderer.log()[-3000:]
    finally:
        renderer.stop()
