from __future__ import annotations

import pytest

from ansible_collections.zkherd.ops.plugins.module_utils.common import acl


def test_digest_id_matches_zookeeper():
    # DigestAuthenticationProvider.generateDigest("super:admin"), from the ZooKeeper docs
    assert acl.digest_id("super", "admin") == "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="


@pytest.mark.parametrize(
    "perms, mask",
    [(None, 31), ("all", 31), ("rw", 3), ("rwcda", 31), (["read", "admin"], 17), ("read,write", 3), (4, 4)],
)
def test_perms(perms, mask):
    assert acl.parse_perms(perms) == mask


def test_bad_perms():
    with pytest.raises(acl.AclError, match="unknown ACL permission"):
        acl.parse_perms(["fly"])
    with pytest.raises(acl.AclError, match="out of range"):
        acl.parse_perms(64)


def test_entries():
    assert acl.parse_entry({"scheme": "world"}) == ("world", "anyone", 31)
    assert acl.parse_entry({"scheme": "ip", "id": "10.0.0.0/8", "perms": "r"}) == ("ip", "10.0.0.0/8", 1)
    assert acl.parse_entry({"scheme": "digest", "username": "super", "password": "admin"}) == (
        "digest", "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=", 31)
    assert acl.parse_entry({"scheme": "digest", "id": "u:hash", "perms": ["read"]}) == ("digest", "u:hash", 1)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"scheme": "sasl", "id": "x"}, "unknown ACL scheme"),
        ({"scheme": "ip"}, "needs an id"),
        ({"scheme": "world", "id": "bob"}, "only has the id 'anyone'"),
        ({"scheme": "digest", "username": "u"}, "needs a username"),
        ({"scheme": "digest", "id": "nohash"}, "user:base64-sha1"),
        ({"scheme": "digest", "id": "u:h", "username": "u", "password": "p"}, "not both"),
        ("world:anyone", "must be a dict"),
    ],
)
def test_bad_entries(entry, message):
    with pytest.raises(acl.AclError, match=message):
        acl.parse_entry(entry)


def test_list_is_a_set_and_never_empty():
    entries = [{"scheme": "world", "perms": "r"}, {"scheme": "world", "perms": "r"}]
    assert acl.parse(entries) == [("world", "anyone", 1)]
    assert acl.same([("ip", "1.2.3.4", 1), ("world", "anyone", 1)], [("world", "anyone", 1), ("ip", "1.2.3.4", 1)])
    with pytest.raises(acl.AclError, match="must not be empty"):
        acl.parse([])
    assert acl.report([("world", "anyone", 3)]) == [{"scheme": "world", "id": "anyone", "perms": ["read", "write"]}]
