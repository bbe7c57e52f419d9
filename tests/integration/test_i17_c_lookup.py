"""Issue 17 (lookups): a lookup that cannot connect fails once per task, fast, with a message
that says where lookups take their connection from (module_defaults do not reach them). The
README's "Using the modules" example, which passes the connection to both, is run by
test_i17_readme.py."""

from __future__ import annotations

import socket

from tests.support.playbook import run_playbook


def dead_port():
    """A local port where nothing listens (bound and closed: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    failing = {"zkherd_hosts": "127.0.0.1:%d" % port, "zkherd_connect_timeout": 3}
    _one, alone = timed_render(tmp_path, three("/a", errors="warn").splitlines()[0], failing)
    run, seconds = timed_render(tmp_path, three("/a", errors="warn"), failing)
    # before: each lookup waited its 3 s (two more than one alone: +6 s); now the first one's failure is
    # remembered for the rest of the render. Measured against one failing lookup in the same task, so
    # that the task's own time on a busy machine is not what is measured.
    assert seconds - alone < 2.0, (seconds, alone)
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
    run, seconds = timed_render(tmp_path, template, {"zkherd_connect_timeout": 3})
    assert not run["render"].get("failed"), run["render"]
    assert (tmp_path / "page").read_text().split() == ["alpha"] * 3
    assert seconds < 8.0, seconds  # one failed connect (3 s), not three (9 s); room for a busy machine
