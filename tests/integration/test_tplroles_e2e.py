"""Templates end to end, on a real ZooKeeper with real `zkherd` processes: what the service and
render roles write (configuration, shipped template) runs as it is under `zkherd run --config` and
`zkherd render --config`; the README's example renders; templates roll one host at a time and a
failing version pauses the rollout (envconsul #173, docs/templates.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import yaml

from tests.integration.test_runner_config import stamp_seconds, stamps
from tests.integration.test_tplroles_service import play
from tests.support.runner import REPO, Zkherd
from tests.support.zkutil import wait_for

SERVE = "trap 'exit 0' TERM; while :; do sleep 0.05; done"


def ship_and_configure(tmp_path, role, template, entry, **ship_vars):
    """What the role writes for *entry*, in one playbook run (each start costs seconds of CPU): its
    templates shipped by the service role's tasks (tests.integration.test_tplroles_service.ship,
    with *ship_vars*), then its configuration rendered with the role's defaults and vars as task
    vars, without credentials (the test server has none). Returns the configuration's path."""
    found = {}
    for part in ("defaults", "vars"):
        found.update(yaml.safe_load((REPO / "roles" / role / part / "main.yml").read_text()) or {})
    found.update(zkherd_auth="", zkherd_acl=[], zkherd_hosts="unused:1",
                 service_template_dir=str(tmp_path / "shipped"), render_template_dir=str(tmp_path / "shipped"))
    dest = tmp_path / (entry["name"] + ".yml")
    loop = [entry] if role == "service" else "{{ __render_present }}"
    found.update(render_renderers=[entry])
    tasks = [{"name": "ship", "ansible.builtin.include_role": {"name": "zkherd.ops.service",
                                                               "tasks_from": "templates.yml"}},
             {"name": "config", "vars": found, "ansible.builtin.template": {
                 "src": str(REPO / "roles" / role / "templates" / template), "dest": str(dest), "mode": "0600"},
              "loop": loop}]
    run = play(tmp_path, tasks, dict(service_instances=[entry], service_template_dir=str(tmp_path / "shipped"),
                                     **ship_vars))
    assert run.returncode == 0, run.stdout + run.stderr
    return dest


def test_what_the_service_role_writes_runs_and_follows_znodes(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/app/port", b"8080", makepath=True)
    zk.create(zk_base + "/app/name", b"web")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.conf.j2").write_text(
        "name={{ znode('%(b)s/app/name') }}\nport={{ znode('%(b)s/app/port') }}\n" % {"b": zk_base})
    dest = tmp_path / "etc" / "app.conf"
    entry = {"name": "web", "command": ["sh", "-c", SERVE], "zk": zk_server.hosts, "on_change": "none",
             "change_delay": 0.05, "templates": [{"src": "app.conf.j2", "dest": str(dest)}]}
    config = ship_and_configure(tmp_path, "service", "config.yml.j2", entry)
    runner = Zkherd(["run", "--config", str(config)], tmp_path / "web.log")
    try:
        runner.wait_log("started child", timeout=30)
        assert dest.read_text() == "name=web\nport=8080\n"
        zk.set(zk_base + "/app/port", b"9090")
        wait_for(lambda: dest.read_text() == "name=web\nport=9090\n", 15, message=runner.log)
        assert not runner.has("Traceback")
    finally:
        runner.stop()


def test_what_the_render_role_writes_runs_checks_and_runs_on_change(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/lb/m1", json.dumps({"host": "10.0.0.1", "port": 80}).encode(), makepath=True)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "backends.cfg.j2").write_text(
        "{% for name, m in farm('" + zk_base + "/lb').items() %}server {{ name }} {{ m.host }}:{{ m.port }}\n"
        "{% endfor %}")
    dest = tmp_path / "etc" / "backends.cfg"
    changes = tmp_path / "changes"
    entry = {"name": "lb", "zk": zk_server.hosts, "change_delay": 0.05,
             "templates": [{"src": "backends.cfg.j2", "dest": str(dest)}],
             # every line a server line, or the set is refused
             "check_cmd": "! grep -qv '^server [a-z0-9]* [0-9.]*:[0-9]*$' \"$ZKHERD_STAGED_FILE\"",
             "on_change": "cat %s >> %s" % (dest, changes)}
    # what the render role does: the service role's shipping, to FOLDER/render/NAME/
    config = ship_and_configure(tmp_path, "render", "render.yml.j2", entry, _service_template_kind="render")
    renderer = Zkherd(["render", "--config", str(config)], tmp_path / "render.log")
    try:
        wait_for(lambda: changes.exists() and changes.read_text() == "server m1 10.0.0.1:80\n", 30,
                 message=renderer.log)
        zk.create(zk_base + "/lb/m2", json.dumps({"host": "10.0.0.2", "port": 80}).encode())
        wait_for(lambda: dest.read_text() == "server m1 10.0.0.1:80\nserver m2 10.0.0.2:80\n", 15,
                 message=renderer.log)
        zk.set(zk_base + "/lb/m2", json.dumps({"host": "10.0.0.2 bad", "port": 80}).encode())
        renderer.wait_log("check command rejected", timeout=15)
        assert dest.read_text() == "server m1 10.0.0.1:80\nserver m2 10.0.0.2:80\n"
        assert not renderer.has("Traceback")
    finally:
        renderer.stop()


def test_the_readme_template_example_renders(zk_server, zk, zk_base, tmp_path):
    readme = (REPO / "README.md").read_text()
    template = re.search(r"cat > backends\.cfg\.j2 <<'J2'\n(.*?)\nJ2\n", readme, re.S).group(1) + "\n"
    src = tmp_path / "backends.cfg.j2"
    src.write_text(template.replace("'/services/web'", "'%s/services/web'" % zk_base)
                   .replace("'/config/web/timeout'", "'%s/config/web/timeout'" % zk_base))
    zk.create(zk_base + "/services/web/w1", json.dumps({"host": "10.0.0.1", "port": 80, "enabled": 1}).encode(),
              makepath=True)
    zk.create(zk_base + "/services/web/w2", json.dumps({"host": "10.0.0.2", "port": 80, "enabled": 0}).encode())
    dest = tmp_path / "backends.cfg"
    done = subprocess.run([sys.executable, "-m", "zkherd", "render", "--zk", zk_server.hosts, "--once",
                           "%s=%s" % (src, dest)], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == "server w1 10.0.0.1:80\ntimeout 30s\n"


def test_templates_roll_one_host_at_a_time_and_a_failing_version_pauses(zk_server, zk, zk_base, tmp_path):
    znode, roll = zk_base + "/conf", zk_base + "/roll"
    zk.create(znode, b"good 1")
    src = tmp_path / "c.j2"
    src.write_text("{{ znode('%s') }}\n" % znode)
    runners = []
    for i in range(3):
        conf = tmp_path / ("conf%d" % i)
        args = ["run", "--zk", zk_server.hosts, "--session-timeout", "4", "--stop-timeout", "2", "--change-delay",
                "0.1", "--template", "%s=%s" % (src, conf), "--rolling-lock", roll,
                "--health", "grep -q good %s" % conf, "--health-delay", "0.3", "--health-interval", "0.1",
                "--health-fall", "1", "--", "sh", "-c", SERVE]
        runners.append(Zkherd(args, tmp_path / ("r%d.log" % i)))
    try:
        for runner in runners:
            runner.wait_log("child is healthy", timeout=30)
        zk.set(znode, b"good 2")
        for runner in runners:
            runner.wait_log("rolling lock released", timeout=30)
        windows = sorted((stamps(r.log(), "rolling lock acquired")[0], stamps(r.log(), "rolling lock released")[0])
                         for r in runners)
        for earlier, later in zip(windows, windows[1:]):
            assert stamp_seconds(earlier[1]) - 0.05 <= stamp_seconds(later[0]), windows
        zk.set(znode, b"bad 3")
        wait_for(lambda: any(r.has("configuration version failed") for r in runners), timeout=30)
        time.sleep(1.5)
        failing = next(r for r in runners if r.has("configuration version failed"))
        others = [r for r in runners if r is not failing]
        assert all(len(re.findall("configuration installed", r.log())) == 2 for r in others)  # bad 3 not installed
        zk.set(znode, b"good 4")
        for i in range(3):
            wait_for(lambda i=i: (tmp_path / ("conf%d" % i)).read_text() == "good 4\n", timeout=30)
    finally:
        for runner in runners:
            runner.stop()


def test_a_scheduled_renderers_configuration_renders_once_and_exits(zk_server, zk, zk_base, tmp_path):
    zk.create(zk_base + "/motd", b"hello", makepath=True)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "motd.j2").write_text("motd={{ znode('%s/motd') }}\n" % zk_base)
    dest = tmp_path / "etc" / "motd"
    entry = {"name": "motd", "zk": zk_server.hosts, "schedule": "hourly",
             "templates": [{"src": "motd.j2", "dest": str(dest)}]}
    config = ship_and_configure(tmp_path, "render", "render.yml.j2", entry, _service_template_kind="render")
    done = subprocess.run([sys.executable, "-m", "zkherd", "render", "--config", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and dest.read_text() == "motd=hello\n", done.stderr
