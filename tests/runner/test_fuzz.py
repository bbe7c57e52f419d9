"""Fuzzing of the parsers and codecs with hypothesis: whatever the input, each returns a result or
raises its own clean error (a UserError such as FarmError, PathError, CodecError, AclError or
ZkError; config.ConfigError; argparse's exit 64), never TypeError, KeyError, RecursionError...

The default run is short and the same every time (derandomized, bounded examples: a few seconds
in all). A long run with fresh random inputs:

    ZKHERD_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/runner/test_fuzz.py

Each bug found so far is kept as an @example of the test that found it.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zkherd import cli
from zkherd.commands import run as runcmd
from zkherd.common import acl, codec, connection, farm, paths
from zkherd.common.errors import UserError
from zkherd.core import argtypes, exits
from zkherd.core import settings as config
from zkherd.core.logs import Log
from zkherd.farm import export, join

LONG = int(os.environ.get("ZKHERD_FUZZ_EXAMPLES") or 0)
FUZZ = settings(max_examples=LONG or 100, derandomize=not LONG, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])
CLEAN = (UserError, config.ConfigError)

# Any Unicode, lone surrogates included (Ansible's JSON and Python's argv can both carry them).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ANY_TEXT)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), ANY_TEXT)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(ANY_TEXT, inner, max_size=4), max_leaves=12)
DOCS = st.dictionaries(st.sampled_from(["a", "b", "a.b", ""]) | ANY_TEXT, JSON_VALUES, max_size=5)
SMALL_TEXT = st.text("ab.=!<>,- 01\t\n", max_size=12)
DOTTED = st.one_of(ANY_TEXT, st.lists(st.sampled_from(["a", "b", "", " ", "a b"]), max_size=6).map(".".join),
                   st.integers(1, 150).map(lambda n: ".".join(["a"] * n)))


def nested(opening, closing, depth):
    return opening * depth + closing * depth


# farm: the member codec, dotted fields, filters, DJB directories

@FUZZ
@given(st.one_of(st.binary(max_size=60), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                 st.integers(1, 5000).map(lambda n: nested(b"[", b"]", n)),
                 st.integers(1, 300).map(lambda n: nested(b'{"a":', b"}", n).replace(b":}", b":1}"))))
@example(nested(b"[", b"]", 100000))  # RecursionError from json
@example(nested(b'{"a":', b"}", 600).replace(b":}", b":1}"))  # decoded, but too deep to copy later
def test_decode_member(data):
    try:
        doc = farm.decode_member(data)
    except farm.FarmError:
        return
    assert isinstance(doc, dict)
    assert farm.decode_member(farm.encode_member(doc)) == doc
    assert farm.set_field(doc, "x", 1)["x"] == 1  # deep copies work


@FUZZ
@given(DOCS)
def test_member_round_trip(doc):
    assert_round_trip(doc)


def assert_round_trip(doc):
    """A member reads back as written - or, holding a lone surrogate (no UTF-8 for it), is refused."""
    if farm.json_problem(doc):
        with pytest.raises(farm.FarmError, match="lone surrogate"):
            farm.decode_member(farm.encode_member(doc))
    else:
        assert farm.decode_member(farm.encode_member(doc)) == doc


@FUZZ
@given(DOCS, DOTTED, JSON_VALUES)
@example({}, "a." * 300 + "a", 1)  # a field path deeper than anything can be stored
def test_fields(doc, dotted, value):
    before = json.dumps(doc)
    try:
        farm.check_field(dotted)
    except farm.FarmError:
        for call in (lambda: farm.get_field(doc, dotted), lambda: farm.set_field(doc, dotted, value),
                     lambda: farm.unset_field(doc, dotted)):
            with pytest.raises(farm.FarmError):
                call()
        return
    try:
        farm.get_field(doc, dotted)
    except KeyError:
        with pytest.raises(KeyError):
            farm.unset_field(doc, dotted)
    try:
        changed = farm.set_field(doc, dotted, value)
    except farm.FarmError:
        return
    assert farm.get_field(changed, dotted) == value
    assert_round_trip(changed)
    removed = farm.unset_field(changed, dotted)
    with pytest.raises(KeyError):
        farm.get_field(removed, dotted)
    assert json.dumps(doc) == before  # the caller's document is never changed


def filter_terms():
    term = st.tuples(st.sampled_from(["", "!"]), DOTTED | SMALL_TEXT,
                     st.sampled_from(["", "=", "!=", "<", ">", "<=", ">="]),
                     st.one_of(SMALL_TEXT, st.floats().map(str), st.integers().map(str), ANY_TEXT))
    return st.lists(term.map("".join), max_size=4).map(",".join)


@FUZZ
@given(st.one_of(ANY_TEXT, SMALL_TEXT, filter_terms()), DOCS)
@example("a. =1", {})  # accepted as 'a.' by parse_filter, refused by matches
@example("a<1", {"a": 10 ** 400})  # an int no float holds
def test_filters(expression, doc):
    try:
        terms = farm.parse_filter(expression)
    except farm.FarmError:
        return
    assert farm.matches(doc, terms) in (True, False)
    fields = [field for negate, field, op, wanted in terms]
    assert isinstance(farm.ls_line(expression, doc, fields), str)


@FUZZ
@given(ANY_TEXT, DOCS, st.lists(DOTTED, max_size=3))
def test_ls_line(name, doc, fields):
    try:
        line = farm.ls_line(name, doc, fields)
    except farm.FarmError:
        return
    assert line.startswith(name)


LINK_SELF, LINK_NOWHERE, FIFO = ".", "/nonexistent/zkherd-fuzz", "fifo"  # never "..": it would leave the tree
NAMES = st.one_of(st.binary(min_size=1, max_size=10), st.sampled_from([b"a", b".hidden", b"x\n", b"\xff", b"a.b"]))
DIR_TREES = st.recursive(
    st.one_of(st.binary(max_size=12), st.sampled_from([b"text\n", b"\xff\xfe", b""]),
              st.sampled_from([LINK_SELF, LINK_NOWHERE, FIFO])),
    lambda inner: st.dictionaries(NAMES.filter(lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b"..")),
                                  inner, max_size=4),
    max_leaves=10).filter(lambda tree: isinstance(tree, dict))


def make_tree(where, tree):
    for name, content in tree.items():
        path = os.path.join(where, name)
        if isinstance(content, dict):
            os.mkdir(path)
            make_tree(path, content)
        elif content == FIFO:
            os.mkfifo(path)
        elif isinstance(content, str):
            os.symlink(os.fsencode(content), path)  # a loop, or dangling
        else:
            with open(path, "wb") as handle:
                handle.write(content)


@FUZZ
@given(DIR_TREES)
@example({b"\xff": b"1"})  # a name that is not UTF-8 became a lone surrogate ('\udcff') in the member
@example({b"loop": LINK_SELF})  # a symlink loop: OSError (ELOOP) escaped
@example({b"a": {b"a": {b"a": {}}}, b"deep": b""})
def test_read_dir(tree):
    with tempfile.TemporaryDirectory() as root:
        make_tree(os.fsencode(root), tree)
        try:
            doc = farm.read_dir(root)
        except farm.FarmError:
            return
    assert farm.decode_member(farm.encode_member(doc)) == doc
    json.dumps(doc, ensure_ascii=False).encode("utf-8")  # valid Unicode: it can be printed and shared


def test_read_dir_too_deep():
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, *["d"] * (farm.MAX_DEPTH + 5)))
        with pytest.raises(farm.FarmError, match="nested deeper"):
            farm.read_dir(root)


# znode paths, codecs, ACLs, connection settings

PATHS = st.one_of(ANY_TEXT, st.lists(st.sampled_from(["", ".", "..", "a", "b\x00", "\ud800", "\x7f", "zookeeper"]),
                                     max_size=5).map("/".join))


@FUZZ
@given(PATHS, PATHS, ANY_TEXT | SCALARS)
@example("/a", "/", 5)  # TypeError: '/' in 5
def test_paths(path, root, name):
    try:
        assert paths.validate(path) == path
    except paths.PathError:
        pass
    else:
        assert paths.depth(path) >= 0 and all(paths.validate(a) for a in paths.ancestors(path))
        assert paths.validate(paths.parent(path))
    try:
        assert paths.validate_name(name) == name
    except paths.PathError:
        pass
    try:
        rel = paths.relative(root, path)
    except paths.PathError:
        return
    assert (rel == "" and path == root) or paths.join(root, rel) == path


YAMLISH = st.text("[]{}:,-?!&*|>'\"#\n .0123456789abtxyzZT:+<", max_size=40)
YAML_TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!str", "!!timestamp", "!!binary", "!!set", "!!omap",
             "!!pairs", "!!map", "!!seq", "!!merge", "!!python/tuple", "!x", "<<:"]
YAML_TAGGED = st.tuples(st.sampled_from(YAML_TAGS), st.sampled_from(["", "0x", "0b2", "0o9", "1:2:x", ".", "x", "[a]",
                                                                     "{a: 1}", "2001-02-30", "2001-01-01T25:00:00Z"])
                        | YAMLISH).map(" ".join)


def alias_chain(widths, merge):
    """YAML where each level repeats the one before *width* times through aliases (or merge keys):
    the shape of a "billion laughs"."""
    lines = ["l0: &l0 {k: lol}" if merge else "l0: &l0 [lol]"]
    for i, width in enumerate(widths, 1):
        aliases = ", ".join(["*l%d" % (i - 1)] * width)
        level = "l%d: &l%d {<<: [%s], k%d: 1}" % (i, i, aliases, i) if merge else "l%d: &l%d [%s]" % (i, i, aliases)
        lines.append(level)
    return ("\n".join(lines) + "\n").encode()


ALIAS_DOCS = st.builds(alias_chain, st.lists(st.integers(1, 12), min_size=1, max_size=10), st.booleans())
BOMB = alias_chain([9] * 8, False)


def expanded(value, limit):
    """How many values and characters *value* holds with shared parts counted each time, up to limit."""
    total, pending = 0, [value]
    while pending and total <= limit:
        item = pending.pop()
        total += 1 + (len(item) if isinstance(item, str) else 0)
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return total


@FUZZ
@given(st.one_of(st.binary(max_size=60), YAMLISH.map(str.encode), YAML_TAGGED.map(str.encode),
                 st.integers(1, 400).map(lambda n: nested(b"[", b"]", n)), ALIAS_DOCS),
       st.sampled_from(codec.VALUE_TYPES + ("xml", "")))
@example(BOMB, "yaml")  # 387 million strings from 342 bytes: 2.8 GB once serialized
@example(b"a: &a [*a]", "yaml")  # an alias inside what it names
@example(alias_chain([2] * 40, True), "yaml")  # merge keys that double 40 times
@example(b"2001-02-30", "yaml")  # PyYAML raises ValueError for a date that does not exist
@example(b"!!int 0x", "yaml")  # ValueError
@example(b"!!bool x", "yaml")  # KeyError
@example(b"!!int ", "yaml")  # IndexError
@example(b"!!timestamp x", "yaml")  # AttributeError
@example(nested(b"[", b"]", 100000), "json")  # RecursionError
@example(nested(b"[", b"]", 1000), "yaml")  # RecursionError
def test_codec_decode(data, value_type):
    try:
        value = codec.decode(data, value_type)
    except codec.CodecError:
        pass
    else:
        assert expanded(value, 2 * codec.MAX_EXPANDED) <= 2 * codec.MAX_EXPANDED  # nothing explodes later
    for shown in (codec.preview(data), codec.diff_text(data, value_type)):
        assert isinstance(shown, str)
    assert codec.diff_text(data, value_type).endswith("\n") or not data.strip()


ANY_FLOATS = st.floats()  # NaN, infinities and -0.0 included
TYPED_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 3), ANY_FLOATS, ANY_TEXT),
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
                            max_leaves=12)


def loosen(value):
    """*value* with numbers swapped for another type that Python's == finds equal: true -> 1 -> 1.0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: loosen(item) for key, item in reversed(list(value.items()))}  # other key order too
    if isinstance(value, list):
        return [loosen(item) for item in value]
    return value


def canonical(value):
    return json.dumps(value, sort_keys=True)


@FUZZ
@given(TYPED_VALUES, TYPED_VALUES)
@example({"a": 1}, {"a": True})  # Python: equal
@example(0.0, -0.0)
@example(float("nan"), float("nan"))  # Python: not equal
def test_codec_equal_is_equality_of_the_document(a, b):
    """equal() says what comparing the canonical JSON texts says: types count, key order does not."""
    for x, y in ((a, b), (a, loosen(a)), (a, json.loads(json.dumps(a))), (loosen(a), loosen(b))):
        assert codec.equal(x, y) is (canonical(x) == canonical(y)), (x, y)
        assert codec.equal(y, x) is codec.equal(x, y)
    assert codec.equal(a, a)


MERGE_DOCS = st.dictionaries(st.sampled_from(["a", "b", "c"]),
                             st.one_of(st.booleans(), st.integers(0, 2), st.sampled_from([0.0, 1.0, 2.0]),
                                       st.sampled_from(["1", "true"]),
                                       st.dictionaries(st.sampled_from(["x", "y"]), st.one_of(st.booleans(),
                                                                                              st.integers(0, 1)),
                                                       min_size=1, max_size=2)),
                             max_size=3)


@FUZZ
@given(MERGE_DOCS, MERGE_DOCS, MERGE_DOCS)
@example({"a": 1}, {"a": 1}, {"a": True})
@example({"a": 1}, {"a": 1.0}, {"a": 1})
@example({}, {"a": False}, {"a": {"x": False}})
@example({"a": False}, {}, {"a": True})
def test_farm_join_merge_keeps_types(base, local, remote):
    """A side that did not change takes the other side's document, types included."""
    merged, conflicts = join.merge(base, base, remote)
    assert codec.equal(merged, remote) and conflicts == []
    merged, conflicts = join.merge(base, local, base)
    assert codec.equal(merged, local) and conflicts == []
    merged, conflicts = join.merge(base, local, remote)  # a value here and fields there: a conflict, not an error
    for field in conflicts:  # both changed it, differently: the local value (or its removal) wins
        names = tuple(field.split("."))  # the merge's documents have no "." in their names
        assert codec.equal(join.flatten(merged).get(names, "GONE"), join.flatten(local).get(names, "GONE"))


@FUZZ
@given(st.dictionaries(ANY_TEXT, TYPED_VALUES, max_size=4), ANY_FLOATS)
@example({"m": {"w": float("inf"), "n": [float("nan")]}}, float("-inf"))
def test_export_is_what_the_format_allows(members, number):
    """JSON exports read back with a strict parser; PHP gets its own INF and NAN, never inf/nan."""
    def refuse(name):
        raise ValueError(name)

    text = export.render(members, "json")
    assert codec.equal(json.loads(text, parse_constant=refuse), export.finite(members))
    assert all(not math.isfinite(value) for field, value in export.nonfinite(members))
    literal = export.php(number)
    if math.isnan(number):
        assert literal == "NAN"
    elif number in (float("inf"), float("-inf")):
        assert literal == ("INF" if number > 0 else "-INF")
    else:
        assert float(literal) == number


@FUZZ
@given(st.one_of(JSON_VALUES, YAMLISH, st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())),
       st.sampled_from(codec.VALUE_TYPES + ("xml",)))
@example("\ud800", "raw")  # UnicodeEncodeError
@example("\ud800", "json")
@example({1: 2, "a": 3}, "json")  # TypeError from sorting the keys
@example(10 ** 5000, "json")  # ValueError: too many digits to print
def test_codec_encode(value, value_type):
    try:
        data, structured = codec.encode(value, value_type)
    except codec.CodecError:
        return
    assert isinstance(data, bytes)
    if value_type == "base64":
        assert base64.b64decode(codec.decode(data, "base64")) == data
    if value_type in ("json", "yaml"):
        assert codec.same(data, data, structured, value_type) is True
        assert codec.same(b"", data, structured, value_type) in (True, False)
    if value_type == "json" and not isinstance(value, str):
        assert codec.decode(data, "json") == value


ACL_ENTRIES = st.fixed_dictionaries({}, optional={
    "scheme": st.sampled_from(["world", "ip", "digest", "DIGEST", "sasl", "", None]) | SCALARS,
    "id": st.sampled_from(["anyone", "10.0.0.0/8", "u:abc", "u", ""]) | SCALARS,
    "username": st.sampled_from(["u", "a:b", ""]) | SCALARS,
    "password": st.sampled_from(["pw", ""]) | SCALARS,
    "perms": st.one_of(st.sampled_from(["rwcda", "all", "read,write", "x", "", "İ"]), SCALARS,
                       st.lists(SCALARS, max_size=3)),
})
ACL_SPECS = st.one_of(ANY_TEXT, st.tuples(st.sampled_from(["world", "ip", "digest", "auth", "x", ""]),
                                          st.sampled_from(["anyone", "", "u:" + "A" * 27 + "=", "u:x", "1.2.3.4", ":"]),
                                          st.sampled_from(["rwcda", "r", "all", "", "q"])).map(":".join))


@FUZZ
@given(st.one_of(st.lists(ACL_ENTRIES | SCALARS, max_size=3), ACL_ENTRIES, SCALARS),
       st.one_of(SCALARS, st.lists(SCALARS, max_size=3)),
       st.one_of(st.lists(ACL_SPECS | ACL_ENTRIES | SCALARS, max_size=3), ACL_SPECS, SCALARS))
@example([{"scheme": "digest", "id": 5}], "rw", None)  # TypeError: ':' in an int
@example([{"scheme": "digest", "username": 5, "password": "x"}], "rw", None)
@example(5, 1.5, None)  # TypeError: iterating a number
@example([], True, None)
def test_acl(entries, perms, specs):
    try:
        triples = acl.parse(entries)
    except acl.AclError:
        pass
    else:
        assert all(scheme in acl.SCHEMES and isinstance(ident, str) and 0 <= mask <= acl.ALL_PERMS
                   for scheme, ident, mask in triples)
        assert acl.report(triples)
    try:
        assert 0 <= acl.parse_perms(perms) <= acl.ALL_PERMS
    except acl.AclError:
        pass
    if hasattr(acl, "parse_specs"):  # the runner's --acl
        try:
            acl.parse_specs(specs)
        except acl.AclError:
            pass


HOSTS = st.one_of(ANY_TEXT, st.lists(st.sampled_from(["h", "h:2181", ":", "h:0", "h:\u00b2", "[::1]:1", " ", "/x",
                                                      "h:65536", "/", "h:1/a/../b", ",", "h:\u0661"]),
                                     max_size=4).map("".join),
                  st.lists(ANY_TEXT, max_size=3))
TIMEOUTS = st.one_of(SCALARS, st.sampled_from(["nan", "inf", "-1", "0", "1e400", "10"]))


@FUZZ
@given(HOSTS, TIMEOUTS, TIMEOUTS, SCALARS, SCALARS)
@example("h:\u00b2", None, None, None, None)  # int('²') after '²'.isdigit()
@example("h:2181", "nan", "inf", None, None)  # accepted as timeouts
@example("h:2181", None, None, None, 1.5)  # TypeError from os.path.isfile(1.5)
@example("h:2181", None, None, None, 10 ** 30)  # OverflowError: isfile takes an int for an fd
def test_connection_settings(hosts, session_timeout, connect_timeout, auth, tls_ca):
    try:
        checked = connection.validate_hosts(hosts)
    except connection.ZkError:
        pass
    else:
        for server in checked.partition("/")[0].split(","):
            host, colon, port = server.strip().rpartition(":")
            assert not colon or 0 < int(port) < 65536
    options = dict(hosts=hosts, session_timeout=session_timeout, connect_timeout=connect_timeout, auth=auth,
                   tls_ca=tls_ca)
    try:
        made = connection.Settings.from_options(options)
    except connection.ZkError:
        return
    assert 0 < made.session_timeout < float("inf") and 0 < made.connect_timeout < float("inf")
    assert "***" in repr(made) or not made.auth


# the runner: config file and command line

DURATIONS = ("session_timeout", "connect_timeout", "wait_timeout", "check_timeout", "change_delay", "health_delay",
             "health_interval", "health_timeout", "stop_timeout", "tick", "timeout", "poll")


def clean_run(argv, check=True):
    """What main() does before it connects (parse, log, connection settings, check_run): only clean
    errors, and what passes is usable: durations are finite, counts are numbers, data is bytes."""
    try:
        values = cli.parse(argv)
        Log(values["log_format"], (values["verbose"] or 0) - (values["quiet"] or 0))
        config.connection_settings(values)
        for name in DURATIONS:
            assert values.get(name) is None or 0 <= values[name] < float("inf"), (name, values[name])
        if check and values["cmd"] == "run":
            opts = runcmd.check_run(values)
            assert isinstance(opts.data, bytes) and opts.slots >= 1 and all(isinstance(a, str) for a in opts.command)
    except SystemExit as exc:
        assert exc.code in (0, exits.USAGE_ERROR), argv  # 0: --help or --version, maybe abbreviated
    except CLEAN:
        pass


OPTION_NAMES = sorted(set(cli.DEFAULTS) | {"command", "stop-signal", "mirror-dir", "acl"})
FILE_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(ANY_TEXT, SCALARS, max_size=2),
                        st.sampled_from(["a=/b", "/x", "TERM", "9", "-1", "nan", "@/nonexistent", "auth::rwcda"]))


@FUZZ
@given(st.one_of(YAMLISH, ANY_TEXT, YAML_TAGGED, st.dictionaries(st.sampled_from(OPTION_NAMES), FILE_VALUES, max_size=5)
                 .map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.binary(max_size=30)),
       st.sampled_from([["run"], ["cron", "--election", "/e"], ["farm", "join", "/f", "/tmp"], ["is-leader"],
                        ["farm", "export", "/f", "/tmp/x"], ["barrier", "/b"], ["pool", "ls"], ["elect"]]))
@example("2001-02-30: 1", ["run"])  # ValueError from PyYAML
@example("slots: !!int 0x", ["run"])  # ValueError from PyYAML
@example("a: !!bool x", ["run"])  # KeyError from PyYAML
@example(b"\xff", ["run"])  # UnicodeDecodeError
@example("slots: many\ncommand: [x]", ["run"])  # ValueError from int()
@example("data: 5\nregister: /r\ncommand: [x]", ["run"])  # AttributeError: 5.startswith
@example("mirror: 5\ncommand: [x]", ["run"])  # TypeError: iterating 5
@example("verbose: x\ncommand: [x]", ["run"])  # TypeError in main(): 'x' - 0
@example("stop_timeout: .nan\ncommand: [x]", ["run"])  # accepted: a NaN timeout
@example("slots: [2]\nlock: /l\ncommand: [x]", ["run"])  # TypeError: int([2])
def test_config_file(text, command):
    with tempfile.NamedTemporaryFile("wb", suffix=".yml") as handle:
        handle.write(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        handle.flush()
        try:
            loaded = config.load_file(handle.name)
        except config.ConfigError:
            pass
        else:
            assert isinstance(loaded, dict)
        for fmt in ("yaml", "json"):  # the local file of `zkherd farm join`
            try:
                assert isinstance(join.Conf(handle.name, fmt).read(), dict)
            except farm.FarmError:
                pass
        clean_run(command[:1] + ["--config", handle.name] + command[1:] + ["--", "true"])


# argv as Python gives it: no NUL, undecodable bytes as lone surrogates
ARGV_TEXT = st.text(st.characters(exclude_categories=(), exclude_characters="\x00"), max_size=20)
RUN_OPTIONS = ["--slots", "--stop-signal", "--reload-signal", "--mirror", "--mirror-dir", "--stop-timeout",
               "--wait-timeout", "--check-timeout", "--change-delay", "--health-delay", "--health-interval",
               "--health-rise", "--health-fall", "--rolling-slots", "--rolling-lock", "--lock", "--register",
               "--data", "--id", "--zk", "--session-timeout", "--connect-timeout", "--auth", "--on-change",
               "--register-when", "--log-format", "--acl"]
OPTION_VALUES = st.one_of(ARGV_TEXT, st.sampled_from(["1", "0", "-1", "nan", "inf", "1e999", "TERM", "sigkill", "64",
                                                      "/l", "/a/../b", "a=/z", "=/z", "a=", "\udcff=/z", "@x\udcff",
                                                      "\udcff", "auth::rwcda", "digest:u:x:r", "2\u00b2"]))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(RUN_OPTIONS), OPTION_VALUES), max_size=6),
       st.lists(ARGV_TEXT, max_size=2))
@example([("--register", "/r"), ("--data", "\udcff")], ["x"])  # UnicodeEncodeError
@example([("--mirror", "\x01\udcff=/z")], ["x"])
@example([("--stop-timeout", "nan"), ("--lock", "/l"), ("--wait-timeout", "inf")], ["x"])  # accepted before
@example([("--health-interval", "-inf")], ["x"])
def test_cli_run(options, command):
    argv = ["run"]
    for option, value in options:
        argv += [option, value]
    clean_run(argv + ["--"] + command)


@FUZZ
@given(st.lists(OPTION_VALUES, max_size=6), st.sampled_from([[], ["run"], ["farm"], ["farm", "ls"], ["farm", "set"],
                                                            ["cron"], ["barrier"], ["pool"], ["--zk"]]))
def test_cli_any_argv(words, start):
    clean_run(start + words, check=False)


@FUZZ
@given(OPTION_VALUES | SCALARS)
def test_signals(value):
    try:
        assert argtypes.parse_signal(value) > 0
    except config.ConfigError:
        pass


@pytest.mark.parametrize("text, message", [
    ("slots: many", "slots is not valid"), ("stop_timeout: .nan", "seconds must be a finite number"),
    ("on_change: sometimes", "on_change must be one of restart, reload, none"), ("no_wait: 1", "true or false"),
    ("lock: [/a]", "lock must be a single value"), ("command: {a: 1}", "command must be a list of words"),
])
def test_config_values_are_checked_like_the_command_line(tmp_path, text, message):
    cfg = tmp_path / "c.yml"
    cfg.write_text(text + "\n")
    with pytest.raises(config.ConfigError, match=message):
        cli.parse(["run", "--config", str(cfg), "--", "true"])


def test_config_values_are_converted(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("slots: '2'\nlock: /l\ndata: 5\nregister: /r\nverbose: true\nmirror: a=/z\ncommand: [sleep, 5]\n"
                   "stop_timeout: 3\nwait_timeout:\n")
    values = cli.parse(["run", "--config", str(cfg)])
    assert (values["slots"], values["data"], values["verbose"], values["mirror"], values["command"]) == \
        (2, "5", 1, ["a=/z"], ["sleep", "5"])
    assert values["stop_timeout"] == 3.0 and values["wait_timeout"] is None
    assert runcmd.check_run(values).data == b"5"
