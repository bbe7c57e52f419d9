"""The roles' metrics options (issue 16, "Metrics"), by real ansible-playbook on localhost: each
role's unit passes `--metrics-listen`/`--metrics-file` to its runner only when an entry sets them,
opens the metrics file's folder in the hardened unit (ReadWritePaths=), and every long-running unit
gets the state folder /run/zkherd/UNIT (RuntimeDirectory=) that `zkherd status --local` reads; two
units of a host may not share a listen port or a metrics file (roles/_common tasks/metrics.yml).
On real systemd boxes: molecule/default (an entry with metrics_listen, scraped from the box)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.support.playbook import REPO, run_cases

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
PROM = "/var/lib/prometheus/node-exporter"
ZKHERD = "/bin/true"  # systemd-analyze verify wants an executable ExecStart=

# role -> (its entries variable, its present entries, its runner variable, a minimal entry)
ROLES = {
    "service": ("service_instances", "_service_present", "service_zkherd", {"name": "web", "command": ["sleep", "1"]}),
    "farm_member": ("farm_member_farms", "__farm_member_present", "farm_member_zkherd",
                    {"name": "web", "farm": "/farms/web", "conf": "/etc/web/farm.yml"}),
    "farm_export": ("farm_export_exports", "__farm_export_present", "farm_export_zkherd",
                    {"name": "web", "farm": "/farms/web", "dest": "/etc/lb/web.json"}),
    "render": ("render_renderers", "__render_present", "render_zkherd",
               {"name": "web", "templates": [{"src": "a.j2", "dest": "/etc/web/a.conf"}]}),
}
# Each unit template, the role and the unit name it gives the entry `web`.
UNITS = [("service", "unit.service.j2", "zkherd-web"),
         ("farm_member", "zkherd-farm-member.service.j2", "zkherd-farm-member-web"),
         ("farm_export", "zkherd-farm-export.service.j2", "zkherd-farm-export-web"),
         ("render", "zkherd-render.service.j2", "zkherd-render-web"),
         ("cron", "zkherd-elect.service.j2", "zkherd-elect-web"),
         ("cron", "zkherd-cron.service.j2", "zkherd-cron-web")]


def role_vars(role, **overrides):
    found = {}
    for part in ("defaults", "vars"):
        found.update(yaml.safe_load((REPO / "roles" / role / part / "main.yml").read_text()) or {})
    found.update(zkherd_hosts="zk1:2181", **overrides)
    return found


def play(tmp_path, tasks, play_vars, env=None):
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars": play_vars,
                                     "tasks": tasks}], sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", LANG="C.UTF-8", **(env or {}))
    return subprocess.run([ANSIBLE_PLAYBOOK, str(book)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def entry_vars(role, extra):
    """The role's variables with one entry `web` (plus *extra* keys); cron: a pool and a job."""
    if role == "cron":
        pool = {"name": "web", "election": "/cron/web", **extra}
        job = {"name": "web", "pool": "web", "schedule": "hourly", "command": "true",
               **{k: v for k, v in extra.items() if k != "metrics_listen"}}
        return role_vars("cron", cron_pools=[pool], cron_jobs=[job], cron_zkherd=ZKHERD)
    variable, zkherd, entry = ROLES[role][0], ROLES[role][2], ROLES[role][3]
    return role_vars(role, **{variable: [dict(entry, **extra)], zkherd: ZKHERD})


def render_cases(folder, extra):
    """The cases that render every role's unit for the entry `web` with *extra* keys into *folder*,
    by ansible.builtin.template from the role's own templates (its _common_*.j2 symlinks resolve
    there); all share one task, parametrised by the case's variables."""
    cases = {}
    for role, template, unit in UNITS:
        present = {"cron": "__cron_pools_present" if "elect" in template else "__cron_jobs_timer"}.get(
            role, ROLES.get(role, (None, None))[1])
        cases["%s-%s" % (folder.name, unit)] = dict(
            entry_vars(role, extra), case_src=str(REPO / "roles" / role / "templates" / template),
            case_dest=str(folder / (unit + ".service")), case_present=present)
    return cases


RENDER = [{"name": "render", "ansible.builtin.template": {"src": "{{ case_src }}", "dest": "{{ case_dest }}",
                                                          "mode": "0644"},
           "loop": "{{ lookup('vars', case_present) }}"}]


def check_tasks(steps):
    """Only the metrics check of each role (the role's own task), in one play: [(role, entries)]."""
    tasks = []
    for role, entries in steps:
        variable = ROLES[role][0]
        role_tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())
        check = next(t for t in role_tasks if t["name"].startswith("Check the metrics options"))
        values = role_vars(role, **{variable: entries})
        tasks.append({"name": "%s %d" % (role, len(tasks)), "vars": dict(values, **check["vars"]),
                      "ansible.builtin.include_role": check["ansible.builtin.include_role"]})
    return tasks


def check_case(steps):
    return {"vars": {"zkherd_hosts": "zk1:2181"}, "tasks": check_tasks(steps)}


FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "%s"
case "$*" in
  *show*) printf 'Id=zkherd-old.service\\nNames=zkherd-old.service\\nLoadState=loaded\\n'
          printf 'ActiveState=active\\nSubState=running\\nUnitFileState=enabled\\n' ;;
  *is-enabled*) echo enabled ;;
  *is-active*) echo active ;;
esac
exit 0
"""

LISTENS = ["localhost:", "9464x", "0", "70000", "a:b:9464", "::1:9464"]
ARGSPEC_KEYS = {"metrics_listen": "127.0.0.1:9464", "metrics_file": PROM + "/zkherd-web.prom"}
VALIDATE = [{"name": "validate", "ansible.builtin.validate_argument_spec": {
    "argument_spec": "{{ (lookup('file', spec_file) | from_yaml).argument_specs.main.options }}"}}]
SERVICE = [{"name": "service", "ansible.builtin.include_role": {"name": "zkherd.ops.service"}}]


def service_case(base, name, entry):
    """The whole service role for *entry* on a host of its own (folders under base/name)."""
    units, config = base / name / "units", base / name / "etc"
    for folder in (units, config):
        folder.mkdir(parents=True, exist_ok=True)
    return {"vars": role_vars("service", service_instances=[entry], service_unit_dir=str(units),
                              service_config_dir=str(config), service_template_dir=str(config / "templates")),
            "tasks": SERVICE}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Every case of this module in one ansible-playbook run (each start costs seconds of CPU), each
    case a host of its own (tests.support.playbook.run_cases): the units rendered three ways, the
    metrics checks, the argument specs, and the whole service role with an absent and a present
    entry, whose second run (`again`) comes from the tests that need it.
    systemd is not PID 1 here: a stand-in systemctl records what the role asks, one file per case
    (molecule does it for real)."""
    base = tmp_path_factory.mktemp("rolemetrics")
    bin_dir, calls = base / "bin", base / "calls"
    bin_dir.mkdir()
    calls.mkdir()
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL % ("%s/${ZKHERD_CASE}" % calls))
    (bin_dir / "systemctl").chmod(0o755)
    cases = {}
    for variant, extra in (("metrics", {"metrics_listen": "127.0.0.1:9464", "metrics_file": PROM + "/zkherd-web.prom"}),
                           ("plain", {}),
                           ("systemd", {"metrics_listen": "9464", "metrics_file": "/var/lib/x y/zkherd-%i.prom"})):
        (base / variant).mkdir()
        for name, values in render_cases(base / variant, extra).items():
            cases[name] = {"vars": values, "tasks": RENDER}
    web = ROLES["service"][3]
    member = dict(ROLES["farm_member"][3], metrics_listen="[::1]:9470")
    service = dict(web, metrics_listen="0.0.0.0:9470")
    other = dict(service, metrics_listen="9471", metrics_file=str(base / "prom" / "web.prom"))
    cases.update({
        "one-port": check_case([("service", [dict(web, metrics_listen="127.0.0.1:9464"),
                                             dict(web, name="api", metrics_listen="9464")])]),
        "one-file": check_case([("service", [dict(web, metrics_file=PROM + "/a.prom"),
                                             dict(web, name="api", metrics_file=PROM + "/a.prom")])]),
        "other-role-port": check_case([("farm_member", [member]), ("service", [service])]),
        "distinct-ports": check_case([("farm_member", [member]), ("service", [other]), ("service", [other])]),
    })
    for i, listen in enumerate(LISTENS):
        cases["listen-%d" % i] = check_case([("service", [dict(web, metrics_listen=listen)])])
    for role, values in [("service", {"service_instances": [dict(web, **ARGSPEC_KEYS)]}),
                         ("farm_member", {"farm_member_farms": [dict(ROLES["farm_member"][3], **ARGSPEC_KEYS)]}),
                         ("farm_export", {"farm_export_exports": [dict(ROLES["farm_export"][3], **ARGSPEC_KEYS)]}),
                         ("render", {"render_renderers": [dict(ROLES["render"][3], **ARGSPEC_KEYS)]}),
                         ("cron", {"cron_pools": [{"name": "p", "election": "/e", **ARGSPEC_KEYS}],
                                   "cron_jobs": [{"name": "j", "pool": "p", "command": "true",
                                                  "metrics_file": ARGSPEC_KEYS["metrics_file"]}]})]:
        spec = str(REPO / "roles" / role / "meta" / "argument_specs.yml")
        cases["argspec-" + role] = {"vars": dict(values, spec_file=spec), "tasks": VALIDATE}
    cases["argspec-cron-listen"] = {"vars": {
        "cron_jobs": [{"name": "j", "pool": "p", "command": "true", "metrics_listen": "9464"}],
        "spec_file": str(REPO / "roles" / "cron" / "meta" / "argument_specs.yml")}, "tasks": VALIDATE}
    # the service role: an absent entry `old` (its files there to remove) and a present `web`
    old = base / "service-absent"
    for folder in (old / "units", old / "etc" / "templates" / "service" / "old"):
        folder.mkdir(parents=True)
    for path in (old / "units" / "zkherd-old.service", old / "etc" / "old.yml", old / "etc" / "old.env",
                 old / "etc" / "keep.yml", old / "etc" / "templates" / "service" / "old" / "a.j2"):
        path.write_text("x\n")
    service_cases = {"service-absent": service_case(base, "service-absent", {"name": "old", "state": "absent"}),
                     "service-present": service_case(base, "service-present", dict(
                         web, metrics_listen="127.0.0.1:9464", metrics_file=str(base / "prom-web" / "web.prom")))}
    cases.update(service_cases)
    env = {"PATH": "%s:%s" % (bin_dir, os.environ["PATH"])}
    run = run_cases(cases, env=env)
    first_calls = {name: (calls / name).read_text().splitlines() if (calls / name).exists() else []
                   for name in service_cases}
    for name in service_cases:
        (calls / name).write_text("")

    def again():
        return run_cases(service_cases, env=env)

    return {"run": run, "base": base, "calls": calls, "first_calls": first_calls, "again": again}


def units_of(site, variant):
    """{unit name: text} of one rendering variant; every render case passed."""
    out = {}
    for _role, _template, unit in UNITS:
        case = site["run"].host("%s-%s" % (variant, unit))
        assert case.records and case.failure() is None, (unit, case.failure(), site["run"].output[-3000:])
        out[unit] = (site["base"] / variant / (unit + ".service")).read_text()
    return out


def exec_start(unit):
    return next(line for line in unit.splitlines() if line.startswith("ExecStart="))


def test_metrics_options_reach_exec_start_and_the_folder_is_writable(site):
    units = units_of(site, "metrics")
    for name, unit in units.items():
        line = exec_start(unit)
        if name == "zkherd-cron-web":  # a per-tick job writes a file; only the election member listens
            assert "--metrics-listen" not in line, line
        else:
            assert ' --metrics-listen "127.0.0.1:9464"' in line, (name, line)
        assert ' --metrics-file "%s/zkherd-web.prom"' % PROM in line, (name, line)
        rw = [line for line in unit.splitlines() if line.startswith("ReadWritePaths=")]
        assert len(rw) == 1 and '"%s"' % PROM in rw[0].split("=", 1)[1].split(), (name, rw)
        assert "\nRuntimeDirectory=zkherd/%s\n" % name in unit, (name, unit)
    # the election member's files are its own (UMask=0077), but node_exporter must read the metrics file
    assert "\nUMask=0022\n" in units["zkherd-elect-web"]
    # the job's command stays after `--`, the options before it
    job = exec_start(units["zkherd-cron-web"])
    assert job.index("--metrics-file") < job.index(" -- ")


def test_without_metrics_options_the_units_only_get_their_state_folder(site):
    units = units_of(site, "plain")
    for name, unit in units.items():
        assert "--metrics" not in unit, (name, exec_start(unit))
        # under Ansible an empty macro call is None: the root cron job's ExecStart once ended in "None"
        assert "None" not in exec_start(unit), (name, exec_start(unit))
        assert PROM not in unit
        assert "\nRuntimeDirectory=zkherd/%s\n" % name in unit, (name, unit)
    # units that already have a RuntimeDirectory= of their own name the state folder: systemd would
    # join both into one colon-separated $RUNTIME_DIRECTORY
    elect = units["zkherd-elect-web"]
    assert ' --state-dir "/run/zkherd/zkherd-elect-web"' in exec_start(elect)
    assert "\nRuntimeDirectory=zkherd-leases\n" in elect and elect.count("RuntimeDirectoryMode=") == 1
    assert "\nUMask=0077\n" in elect
    for name in ("zkherd-web", "zkherd-farm-member-web", "zkherd-farm-export-web", "zkherd-render-web"):
        assert "--state-dir" not in exec_start(units[name]) and "\nRuntimeDirectoryMode=0755\n" in units[name]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_units_with_metrics_are_valid_systemd_units(site, tmp_path):
    units = units_of(site, "systemd")
    folder = tmp_path / "units"
    folder.mkdir()
    for name, text in units.items():
        (folder / (name + ".service")).write_text(text)
    check = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(map(str, folder.iterdir()))],
                           capture_output=True, text=True, check=False, timeout=120)
    complaints = [line for line in check.stderr.splitlines() if "zkherd-" in line and "Unknown user" not in line]
    assert not complaints, check.stderr
    assert '--metrics-file "/var/lib/x y/zkherd-%%i.prom"' in exec_start(units["zkherd-web"])  # % literal


def failure(site, case):
    """The failure message of a case that must have failed (its play ended on the failed task)."""
    ran = site["run"].host(case)
    assert ran.records, (case, site["run"].output[-3000:])
    message = ran.failure()
    assert message is not None, (case, "passed", ran.records)
    return message


def test_two_entries_on_one_port_fail_the_role(site):
    message = failure(site, "one-port")
    assert "zkherd-api.service and zkherd-web.service both use metrics port 9464" in message, message
    message = failure(site, "one-file")
    assert "both use metrics file %s/a.prom" % PROM in message, message


def test_a_port_another_role_took_in_the_play_fails_too(site):
    message = failure(site, "other-role-port")
    assert "zkherd-web.service and zkherd-farm-member-web.service both use metrics port 9470" in message, message
    # the same role again with the same entry is no clash with itself; distinct ports are fine
    ran = site["run"].host("distinct-ports")
    assert ran.records and ran.failure() is None, ran.failure()
    assert (site["base"] / "prom").is_dir()  # the metrics file's folder, made for ReadWritePaths=


@pytest.mark.parametrize("index", range(len(LISTENS)), ids=LISTENS)
def test_a_listen_address_that_is_not_addr_port_fails(site, index):
    message = failure(site, "listen-%d" % index)
    assert "is not [ADDR:]PORT" in message, (LISTENS[index], message)


def test_an_absent_service_goes_through_the_common_removal(site):
    """state: absent in the service role, now roles/_common remove_units.yml: stopped and disabled,
    unit, configuration, environment file and shipped templates removed, systemd reset and reloaded."""
    ran = site["run"].host("service-absent")
    assert ran.records and ran.failure() is None, (ran.failure(), site["run"].output[-3000:])
    units, config = site["base"] / "service-absent" / "units", site["base"] / "service-absent" / "etc"
    assert sorted(p.name for p in units.iterdir()) == []
    assert sorted(p.name for p in config.iterdir()) == ["keep.yml", "templates"]
    assert not (config / "templates" / "service" / "old").exists()
    asked = site["first_calls"]["service-absent"]
    assert any("stop" in line.split() and "zkherd-old.service" in line for line in asked), asked
    assert any("disable" in line.split() and "zkherd-old.service" in line for line in asked), asked
    assert "reset-failed zkherd-old.service" in asked and "daemon-reload" in asked, asked
    again = rerun(site).host("service-absent")
    assert again.records and again.failure() is None and again.changed() == 0, again.records


def rerun(site):
    """The service cases' second run (once per module, for both tests that need it)."""
    if "second" not in site:
        site["second"] = site["again"]()
    return site["second"]


def test_the_argument_specs_take_the_metrics_keys_where_they_fit(site):
    """Each role's own argument validation (meta/argument_specs.yml) runs first when the role is
    included: the keys pass where documented, and a cron job refuses metrics_listen (a per-tick job
    does not serve)."""
    for role in ("service", "farm_member", "farm_export", "render", "cron"):
        ran = site["run"].host("argspec-" + role)
        assert ran.records and ran.failure() is None, (role, ran.failure())
    assert "metrics_listen" in failure(site, "argspec-cron-listen")


def test_a_present_service_starts_through_the_common_tasks_and_the_handler_restarts_it(site):
    """The whole service role with its start moved onto roles/_common start_units.yml: the unit
    carries the metrics options, systemd is asked to enable and start it; a unit that was running
    (the stand-in says active) and whose files changed is restarted by the handler; a second run
    changes nothing and restarts nothing."""
    ran = site["run"].host("service-present")
    assert ran.records and ran.failure() is None, (ran.failure(), site["run"].output[-3000:])
    base = site["base"]
    unit = (base / "service-present" / "units" / "zkherd-web.service").read_text()
    wanted = ' --metrics-listen "127.0.0.1:9464" --metrics-file "%s"' % (base / "prom-web" / "web.prom")
    assert wanted in exec_start(unit), exec_start(unit)
    assert (base / "prom-web").is_dir()
    asked = site["first_calls"]["service-present"]
    assert "daemon-reload" in asked, asked
    assert any("restart" in line.split() and "zkherd-web.service" in line for line in asked), asked
    again = rerun(site).host("service-present")
    assert again.records and again.failure() is None and again.changed() == 0, again.records
    calls = site["calls"] / "service-present"
    asked = calls.read_text().splitlines() if calls.exists() else []
    assert not [line for line in asked if line.split()[:1] in (["restart"], ["start"], ["daemon-reload"])], asked
