"""The cron role's units, rendered: elect can write the lease folder under its sandbox, and every job's
`zkherd cron` reads that same folder (review of issue 14, H2). Pure rendering: Jinja2 as Ansible uses it."""

from __future__ import annotations

import re
import shlex

import jinja2

from tests.support.runner import REPO

TEMPLATES = REPO / "roles" / "cron" / "templates"


def render(name, item, **extra):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), keep_trailing_newline=True)
    env.filters["comment"] = lambda text: "# " + text
    env.filters["regex_replace"] = lambda text, pattern, repl: re.sub(pattern, repl, text)
    env.filters["quote"] = shlex.quote
    values = dict(ansible_managed="managed", cron_zkherd="/opt/zkherd/bin/zkherd", cron_auth_file="",
                  cron_tls_key="", cron_elect_restart="always", cron_elect_restart_sec=5,
                  cron_lease_dir="/run/zkherd-leases", item=item)
    values.update(extra)
    return env.get_template(name).render(**values)


JOB = dict(config="/etc/zkherd/cron-nightly.yml", election="/cron/pool", id="", name="nightly", tick=60,
           if_running="skip", zk_timeout=5, stop_timeout=10, success_exit_status=[75], timeout=0, user="app",
           elect_unit="", hardening=True, argv=["backup"], cron_schedule="* * * * *",
           unit="zkherd-cron-nightly.service")


def test_elect_unit_writes_the_lease_folder_under_protect_system_strict():
    pool = dict(config="/etc/zkherd/elect-pool.yml", election="/cron/pool", name="pool",
                unit="zkherd-elect-pool.service")
    unit = render("zkherd-elect.service.j2", pool)
    assert "ProtectSystem=strict" in unit
    assert "\nRuntimeDirectory=zkherd-leases\n" in unit
    assert "\nRuntimeDirectoryMode=0755\n" in unit
    assert "\nRuntimeDirectoryPreserve=yes\n" in unit
    assert '--lease-dir "/run/zkherd-leases"' in unit


def test_jobs_read_the_same_lease_folder_whatever_their_user():
    service = render("zkherd-cron.service.j2", JOB)
    assert '--lease-dir "/run/zkherd-leases"' in service
    assert "ZKHERD_RUN_DIR=%t/zkherd-cron-nightly" in service  # the lock folder stays the job's own
    cron_d = render("cron.d.j2", JOB)
    assert "--lease-dir /run/zkherd-leases" in cron_d
