"""Text and values the farm commands cannot carry (review of the DJB typed-values fix): a lone
surrogate from ZooKeeper (valid JSON "\\ud800", which no file, file name, stdout or Ansible result can
hold) and a YAML CONF's date or non-text key. Before, each ended a process with exit 70 or a
traceback: `farm export --format php|template`, `farm get`, `farm ls --fields`, `farm join` with a
YAML CONF; the zkherd.ops.farm module wrote the member and then failed. Now the member is refused
with a message naming the field, and nothing else stops."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.support.playbook import REPO, run_playbook
from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for

ENV = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
LONE = b'{"s": "\\ud800"}'


def zkherd(*args):
    return subprocess.run([sys.executable, "-m", "zkherd", *args], cwd=REPO, capture_output=True, text=True,
                          env=ENV, timeout=60, check=False)


def test_farm_get_of_a_lone_surrogate_value(zk_server, zk, zk_base):
    node = zk_base + "/farm/m1"
    zk.create(node, LONE, makepath=True)
    result = zkherd("--zk", zk_server.hosts, "farm", "get", node, "s")
    assert "Traceback" not in result.stderr and result.returncode == 65 and "lone surrogate" in result.stderr, result


def test_farm_ls_fields_of_a_lone_surrogate_value(zk_server, zk, zk_base):
    farm_path = zk_base + "/farm"
    zk.create(farm_path + "/m1", LONE, makepath=True)
    result = zkherd("--zk", zk_server.hosts, "farm", "ls", farm_path, "--fields", "s")
    assert "Traceback" not in result.stderr and result.returncode in (0, 65), result


def test_farm_export_php_of_a_lone_surrogate_value(zk_server, zk, zk_base, tmp_path):
    farm_path = zk_base + "/farm"
    zk.create(farm_path + "/m1", LONE, makepath=True)
    zk.create(farm_path + "/m2", b'{"s": "ok"}', makepath=True)
    result = zkherd("--zk", zk_server.hosts, "farm", "export", farm_path, str(tmp_path / "f.php"), "--format", "php",
                    "--once")
    assert result.returncode != 70 and "internal error" not in result.stderr, result
    assert "m2" in (tmp_path / "f.php").read_text() and "lone surrogate" in result.stderr, result


def test_farm_export_template_of_a_lone_surrogate_value(zk_server, zk, zk_base, tmp_path):
    farm_path = zk_base + "/farm"
    zk.create(farm_path + "/m1", LONE, makepath=True)
    tpl = tmp_path / "t.j2"
    tpl.write_text("{% for n, m in members.items() %}{{ n }} {{ m.s }}\n{% endfor %}")
    result = zkherd("--zk", zk_server.hosts, "farm", "export", farm_path, str(tmp_path / "out"), "--format",
                    "template", "--template", str(tpl), "--once")
    assert result.returncode != 70 and "internal error" not in result.stderr, result


def yaml_member(zk_server, zk, zk_base, tmp_path, text):
    """`farm join` of a YAML CONF holding *text*: (farm path, CONF, the member)."""
    farm_path, conf = zk_base + "/farm", tmp_path / "member.yml"
    conf.write_text(text)
    zk.ensure_path(farm_path)
    member = Zkherd(["farm", "join", farm_path, str(conf), "--zk", zk_server.hosts, "--name", "m1", "--poll", "0.1"],
                    tmp_path / "join.log")
    return farm_path, conf, member


def test_yaml_member_with_a_date_does_not_end_with_70(zk_server, zk, zk_base, tmp_path):
    """A YAML CONF is untrusted input: `since: 2020-01-01` is a date, which json.dumps refuses."""
    farm_path, conf, member = yaml_member(zk_server, zk, zk_base, tmp_path, "x: 1\nsince: 2020-01-01\n")
    try:
        member.wait_log("cannot sync the member")
        assert member.proc.poll() is None and not member.has("internal error"), member.log()[-2000:]
        assert member.has("a date in the field since"), member.log()[-2000:]
        conf.write_text("x: 1\nsince: '2020-01-01'\n")  # quoted: text
        wait_for(lambda: zk.exists(farm_path + "/m1") is not None, 10, message=lambda: member.log()[-2000:])
        assert json.loads(zk.get(farm_path + "/m1")[0]) == {"x": 1, "since": "2020-01-01"}
    finally:
        member.stop()


def test_yaml_member_with_a_non_string_key_does_not_end_with_70(zk_server, zk, zk_base, tmp_path):
    """`on: 1` is the key True in YAML 1.1: joined, then the first merge's flatten() adds str + bool."""
    _farm_path, conf, member = yaml_member(zk_server, zk, zk_base, tmp_path, "x: a\non: 1\n")
    try:
        time.sleep(2)
        conf.write_text("x: b\non: 1\n")
        time.sleep(3)
        assert member.proc.poll() is None and not member.has("internal error"), member.log()[-2000:]
    finally:
        member.stop()


def test_the_farm_module_refuses_a_lone_surrogate_member_before_writing(zk_server, zk, zk_base):
    farm = zk_base + "/services/web"
    zk.create(farm + "/m1", LONE, makepath=True)
    run = run_playbook([{"name": "set", "zkherd.ops.farm": {"farm": farm, "member": "m1", "set": {"t": "x"}}}],
                       hosts=zk_server.hosts)
    assert run.rc != 0 and "lone surrogate" in run.output, run.output[-1500:]
    assert zk.get(farm + "/m1")[0] == LONE  # not written


def test_farm_set_never_writes_a_member_its_readers_refuse(zk_server, zk, zk_base):
    """Argv bytes that are not UTF-8 (a Latin-1 "M\xfcller" from a file) become surrogateescape
    characters, which JSON stores as "\\udcfc": the member every reader then refuses. Now refused as
    bad usage (64) before connecting - also with no server at all - nothing written (third review)."""
    node = zk_base + "/farm/m1"
    zk.create(node, b'{"a": "b"}', makepath=True)
    for hosts in (zk_server.hosts, "127.0.0.1:1"):
        for field, value in ((b"s", b"M\xfcller"), (b"M\xfcller", b"v")):
            done = subprocess.run([sys.executable.encode(), b"-m", b"zkherd", b"--zk", hosts.encode(), b"farm",
                                   b"set", node.encode(), field, value], cwd=REPO, capture_output=True, env=ENV,
                                  timeout=60, check=False)
            assert done.returncode == 64 and b"not UTF-8" in done.stderr and b"Traceback" not in done.stderr, done
            assert zk.get(node)[0] == b'{"a": "b"}'


def test_the_walk_for_lone_surrogates_takes_memory_in_proportion_to_the_member():
    """A dotted name per field made a member of long keys and many fields take gigabytes (a 900 KB
    member: 18 GB; here 123 KB peaked at 200 MB). Any emoji starts the walk: JSON stores it escaped."""
    import tracemalloc

    from zkherd.common import farm
    doc = {"k" * 100_000: {"x%d" % i: 0 for i in range(2000)}, "e": "\U0001F600"}
    data = farm.encode_member(doc)
    tracemalloc.start()
    try:
        assert farm.decode_member(data) == doc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * len(data), "decode_member of %d bytes peaked at %d bytes" % (len(data), peak)


def test_farm_join_merges_a_long_key_above_many_fields_in_little_memory(zk_server, zk, zk_base, tmp_path):
    """The three-way merge compared dotted fields: a 600 KB key above 30,000 fields made 30,000 names
    of 600 KB each (18 GB) from a 900 KB member anyone with write access to the farm can set: exit 70
    (MemoryError) under a 2 GB limit. A field is now the tuple of its names, sharing the keys."""
    farm_path, conf = zk_base + "/farm", tmp_path / "member.json"
    conf.write_text('{"a": "1"}')
    zk.ensure_path(farm_path)
    member = Zkherd(["farm", "join", farm_path, str(conf), "--zk", zk_server.hosts, "--name", "m1", "--poll", "0.1"],
                    tmp_path / "join.log", prefix=["prlimit", "--as=%d" % (2 << 30)])  # a regression fails alone
    try:
        member.wait_log("joined the farm")
        hostile = {"k" * 600_000: {"x%d" % i: 0 for i in range(30_000)}, "a": "1"}
        zk.set(farm_path + "/m1", json.dumps(hostile).encode())
        wait_for(lambda: conf.stat().st_size > 600_000, 15, message=lambda: member.log()[-2000:])
        assert json.loads(conf.read_text()) == hostile
        assert member.proc.poll() is None and not member.has("internal error|Traceback"), member.log()[-2000:]
        zk.set(farm_path + "/m1", b'{"a": "2"}')
        wait_for(lambda: json.loads(conf.read_text()) == {"a": "2"}, 10, message=lambda: member.log()[-2000:])
    finally:
        member.stop()
