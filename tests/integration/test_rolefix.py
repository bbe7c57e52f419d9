"""Review 15 of the template roles, fixed (roles/service, roles/render): by real ansible-playbook on
localhost - refused folders, separate and pruned template folders, the file mode of new rendered
files, the TLS key handed to a non-root runner by LoadCredential=, the handlers' units kept per
role. The systemd-level checks (a template change restarts the service, not the renderers; a
scheduled renderer whose znode is missing does not fail the play) are in molecule/default/verify.yml."""

from __future__ import annotations

import yaml

from tests.integration.test_review15_roles import render_task
from tests.integration.test_tplroles_render_role import ENTRY as RENDER_ENTRY
from tests.integration.test_tplroles_render_role import render_file
from tests.integration.test_tplroles_render_role import role_vars as render_role_vars
from tests.integration.test_tplroles_service import play, render_role_file, role_vars, ship
from tests.support.playbook import REPO

TLS = {"tls_ca": "/etc/zkherd/tls/ca.pem", "tls_cert": "/etc/zkherd/tls/cert.pem", "tls_key": "/etc/zkherd/tls/key.pem"}


def service_task(name):
    return next(task for task in yaml.safe_load((REPO / "roles" / "service" / "tasks" / "main.yml").read_text())
                if task["name"] == name)


def test_a_dest_in_zkherds_own_folders_is_refused_by_both_roles(tmp_path):
    for dest in ("/etc/zkherd/app.conf", "/etc/zkherd/templates/web/x.conf", "/etc/zkherd/a/b/c.conf"):
        entry = {"name": "web", "command": ["true"], "templates": [{"src": "a.j2", "dest": dest}]}
        run = play(tmp_path, [service_task("Check the service entries")], role_vars(service_instances=[entry]))
        assert run.returncode != 0, dest + " accepted by the service role:\n" + run.stdout
        renderer = dict(RENDER_ENTRY, templates=[{"src": "a.j2", "dest": dest}])
        run = play(tmp_path, [render_task("Check the renderer entries")],
                   render_role_vars(tmp_path, render_renderers=[renderer]))
        assert run.returncode != 0, dest + " accepted by the render role:\n" + run.stdout
    fine = dict(RENDER_ENTRY, user="nobody", templates=[{"src": "a.j2", "dest": "/etc/motd-exp/motd"}])
    run = play(tmp_path, [render_task("Check the renderer entries")],
               render_role_vars(tmp_path, render_renderers=[fine]))
    assert run.returncode == 0, run.stdout


def test_a_service_and_a_renderer_of_one_name_ship_to_separate_folders(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "a.conf.j2").write_text("service\n")
    service = {"name": "render-lb", "command": ["true"],
               "templates": [{"src": "a.conf.j2", "dest": str(tmp_path / "s/a")}]}
    assert ship(tmp_path, [service]).returncode == 0
    (tmp_path / "templates" / "a.conf.j2").write_text("renderer\n")
    renderer = dict(RENDER_ENTRY, name="lb", templates=[{"src": "a.conf.j2", "dest": str(tmp_path / "r/a")}])
    run = play(tmp_path, [render_task("Ship the templates")],
               render_role_vars(tmp_path, render_renderers=[renderer], render_template_dir=str(tmp_path / "shipped")))
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


def test_the_mode_of_new_rendered_files_is_the_runners_file_mode(tmp_path):
    config = yaml.safe_load(render_file(tmp_path, "render.yml.j2", dict(RENDER_ENTRY, mode="0600")))
    assert config["file_mode"] == "0600"
    assert "file_mode" not in yaml.safe_load(render_file(tmp_path, "render.yml.j2", RENDER_ENTRY))
    entry = {"name": "tls", "command": ["true"],
             "templates": [{"src": "k.j2", "dest": "/srv/tls/key.pem", "mode": "0600"},
                           {"src": "c.j2", "dest": "/srv/tls/cert.pem", "mode": "0600"}]}
    assert yaml.safe_load(render_role_file(tmp_path, "config.yml.j2", entry))["file_mode"] == "0600"
    mixed = dict(entry, templates=[entry["templates"][0], {"src": "c.j2", "dest": "/srv/tls/cert.pem"}])
    assert "file_mode" not in yaml.safe_load(render_role_file(tmp_path, "config.yml.j2", mixed))


def test_a_non_root_runner_gets_the_tls_key_through_load_credential(tmp_path):
    renderer = dict(RENDER_ENTRY, user="haproxy")
    config = yaml.safe_load(render_file(tmp_path, "render.yml.j2", renderer, render_runner_options=TLS))
    assert config["tls_key"] == "/run/credentials/zkherd-render-lb.service/zkherd-tls-key"
    assert config["tls_cert"] == TLS["tls_cert"]
    unit = render_file(tmp_path, "zkherd-render.service.j2", renderer, render_runner_options=TLS)
    assert "\nLoadCredential=zkherd-tls-key:/etc/zkherd/tls/key.pem\n" in unit
    root = yaml.safe_load(render_file(tmp_path, "render.yml.j2", RENDER_ENTRY, render_runner_options=TLS))
    assert root["tls_key"] == TLS["tls_key"]
    service = {"name": "web", "command": ["true"], "user": "www-data", "options": TLS}
    assert yaml.safe_load(render_role_file(tmp_path, "config.yml.j2", service))["tls_key"] == \
        "/run/credentials/zkherd-web.service/zkherd-tls-key"
    assert "\nLoadCredential=zkherd-tls-key:/etc/zkherd/tls/key.pem\n" in render_role_file(
        tmp_path, "unit.service.j2", service)


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


def test_each_run_adds_its_own_changed_and_running_units(tmp_path):
    """The service role's "Note the services the handlers restart", twice in a play (as with the
    role twice, or the render role's shipping in between): the facts keep both runs' units."""
    note = service_task("Note the services the handlers restart")

    def registered(*changed):
        return {"results": [{"changed": c} for c in changed]}

    def run_of(entries, config, state):
        quiet = registered(*[False] * len(entries))
        return {"name": "run", "ansible.builtin.set_fact": {
            "service_instances": entries, "_service_config": registered(*config), "_service_env": quiet,
            "_service_env_gone": quiet, "_service_unit": quiet, "_common_started": registered(*state)}}

    first = [{"name": "a", "command": ["x"]}, {"name": "b", "command": ["x"]}, {"name": "c", "command": ["x"]}]
    tasks = [run_of(first, [True, False, True], [False, False, True]), note,  # c: just started
             run_of([{"name": "d", "command": ["x"]}], [True], [False]), note,
             {"name": "show", "ansible.builtin.debug": {"msg": "units={{ _service_restart_units | to_json }} "
                                                               "running={{ _service_runner_units | to_json }}"}}]
    run = play(tmp_path, tasks, role_vars())
    assert run.returncode == 0, run.stdout
    assert 'units=[\\"zkherd-a.service\\", \\"zkherd-d.service\\"] running=[\\"zkherd-b.service\\"]' in run.stdout, \
        run.stdout


def test_each_render_run_adds_the_renderers_it_found_running(tmp_path):
    note = render_task("Note the renderers the handlers restart")

    def run_of(results):
        return {"name": "run", "ansible.builtin.set_fact": {"__render_started": {"results": results}}}

    tasks = [run_of([{"changed": False, "item": {"unit": "zkherd-render-a.service"}},
                     {"changed": True, "item": {"unit": "zkherd-render-b.service"}},  # restarted by the role
                     {"changed": False, "item": {"unit": "zkherd-render-c.service", "schedule": "hourly"}}]), note,
             run_of([{"changed": False, "skipped": True, "item": {"unit": "zkherd-render-d.service"}},
                     {"changed": False, "item": {"unit": "zkherd-render-e.service"}}]), note,
             {"name": "show", "ansible.builtin.debug": {"msg": "units={{ __render_runner_units | to_json }}"}}]
    run = play(tmp_path, tasks, render_role_vars(tmp_path))
    assert run.returncode == 0, run.stdout
    assert 'units=[\\"zkherd-render-a.service\\", \\"zkherd-render-e.service\\"]' in run.stdout, run.stdout
