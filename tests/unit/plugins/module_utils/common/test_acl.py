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
    assert acl.parse_entry({"scheme": "digest", "id": BOB, "perms": ["read"]}) == ("digest", BOB, 1)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"scheme": "sasl", "id": "x"}, "unknown ACL scheme"),
        ({"scheme": "ip"}, "needs an id"),
        ({"scheme": "world", "id": "bob"}, "only has the id 'anyone'"),
        ({"scheme": "digest", "username": "u"}, "needs a username"),
        ({"scheme": "digest", "id": "nohash"}, "user:base64-sha1"),
        ({"scheme": "digest", "id": "u:not-a-hash"}, "user:base64-sha1"),
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


BOB = acl.digest_id("bob", "pw")  # bob:<28 characters>


@pytest.mark.parametrize(
    "spec, triple",
    [
        ("world:anyone:r", ("world", "anyone", 1)),
        ("ip:10.0.0.0/8:rw", ("ip", "10.0.0.0/8", 3)),
        ("ip:::1:all", ("ip", "::1", 31)),  # an IPv6 address: the perms are after the last colon
        ("digest:%s:rwcda" % BOB, ("digest", BOB, 31)),
        ("auth::cdrwa", ("auth", "", 31)),
        ("WORLD:anyone:read,write", ("world", "anyone", 3)),
    ],
)
def test_spec(spec, triple):
    assert acl.parse_spec(spec) == triple


@pytest.mark.parametrize(
    "spec, message",
    [
        ("world:anyone", "expected SCHEME:ID:PERMS"),
        ("sasl:x:r", "ACL 'sasl:\\*\\*\\*': unknown scheme"),
        ("auth:bob:r", "takes no id"),
        ("world:anyone:fly", "unknown ACL permission"),
        ("ip::r", "needs an id"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(acl.AclError, match=message):
        acl.parse_spec(spec)


def test_a_password_given_as_digest_id_is_refused_and_not_repeated():
    with pytest.raises(acl.AclError, match="never the password") as err:
        acl.parse_spec("digest:bob:my-secret-pw:rwcda")
    assert "my-secret-pw" not in str(err.value)


def test_specs_lists():
    assert acl.parse_specs(None) is None and acl.parse_specs([]) is None
    assert acl.parse_specs("world:anyone:r") == [("world", "anyone", 1)]
    assert acl.parse_specs(["world:anyone:r", {"scheme": "digest", "username": "bob", "password": "pw"},
                            "world:anyone:r"]) == [("digest", BOB, 31), ("world", "anyone", 1)]
    with pytest.raises(acl.AclError, match="must be a list"):
        acl.parse_specs(3)


@pytest.mark.parametrize("spec", ["digest:alice:my-secret-pw", "digest:my-secret-pw", "digest:alice:my-secret-pw:rwcda",
                                  "diegst:alice:my-secret-pw:rwcda", "[digest, alice, my-secret-pw]",
                                  "digest:%s:my-secret-pw" % BOB, "my-secret-pw"])
def test_spec_errors_never_repeat_what_may_be_a_password(spec):
    with pytest.raises(acl.AclError) as err:
        acl.parse_spec(spec)
    assert "my-secret-pw" not in str(err.value)


@pytest.mark.parametrize("entry", ["digest:alice:my-secret-pw", {"scheme": "digest:alice:my-secret-pw"},
                                   {"scheme": "digest", "id": "alice:my-secret-pw"}])
def test_entry_errors_never_repeat_what_may_be_a_password(entry):
    with pytest.raises(acl.AclError) as err:
        acl.parse_entry(entry)
    assert "my-secret-pw" not in str(err.value)


def test_auth_scheme_is_the_tasks_own_identity():
    entries = [{"scheme": "auth", "perms": "rwcda"}, {"scheme": "world", "perms": "r"}]
    assert acl.parse(entries, "super:admin") == [("digest", "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=", 31),
                                                 ("world", "anyone", 1)]
    with pytest.raises(acl.AclError, match="give auth"):
        acl.parse(entries)
    with pytest.raises(acl.AclError, match="takes no id"):
        acl.parse([{"scheme": "auth", "id": "bob"}], "super:admin")
    assert acl.parse_specs([{"scheme": "auth"}]) == [("auth", "", 31)]  # the runner: the server resolves it
