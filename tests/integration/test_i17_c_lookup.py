"""Issue 17 (lookups): the README's "Using the modules" example runs as written, and a lookup that
cannot connect fails once per task, fast, with a message that says where lookups take their
connection from (module_defaults do not reach them)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.playbook import CALLBACKS, REPO, run_playbook

README_HOSTS = "zk1:2181,zk2:2181,zk3:2181/prod"


def readme_block(title):
    """The first ```yaml block after the README heading *title*."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## %s\n" % title, 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def dead_port():
    """A local port where nothing listens (bound and closed: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_readme_using_the_modules_runs_as_written(zk_server, zk, zk_base, tmp_path):
    """Only the servers are changed, as a user puts in theirs: the modules AND the lookup reach them."""
    play = readme_block("Using the modules")
    assert README_HOSTS in play
    (tmp_path / "play.yml").write_text(play.replace(README_HOSTS, zk_server.hosts + zk_base))
    (tmp_path / "files" / "app-config").mkdir(parents=True)
    (tmp_path / "files" / "app-config" / "cache").write_text('{"ttl": 60}\n')
    record = tmp_path / "record.json"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
               ANSIBLE_CALLBACKS_ENABLED="zkherd_record", ANSIBLE_NOCOLOR="1", ZKHERD_RECORD=str(record))
    env.pop("ZKHERD_HOSTS", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "play.yml",
                           "-e", "vault_zk_password=s3cret"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {r["task"]: r["result"] for r in json.loads(record.read_text())}
    assert results["Read many znodes with one connection"]["msg"] == [
        {"host": "db1.example.com", "port": 5432}, {"ttl": 60}]
    assert zk.get(zk_base + "/app/config/db")[0]


TIMED = [
    {"name": "t0", "ansible.builtin.set_fact": {"t0": "{{ lookup('pipe', 'date +%s.%N') | float }}"}},
    {"name": "render", "ansible.builtin.template": {"src": "{{ src }}", "dest": "{{ dest }}"},
     "ignore_errors": True},
    {"name": "t1", "ansible.builtin.debug": {"msg": "{{ lookup('pipe', 'date +%s.%N') | float - t0 | float }}"}},
]


def timed_render(tmp_path, template, play_vars, env=None):
    src = tmp_path / "page.j2"
    src.write_text(template)
    run = run_playbook(TIMED, play_vars=dict(play_vars, src=str(src), dest=str(tmp_path / "page")), env=env)
    return run, float(run["t1"]["msg"])


def three(term, **options):
    args = "".join(", %s=%r" % item for item in options.items())
    return "".join("{{ lookup('zkherd.ops.znode', '%s'%s) }}\n" % (term, args) for _n in range(3))


def test_three_failing_lookups_in_one_template_fail_once_fast(tmp_path):
    port = dead_port()
    run, seconds = timed_render(tmp_path, three("/a", errors="warn"),
                                {"zkherd_hosts": "127.0.0.1:%d" % port, "zkherd_connect_timeout": 3})
    # before: 3 x 3 s = 9+ s; now the first attempt's failure is remembered for the rest of the render
    assert seconds < 5.5, seconds
    assert not (tmp_path / "page").exists() or "cannot connect" not in (tmp_path / "page").read_text()
    assert "cannot connect to ZooKeeper at 127.0.0.1:%d within 3 s" % port in run.output
    assert "not tried again within 1 s" in run.output

    # strict (the default): the render fails with the first failure, which names where lookups
    # take their connection from
    run, seconds = timed_render(tmp_path, three("/a"), {"zkherd_connect_timeout": 1},
                                env={"ZKHERD_HOSTS": "127.0.0.1:%d" % port})
    assert run["render"]["failed"] and seconds < 4, seconds
    message = run["render"]["msg"]
    assert "cannot connect to ZooKeeper at 127.0.0.1:%d within 1 s" % port in message
    assert "module_defaults" not in message  # the hosts were given: no hint about where from


def test_default_hosts_failure_says_module_defaults_do_not_reach_lookups(tmp_path):
    run, seconds = timed_render(tmp_path, three("/a"), {"zkherd_connect_timeout": 1})
    assert run["render"]["failed"] and seconds < 4, seconds
    message = run["render"]["msg"]
    assert "cannot connect to ZooKeeper at 127.0.0.1:2181" in message
    assert "module_defaults do not reach lookups" in message
    assert "zkherd_hosts" in message and "ZKHERD_HOSTS" in message


def test_working_lookups_after_a_failed_one_in_the_same_template(zk_server, zk, zk_base, tmp_path):
    """A remembered failure is for those servers only: a real ZooKeeper still answers, three times."""
    zk.create(zk_base + "/a", b"alpha")
    port = dead_port()
    template = (three("/a", errors="ignore", hosts="127.0.0.1:%d" % port)
                + three(zk_base + "/a", hosts=zk_server.hosts))
    run, seconds = timed_render(tmp_path, template, {"zkherd_connect_timeout": 2})
    assert not run["render"].get("failed"), run["render"]
    assert (tmp_path / "page").read_text().split() == ["alpha"] * 3
    assert seconds < 4.5, seconds
