"""`zkherd farm join` follows local edits with inotify (issue 17): with a long --poll an edit still
reaches ZooKeeper at once, whether the file is written in place, replaced by rename (vim, sed -i),
deleted and made again, or is a folder of a DJB tree made after the start; --no-inotify falls back
to polling, and the log and the metrics say which is used."""

from __future__ import annotations

import json
import os
import time

from tests.support.runner import Zkherd
from tests.support.zkutil import wait_for

QUICK = 3.0  # well under the --poll 30 of these members: only inotify gets an edit through in time


def join(hosts, farm, conf, log, *extra):
    return Zkherd(["farm", "join", farm, str(conf), "--zk", hosts, "--session-timeout", "1.5", "--name", "m1",
                   *extra], log)


def member(zk, node):
    return json.loads(zk.get(node)[0])


def test_file_edits_in_place_by_rename_and_recreated(zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/web", tmp_path / "member.json"
    zk.ensure_path(farm)
    conf.write_text('{"port": "80"}')
    (tmp_path / "other.json").write_text("{}")
    metrics = tmp_path / "join.prom"
    proc = join(zk_server.hosts, farm, conf, tmp_path / "j.log", "--poll", "30", "--metrics-file", str(metrics))
    proc.wait_log("joined the farm")
    assert proc.has("following local edits with inotify")
    wait_for(lambda: metrics.exists() and 'zkherd_farm_join_watch{mode="inotify"} 1.0' in metrics.read_text())

    conf.write_text('{"port": "81"}')  # in place
    wait_for(lambda: member(zk, farm + "/m1") == {"port": "81"}, timeout=QUICK)

    tmp = tmp_path / ".member.json.swp"  # vim / sed -i: a new file renamed over CONF (a new inode)
    tmp.write_text('{"port": "82"}')
    os.rename(tmp, conf)
    wait_for(lambda: member(zk, farm + "/m1") == {"port": "82"}, timeout=QUICK)

    conf.unlink()
    time.sleep(0.3)
    conf.write_text('{"port": "83"}')
    wait_for(lambda: member(zk, farm + "/m1") == {"port": "83"}, timeout=QUICK)

    (tmp_path / "other.json").write_text('{"x": 1}')  # another file of the folder: no sync, no noise
    for i in range(20):  # a burst of writes: the last one is what the member holds
        conf.write_text('{"port": "%d"}' % (100 + i))
    wait_for(lambda: member(zk, farm + "/m1") == {"port": "119"}, timeout=QUICK)
    assert not proc.has("Traceback")
    proc.stop()


def test_djb_folder_made_later(zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/db", tmp_path / "db"
    zk.ensure_path(farm)
    conf.mkdir()
    (conf / "enabled").write_text("0\n")
    proc = join(zk_server.hosts, farm, conf, tmp_path / "j.log", "--poll", "30")
    proc.wait_log("joined the farm")
    (conf / "mysql" / "replication").mkdir(parents=True)  # nested folders made after the start
    (conf / "mysql" / "replication" / "delay").write_text("3\n")
    wait_for(lambda: member(zk, farm + "/m1").get("mysql") == {"replication": {"delay": "3"}}, timeout=QUICK)
    (conf / "mysql" / "replication" / "delay").write_text("4\n")  # a file in a folder watched since
    wait_for(lambda: member(zk, farm + "/m1")["mysql"]["replication"]["delay"] == "4", timeout=QUICK)
    proc.stop()


def test_no_inotify_polls(zk_server, zk, zk_base, tmp_path):
    farm, conf = zk_base + "/poll", tmp_path / "member.json"
    zk.ensure_path(farm)
    conf.write_text('{"a": "1"}')
    metrics = tmp_path / "join.prom"
    proc = join(zk_server.hosts, farm, conf, tmp_path / "j.log", "--poll", "0.2", "--no-inotify",
                "--metrics-file", str(metrics))
    proc.wait_log("joined the farm")
    assert proc.has("following local edits by polling every 0.2s")
    conf.write_text('{"a": "2"}')
    wait_for(lambda: member(zk, farm + "/m1") == {"a": "2"}, timeout=QUICK)
    wait_for(lambda: metrics.exists() and 'zkherd_farm_join_watch{mode="poll"} 1.0' in metrics.read_text())
    proc.stop()
