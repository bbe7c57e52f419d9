"""Review of issue 15's Ansible side (roles/service templates, roles/render): findings as tests.
Each test fails while its finding stands (see the docstrings)."""

from __future__ import annotations

import stat

import pytest
import yaml

from tests.integration.test_tplroles_render_role import ENTRY as RENDER_ENTRY
from tests.integration.test_tplroles_render_role import role_vars as render_role_vars
from tests.integration.test_tplroles_service import play, ship
from tests.support.playbook import REPO


def render_task(name):
    return next(task for task in yaml.safe_load((REPO / "roles" / "render" / "tasks" / "main.yml").read_text())
                if task["name"] == name)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The service role's shipping of both shipping tests' entries in ONE ansible-playbook run (each
    start costs seconds of CPU; each entry ships to its own folder): a playbook template named like
    the role's own, and a template rendered into an existing private (0700) folder."""
    folder = tmp_path_factory.mktemp("review15")
    (folder / "templates").mkdir()
    (folder / "templates" / "config.yml.j2").write_text("port={{ znode('/app/port') }}\n")
    (folder / "templates" / "key.pem.j2").write_text("{{ znode('/tls/key') }}")
    private = folder / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    entries = [{"name": "web", "command": ["true"],
                "templates": [{"src": "config.yml.j2", "dest": str(folder / "out" / "config.yml")}]},
               {"name": "tls", "command": ["true"],
                "templates": [{"src": "key.pem.j2", "dest": str(private / "key.pem")}]}]
    run = ship(folder, entries)
    assert run.returncode == 0, run.stdout
    return folder


def test_a_users_template_named_like_the_service_roles_own_is_shipped_not_the_roles(shipped):
    """roles/service/vars/main.yml _service_template_candidates: ansible_search_path starts with the
    service role's own folder, so a playbook's templates/config.yml.j2 (or unit.service.j2,
    environment.j2) is shadowed by the role's internal template: the host gets zkherd's runner
    configuration template as the app's template, silently (the render role ships through the same
    tasks: same effect there)."""
    assert (shipped / "shipped" / "service" / "web" / "config.yml.j2").read_text() == "port={{ znode('/app/port') }}\n"


def test_the_render_role_refuses_to_hand_a_shared_system_folder_to_a_renderers_user(tmp_path):
    """roles/render/tasks/main.yml "Check the renderer entries" lacks the service role's shared-folder
    rule: {user: X, dest: /etc/motd} passes, and templates.yml "Create the folders of rendered files"
    then makes /etc owned by X (shown on the molecule boxes: /etc became nobody's)."""
    entry = dict(RENDER_ENTRY, user="nobody", templates=[{"src": "motd.j2", "dest": "/etc/motd"}])
    run = play(tmp_path, [render_task("Check the renderer entries")],
               render_role_vars(tmp_path, render_renderers=[entry]))
    assert run.returncode != 0, "the entry was accepted:\n" + run.stdout


def test_shipping_does_not_open_an_existing_private_dest_folder(shipped):
    """roles/service/tasks/templates.yml "Create the folders of rendered files" forces mode 0755 on the
    dest's folder even when it exists: a template rendered into /etc/ssl/private/ (0700) opens that
    folder to every local user (shown on the molecule boxes with the render role)."""
    assert stat.S_IMODE((shipped / "private").stat().st_mode) == 0o700


def test_a_changed_template_restarts_the_service(tmp_path):
    """roles/service/tasks/templates.yml "Copy the templates" notifies no handler: a run that changes
    only a template (configuration and unit unchanged) never restarts the service, and the runner
    compiled its templates at start (templates.load_all), so the host keeps rendering the old
    template - README: "A changed template restarts the service like a changed configuration".
    Shown on the molecule boxes (the rendered file kept the old template's text after a converge
    that changed it); here: the task that copies templates must notify the restart handler."""
    tasks = yaml.safe_load((REPO / "roles" / "service" / "tasks" / "templates.yml").read_text())
    copy = next(task for task in tasks if task["name"] == "Copy the templates")
    assert "Restart changed zkherd services" in str(copy.get("notify", "")), copy
