"""Review 15 of the template roles, fixed (roles/service, roles/render): by real ansible-playbook on
localhost - refused folders, separate and pruned template folders, the file mode of new rendered
files, the TLS key handed to a non-root runner by LoadCredential=, the handlers' units kept per
role. The systemd-level checks (a template change restarts the service, not the renderers; a
scheduled renderer whose znode is missing does not fail the play) are in molecule/default/verify.yml."""

from __future__ import annotations

import pytest
import yaml

from tests.integration.test_review15_roles import render_task
from tests.integration.test_tplroles_render_role import ENTRY as RENDER_ENTRY
from tests.integration.test_tplroles_render_role import role_vars as render_role_vars
from tests.integration.test_tplroles_service import play, role_vars, ship
from tests.support.playbook import REPO, run_cases

TLS = {"tls_ca": "/etc/zkherd/tls/ca.pem", "tls_cert": "/etc/zkherd/tls/cert.pem", "tls_key": "/etc/zkherd/tls/key.pem"}


def service_task(name):
    return next(task for task in yaml.safe_load((REPO / "roles" / "service" / "tasks" / "main.yml").read_text())
                if task["name"] == name)


REFUSED_DESTS = ("/etc/zkherd/app.conf", "/etc/zkherd/templates/web/x.conf", "/etc/zkherd/a/b/c.conf")
# (file name, role, template, entry, overrides): the role's file for one entry, rendered with the
# role's defaults and vars (plus overrides) by ansible.builtin.template
TLS_ENTRY = {"name": "tls", "command": ["true"],
             "templates": [{"src": "k.j2", "dest": "/srv/tls/key.pem", "mode": "0600"},
                           {"src": "c.j2", "dest": "/srv/tls/cert.pem", "mode": "0600"}]}
NON_ROOT_SERVICE = {"name": "web", "command": ["true"], "user": "www-data", "options": TLS}
RENDERS = [
    ("mode-0600.yml", "render", "render.yml.j2", dict(RENDER_ENTRY, mode="0600"), {}),
    ("mode-unset.yml", "render", "render.yml.j2", RENDER_ENTRY, {}),
    ("tls-modes.yml", "service", "config.yml.j2", TLS_ENTRY, {}),
    ("mixed-modes.yml", "service", "config.yml.j2",
     dict(TLS_ENTRY, templates=[TLS_ENTRY["templates"][0], {"src": "c.j2", "dest": "/srv/tls/cert.pem"}]), {}),
    ("haproxy.yml", "render", "render.yml.j2", dict(RENDER_ENTRY, user="haproxy"), {"render_runner_options": TLS}),
    ("haproxy.service", "render", "zkherd-render.service.j2", dict(RENDER_ENTRY, user="haproxy"),
     {"render_runner_options": TLS}),
    ("root.yml", "render", "render.yml.j2", RENDER_ENTRY, {"render_runner_options": TLS}),
    ("www-data.yml", "service", "config.yml.j2", NON_ROOT_SERVICE, {}),
    ("www-data.service", "service", "unit.service.j2", NON_ROOT_SERVICE, {}),
]


def render_tasks(folder):
    """RENDERS as tasks of one play (task vars: each its role's defaults and vars)."""
    tasks = []
    for name, role, template, entry, overrides in RENDERS:
        if role == "render":
            task_vars, loop = render_role_vars(folder, render_renderers=[entry], **overrides), "{{ __render_present }}"
        else:
            task_vars, loop = role_vars(**overrides), [entry]
        tasks.append({"name": "render " + name, "vars": task_vars, "ansible.builtin.template": {
            "src": str(REPO / "roles" / role / "templates" / template), "dest": str(folder / name), "mode": "0600"},
            "loop": loop})
    return tasks


def registered(*changed):
    return {"results": [{"changed": c} for c in changed]}


def service_run_of(entries, config, state):
    quiet = registered(*[False] * len(entries))
    return {"name": "run", "ansible.builtin.set_fact": {
        "service_instances": entries, "_service_config": registered(*config), "_service_env": quiet,
        "_service_env_gone": quiet, "_service_unit": quiet, "_common_started": registered(*state)}}


def render_run_of(results):
    return {"name": "run", "ansible.builtin.set_fact": {"__render_started": {"results": results}}}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """This module's role checks, renders and fact notes in ONE ansible-playbook run, each case a
    host of its own (tests.support.playbook.run_cases; each start costs seconds of CPU)."""
    folder = tmp_path_factory.mktemp("rolefix")
    cases = {}
    for i, dest in enumerate(REFUSED_DESTS):
        entry = {"name": "web", "command": ["true"], "templates": [{"src": "a.j2", "dest": dest}]}
        cases["refused-service-%d" % i] = {"vars": role_vars(service_instances=[entry]),
                                           "tasks": [service_task("Check the service entries")]}
        renderer = dict(RENDER_ENTRY, templates=[{"src": "a.j2", "dest": dest}])
        cases["refused-render-%d" % i] = {"vars": render_role_vars(folder, render_renderers=[renderer]),
                                          "tasks": [render_task("Check the renderer entries")]}
    fine = dict(RENDER_ENTRY, user="nobody", templates=[{"src": "a.j2", "dest": "/etc/motd-exp/motd"}])
    cases["fine-render"] = {"vars": render_role_vars(folder, render_renderers=[fine]),
                            "tasks": [render_task("Check the renderer entries")]}
    cases["renders"] = {"vars": {}, "tasks": render_tasks(folder)}
    note = service_task("Note the services the handlers restart")
    first = [{"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}, {"name": "c", "command": ["x"]}]
    cases["service-notes"] = {"vars": role_vars(), "tasks": [
        service_run_of(first, [True, False, True], [False, False, True]), note,  # c: just started
        service_run_of([{"name": "d", "command": ["x"]}], [True], [False]), note,
        {"name": "show", "ansible.builtin.debug": {"msg": "units={{ _service_restart_units | to_json }} "
                                                          "running={{ _service_runner_units | to_json }}"}}]}
    render_note = render_task("Note the renderers the handlers restart")
    cases["render-notes"] = {"vars": render_role_vars(folder), "tasks": [
        render_run_of([{"changed": False, "item": {"unit": "zkherd-render-a.service"}},
                       {"changed": True, "item": {"unit": "zkherd-render-b.service"}},  # restarted by the role
                       {"changed": False, "item": {"unit": "zkherd-render-c.service", "schedule": "hourly"}}]),
        render_note,
        render_run_of([{"changed": False, "skipped": True, "item": {"unit": "zkherd-render-d.service"}},
                       {"changed": False, "item": {"unit": "zkherd-render-e.service"}}]), render_note,
        {"name": "show", "ansible.builtin.debug": {"msg": "units={{ __render_runner_units | to_json }}"}}]}
    return {"run": run_cases(cases), "folder": folder}


def case(site, name):
    """One case's view; it ran."""
    ran = site["run"].host(name)
    assert ran.records, (name, site["run"].output[-3000:])
    return ran


def rendered(site, name):
    ran = case(site, "renders")
    assert ran.failure() is None, ran.failure()
    return (site["folder"] / name).read_text()


def test_a_dest_in_zkherds_own_folders_is_refused_by_both_roles(site):
    for i, dest in enumerate(REFUSED_DESTS):
        assert case(site, "refused-service-%d" % i).failure() is not None, dest + " accepted by the service role"
        assert case(site, "refused-render-%d" % i).failure() is not None, dest + " accepted by the render role"
    assert case(site, "fine-render").failure() is None, case(site, "fine-render").failure()


def test_a_service_and_a_renderer_of_one_name_ship_to_separate_folders(tmp_path):
    """The service role's shipping of `render-lb`, then the render role's of `lb`, in one play (as a
    site playbook runs them): two sources of one file name, each shipped to its own folder."""
    for kind in ("service", "renderer"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "a.conf.j2").write_text(kind + "\n")
    service = {"name": "render-lb", "command": ["true"],
               "templates": [{"src": str(tmp_path / "service" / "a.conf.j2"), "dest": str(tmp_path / "s/a")}]}
    renderer = dict(RENDER_ENTRY, name="lb",
                    templates=[{"src": str(tmp_path / "renderer" / "a.conf.j2"), "dest": str(tmp_path / "r/a")}])
    ship_service = {"name": "ship", "ansible.builtin.include_role": {"name": "zkherd.ops.service",
                                                                     "tasks_from": "templates.yml"}}
    ship_render = dict(render_task("Ship the templates"), vars=dict(
        render_task("Ship the templates").get("vars", {}),
        **render_role_vars(tmp_path, render_renderers=[renderer], render_template_dir=str(tmp_path / "shipped"))))
    run = play(tmp_path, [ship_service, ship_render],
               dict(service_instances=[service], service_template_dir=str(tmp_path / "shipped")))
    assert run.returncode == 0, run.stdout
    assert (tmp_path / "shipped" / "service" / "render-lb" / "a.conf.j2").read_text() == "service\n"
    assert (tmp_path / "shipped" / "render" / "lb" / "a.conf.j2").read_text() == "renderer\n"


def test_template_copies_no_entry_lists_are_removed_the_rendered_files_stay(tmp_path):
    (tmp_path / "templates").mkdir()
    for name in ("a.j2", "b.j2"):
        (tmp_path / "templates" / name).write_text(name)
    out = tmp_path / "out"
    both = [{"name": "web", "command": ["true"], "templates": [{"src": "a.j2", "dest": str(out / "a")},
                                                               {"src": "b.j2", "dest": str(out / "b")}]},
            {"name": "db", "command": ["true"], "templates": [{"src": "a.j2", "dest": str(out / "dba")}]}]
    assert ship(tmp_path, both).returncode == 0
    (out / "b").write_text("rendered")
    shipped = tmp_path / "shipped" / "service"
    assert (shipped / "web" / "b.j2").exists() and (shipped / "db" / "a.j2").exists()
    fewer = [dict(both[0], templates=both[0]["templates"][:1]), {"name": "db", "command": ["true"]}]
    run = ship(tmp_path, fewer)
    assert run.returncode == 0, run.stdout
    assert sorted(p.name for p in (shipped / "web").iterdir()) == ["a.j2"]
    assert not (shipped / "db").exists()
    assert (out / "b").read_text() == "rendered"


def test_the_mode_of_new_rendered_files_is_the_runners_file_mode(site):
    assert yaml.safe_load(rendered(site, "mode-0600.yml"))["file_mode"] == "0600"
    assert "file_mode" not in yaml.safe_load(rendered(site, "mode-unset.yml"))
    assert yaml.safe_load(rendered(site, "tls-modes.yml"))["file_mode"] == "0600"
    assert "file_mode" not in yaml.safe_load(rendered(site, "mixed-modes.yml"))


def test_a_non_root_runner_gets_the_tls_key_through_load_credential(site):
    config = yaml.safe_load(rendered(site, "haproxy.yml"))
    assert config["tls_key"] == "/run/credentials/zkherd-render-lb.service/zkherd-tls-key"
    assert config["tls_cert"] == TLS["tls_cert"]
    assert "\nLoadCredential=zkherd-tls-key:/etc/zkherd/tls/key.pem\n" in rendered(site, "haproxy.service")
    assert yaml.safe_load(rendered(site, "root.yml"))["tls_key"] == TLS["tls_key"]
    assert yaml.safe_load(rendered(site, "www-data.yml"))["tls_key"] == \
        "/run/credentials/zkherd-web.service/zkherd-tls-key"
    assert "\nLoadCredential=zkherd-tls-key:/etc/zkherd/tls/key.pem\n" in rendered(site, "www-data.service")


def test_the_handlers_act_on_the_units_each_role_noted_not_on_the_last_entries():
    """H2: the render role ships through the service role's tasks with its own service_instances,
    so a handler looping over _service_present restarted the renderers; the handlers now loop over
    facts each run of the role adds its own units to."""
    for role, fact in (("service", "_service_restart_units"), ("service", "_service_runner_units"),
                       ("render", "__render_runner_units")):
        handlers = yaml.safe_load((REPO / "roles" / role / "handlers" / "main.yml").read_text())
        restarts = [h for h in handlers if "ansible.builtin.systemd_service" in h]
        assert restarts and all("_present" not in str(h["loop"]) for h in restarts), restarts
        assert any(fact in str(h["loop"]) for h in restarts), (role, fact)
        tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())
        assert any(fact in str(t.get("ansible.builtin.set_fact", {})) for t in tasks), (role, fact)


def test_each_run_adds_its_own_changed_and_running_units(site):
    """The service role's "Note the services the handlers restart", twice in a play (as with the
    role twice, or the render role's shipping in between): the facts keep both runs' units."""
    ran = case(site, "service-notes")
    assert ran.failure() is None, ran.failure()
    assert ran["show"]["msg"] == 'units=["zkherd-a.service", "zkherd-d.service"] running=["zkherd-b.service"]', \
        ran["show"]


def test_each_render_run_adds_the_renderers_it_found_running(site):
    ran = case(site, "render-notes")
    assert ran.failure() is None, ran.failure()
    assert ran["show"]["msg"] == 'units=["zkherd-render-a.service", "zkherd-render-e.service"]', ran["show"]
