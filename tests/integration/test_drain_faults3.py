"""The last read of planned maintenance (issue 16): the shared lock-line parser takes only ASCII
sequence numbers (a planted `lock-²²²²²²²²²²` made every drain of that lock exit 70), and a
ZooKeeper error the shared flag code lets through (access denied on the flags) is exit 77, not 70."""

from __future__ import annotations

from kazoo.security import make_acl

from tests.integration.test_drain import zkherd


def test_a_planted_lock_node_with_unicode_digits_does_not_break_drain(zk, zk_base, zk_server):
    zk.create(zk_base + "/lock/lock-" + "\u00b2" * 10, b"x", makepath=True)  # persistent, foreign
    zk.create(zk_base + "/lock/lock-0000000007", b'{"id": "b"}')
    code, out, err = zkherd("drain", "/lock", "--id", "a", "--timeout", "1", "--zk", zk_server.hosts + zk_base)
    assert code == 0 and "no node of it" in out, (code, out, err)


def test_access_denied_on_the_flags_is_77(zk, zk_base, zk_server):
    zk.create(zk_base + "/zkherd", makepath=True)
    zk.create(zk_base + "/zkherd/drain", acl=[make_acl("world", "anyone", read=True)])
    code, out, err = zkherd("drain", "/lock", "--id", "a", "--no-wait", "--zk", zk_server.hosts + zk_base)
    assert code == 77 and "denied" in err, (code, out, err)
    code, out, err = zkherd("undrain", "/lock", "--id", "a", "--zk", zk_server.hosts + zk_base)
    assert code in (0, 77) and "bug" not in err, (code, out, err)
