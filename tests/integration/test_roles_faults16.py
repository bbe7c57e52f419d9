"""Review of issue 16 (roles): the zookeeper exporter against a hostile or slow server, the metrics
clash check, the exporter port against the runners' metrics ports."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import pytest

from tests.integration import test_zookeeper_role_prod_exporter
from tests.support.zkserver import free_port

exporter = test_zookeeper_role_prod_exporter.exporter  # the fixture, here by its name


def fake_zk(behaviour):
    """A TCP server on 127.0.0.1 that runs behaviour(conn) for every connection."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve():
        while True:
            try:
                conn = listener.accept()[0]
            except OSError:
                return
            threading.Thread(target=behaviour, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener


def wait_listening(port):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("exporter does not listen")


def timed_scrape(port, timeout):
    start = time.monotonic()
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=timeout) as answer:
            body = answer.read()
    except OSError as err:
        return time.monotonic() - start, err
    return time.monotonic() - start, body


def test_a_server_dripping_its_mntr_answer_does_not_hang_the_scrape(exporter):
    """A server that answers one byte every second (never closing within a scrape's time): each
    recv() returns before the 3 s socket timeout, so mntr() reads on - there is no overall deadline.
    Prometheus' default scrape_timeout is 10 s: the scrape must be answered (zookeeper_up 0) well
    before, not hang."""
    def drip(conn):
        try:
            conn.recv(16)
            for _unused_second in range(120):
                conn.sendall(b"z")
                time.sleep(1)
        except OSError:
            pass
        finally:
            conn.close()

    zk = fake_zk(drip)
    port = exporter(zk.getsockname()[0], zk.getsockname()[1])
    wait_listening(port)
    took, result = timed_scrape(port, timeout=20)
    zk.close()
    assert not isinstance(result, Exception) and took < 10, (took, result)


def test_a_huge_mntr_answer_is_bounded(exporter):
    """A server answering ~40 MB of distinct key-value lines: the exporter reads it all into memory
    (no size cap) and turns it into an exposition larger still. mntr is a few kB: a cap of a
    few MB (then zookeeper_up 0, or what was read) is the bound expected."""
    line = b"zk_x%09d\t1\n"

    def huge(conn):
        try:
            conn.recv(16)
            for n in range(25):  # 25 x ~1.6 MB, every key distinct
                conn.sendall(b"".join(line % (n * 100000 + i) for i in range(100000)))
        except OSError:
            pass
        finally:
            conn.close()

    zk = fake_zk(huge)
    port = exporter(zk.getsockname()[0], zk.getsockname()[1])
    wait_listening(port)
    took, result = timed_scrape(port, timeout=60)
    zk.close()
    assert not isinstance(result, Exception), result
    assert len(result) < 16 * 1024 * 1024, "exposition of %d bytes after %.1f s" % (len(result), took)


def test_a_hostile_server_state_does_not_break_the_exposition_format(exporter):
    """zk_server_state goes into a label without _label(): a quote in it makes the whole scrape
    unparsable (Prometheus drops every sample of the target)."""
    def answer(conn):
        try:
            conn.recv(16)
            conn.sendall(b'zk_version\t3.9\nzk_server_state\tlead"er\nzk_znode_count\t5\n')
        finally:
            conn.close()

    zk = fake_zk(answer)
    port = exporter(zk.getsockname()[0], zk.getsockname()[1])
    wait_listening(port)
    result = timed_scrape(port, timeout=10)[1]
    zk.close()
    assert b'state="lead"er"' not in result, result.decode()


def test_an_exporter_port_out_of_range_is_a_clear_error_not_a_traceback(tmp_path):
    """The role's check only asks zookeeper_exporter_listen for HOST:[0-9]+ (production_checks.yml):
    127.0.0.1:70000 passes it, and bind() raises OverflowError - neither ValueError nor OSError - so
    the exporter dies with a traceback, exit 1, and Restart=on-failure starts it again every 5 s
    (RestartPreventExitStatus=64 is for bad arguments)."""
    import subprocess
    import sys

    from tests.integration.test_zookeeper_role_prod_exporter import EXPORTER
    run = subprocess.run([sys.executable, str(EXPORTER), "127.0.0.1:70000", "127.0.0.1", "2181"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert "Traceback" not in run.stderr and run.returncode == 64, (run.returncode, run.stderr)


SHARED_FOLDERS = ("/zkherd-web.prom", "/etc/zkherd-web.prom", "/var/lib/zkherd-web.prom")


@pytest.fixture(scope="module")
def plays(tmp_path_factory):
    """The role checks and task files of this module's tests, every case a host of its own in ONE
    ansible-playbook run (tests.support.playbook.run_cases; each start costs seconds of CPU).
    systemd is not PID 1 here: a stand-in systemctl takes what the roles ask."""
    import os

    import yaml

    from tests.integration.test_rolemetrics import FAKE_SYSTEMCTL, PROM, ROLES, check_case, role_vars
    from tests.integration.test_zookeeper_role_prod import run_tasks_case
    from tests.support.playbook import REPO, run_cases
    base = tmp_path_factory.mktemp("faults16")
    bin_dir = base / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL % (base / "calls"))
    (bin_dir / "systemctl").chmod(0o755)
    web = ROLES["service"][3]
    cases = {"shared-folder-%d" % i: check_case([("service", [dict(web, metrics_file=path)])])
             for i, path in enumerate(SHARED_FOLDERS)}
    two_ways = [dict(web, metrics_file=PROM + "/a.prom"), dict(web, name="api", metrics_file=PROM + "//a.prom")]
    cases["spelt-two-ways"] = check_case([("service", two_ways)])
    cases["int-0"] = check_case([("service", [dict(web, metrics_listen=0)])])
    cases["exporter-9464"] = checks_then_exporter_case("9464")
    cases["exporter-9465"] = checks_then_exporter_case("9465")
    remove = {"name": "remove web",
              "ansible.builtin.include_role": {"name": "zkherd.ops._common", "tasks_from": "remove_units.yml"},
              "vars": {"_common_units": ["zkherd-web.service"], "_common_unit_dir": str(base / "units")}}
    cases["removed-frees"] = checks_then_exporter_case("9464", [remove])
    # exporter.yml with the exporter off, its folder a shared one, then the role's own
    exporter_off = [{"name": "exporter",
                     "ansible.builtin.include_role": {"name": "zkherd.ops.zookeeper", "tasks_from": "exporter.yml"}}]
    for name in ("opt-zk-bin", "own"):
        folder = base / name
        folder.mkdir()
        for file in ("zk_exporter.py", "zk_mode.py"):
            (folder / file).write_text("")
        cases["exporter-off-" + name] = {"vars": role_vars("zookeeper", zookeeper_exporter_listen="",
                                                           zookeeper_exporter_dir=str(folder)),
                                         "tasks": exporter_off}
    (base / "opt-zk-bin" / "zkServer.sh").write_text("#!/bin/sh\n")
    # the zookeeper role's "Create the data and log folders" with the audit log in a shared folder
    import getpass
    shared = base / "var-log"
    shared.mkdir()
    shared.chmod(0o755)
    role_tasks = yaml.safe_load((REPO / "roles" / "zookeeper" / "tasks" / "main.yml").read_text())
    me = getpass.getuser()
    cases["audit-folder"] = {"vars": role_vars(
        "zookeeper", zookeeper_audit=True, zookeeper_audit_log=str(shared / "zookeeper_audit.log"),
        zookeeper_data_dir=str(base / "data"), zookeeper_log_dir=str(base / "log"),
        zookeeper_user=me, zookeeper_user_group=me),
        "tasks": [next(t for t in role_tasks if t["name"] == "Create the data and log folders")]}
    cases["production-checks"] = run_tasks_case(base / "prod", "production_checks.yml", *PRODUCTION_CHECKS)
    run = run_cases(cases, env={"PATH": "%s:%s" % (bin_dir, os.environ["PATH"])})
    return {"run": run, "base": base}


def failed_with(plays, case):
    ran = plays["run"].host(case)
    assert ran.records, (case, plays["run"].output[-3000:])
    return ran.failure()


def passed(plays, case):
    ran = plays["run"].host(case)
    assert ran.records, (case, plays["run"].output[-3000:])
    return ran.failure() is None


def test_a_metrics_file_in_a_shared_folder_does_not_open_it_in_the_unit(plays):
    """metrics_file's folder goes into ReadWritePaths= unchecked: /zkherd-web.prom makes the whole
    file system writable in the daemon units (ProtectSystem=strict undone), /var/lib/zkherd-web.prom
    all of /var/lib. Mirrored files are refused in shared folders (zkherd.ops.refused_folders); the
    metrics file is not."""
    for i, path in enumerate(SHARED_FOLDERS):
        assert failed_with(plays, "shared-folder-%d" % i) is not None, (
            path, "accepted: ReadWritePaths=%s" % (path.rsplit("/", 1)[0] or "/"))


def test_one_metrics_file_spelt_two_ways_is_a_clash(plays):
    """Two units writing one file overwrite each other; the check compares the strings only."""
    message = failed_with(plays, "spelt-two-ways")
    assert message is not None and "both use metrics file" in message, message


def test_metrics_listen_given_as_the_int_0_is_refused_like_the_string(plays):
    """metrics_listen: "0" fails the check (port 1-65535); the int 0 is dropped by default('', true)
    and the unit silently has no metrics."""
    message = failed_with(plays, "int-0")
    assert message is not None and "is not [ADDR:]PORT" in message, message


def test_the_service_role_in_check_mode_and_diff_then_for_real_then_check_again(tmp_path):
    """The service role on _common: --check --diff on a fresh host writes nothing (no metrics folder
    either) and shows no environment secret; the real run; --check again reports no change."""
    import os

    from tests.integration.test_rolemetrics import FAKE_SYSTEMCTL, ROLES, role_vars
    bin_dir, units, config = tmp_path / "bin", tmp_path / "units", tmp_path / "etc"
    for folder in (bin_dir, units, config):
        folder.mkdir(parents=True)
    calls = tmp_path / "calls"
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL % calls)
    (bin_dir / "systemctl").chmod(0o755)
    entry = dict(ROLES["service"][3], metrics_listen="127.0.0.1:9464", metrics_file=str(tmp_path / "prom" / "web.prom"),
                 environment={"API_TOKEN": "S3CRET-TOKEN-VALUE"})
    play_vars = role_vars("service", service_instances=[entry], service_unit_dir=str(units),
                          service_config_dir=str(config), service_template_dir=str(config / "templates"))
    tasks = [{"name": "service", "ansible.builtin.include_role": {"name": "zkherd.ops.service"}}]
    env = {"PATH": "%s:%s" % (bin_dir, os.environ["PATH"])}

    def run(*flags):
        import subprocess
        import sys
        book = tmp_path / "play.yml"
        import yaml
        book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars": play_vars,
                                         "tasks": tasks}], sort_keys=False))
        from tests.support.playbook import REPO
        full = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", LANG="C.UTF-8", **env)
        return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(book), *flags],
                              cwd=REPO, env=full, capture_output=True, text=True, timeout=300, check=False)

    first = run("--check", "--diff")
    assert first.returncode == 0, first.stdout + first.stderr
    assert list(units.iterdir()) == [] and not (tmp_path / "prom").exists(), first.stdout
    assert "S3CRET-TOKEN-VALUE" not in first.stdout + first.stderr
    real = run("--diff")
    assert real.returncode == 0, real.stdout + real.stderr
    assert "S3CRET-TOKEN-VALUE" not in real.stdout + real.stderr
    assert oct((config / "web.env").stat().st_mode & 0o777) == "0o600"
    again = run("--check", "--diff")
    assert again.returncode == 0 and int(again.stdout.rsplit("changed=", 1)[1].split()[0]) == 0, again.stdout


def test_without_the_exporter_the_role_removes_only_its_own_files(plays):
    """exporter.yml, exporter off (zookeeper_exporter_listen '', the default - every run of the role):
    remove_units.yml gets _common_files: [zookeeper_exporter_dir], a file state=absent, i.e. rm -r
    of the whole folder. zookeeper_exporter_dir is a documented `path` option ("where the exporter's
    two Python files are installed"): set to a shared folder such as /usr/local/bin or /opt/zk/bin,
    a run without the exporter deletes everything in it. Only zk_exporter.py and zk_mode.py (and the
    folder when empty) should go."""
    shared, own = plays["base"] / "opt-zk-bin", plays["base"] / "own"
    assert passed(plays, "exporter-off-opt-zk-bin"), failed_with(plays, "exporter-off-opt-zk-bin")
    assert (shared / "zkServer.sh").exists(), "the exporter's removal deleted %s" % shared
    assert sorted(p.name for p in shared.iterdir()) == ["zkServer.sh"]
    # the role's own folder, emptied: it goes too
    assert passed(plays, "exporter-off-own") and not own.exists(), failed_with(plays, "exporter-off-own")


def test_an_audit_log_in_a_shared_folder_does_not_hand_that_folder_to_zookeeper(plays):
    """tasks/main.yml "Create the data and log folders" adds zookeeper_audit_log | dirname to the
    folders it makes zookeeper_user's, mode 0750: zookeeper_audit_log: /var/log/zookeeper_audit.log
    (a plausible setting) turns /var/log into zookeeper:zookeeper 0750 - every other daemon's log
    folder below it becomes unreachable for its user - and opens all of /var/log in ReadWritePaths=."""
    import stat

    shared = plays["base"] / "var-log"
    assert passed(plays, "audit-folder"), failed_with(plays, "audit-folder")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755, oct(shared.stat().st_mode)


def test_the_exporter_listens_on_an_ipv6_address_the_role_accepts(exporter):
    """production_checks.yml accepts zookeeper_exporter_listen [IPv6]:PORT; zk_exporter.py strips the
    brackets but ThreadingHTTPServer is AF_INET: bind fails, exit 1, Restart=on-failure loops."""
    import subprocess
    import sys

    from tests.integration.test_zookeeper_role_prod_exporter import EXPORTER
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EXPORTER), "[::1]:%d" % port, "127.0.0.1", "1"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15  # until it listens on [::1]:PORT (bound) or has died
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("::1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    alive = proc.poll() is None
    if alive:
        proc.terminate()
        proc.wait(10)
    assert alive, (proc.returncode, proc.stderr.read())


# -- the fixes' own tests (beside the review's above) ---------------------------------------------

def checks_then_exporter_case(service_listen, between=()):
    """One case: the service role's metrics check for zkherd-web.service on service_listen, the
    tasks between, then the zookeeper role's check of its exporter on 127.0.0.1:9464."""
    import yaml

    from tests.integration.test_rolemetrics import ROLES, role_vars
    from tests.support.playbook import REPO
    tasks, web = [], dict(ROLES["service"][3], metrics_listen=service_listen)
    for role, variable, values in (("service", "service_instances", [web]),
                                   ("zookeeper", "zookeeper_exporter_listen", "127.0.0.1:9464")):
        role_tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())
        check = next(t for t in role_tasks if t["name"].startswith("Check the metrics options"))
        tasks.append({"name": role, "vars": dict(role_vars(role, **{variable: values}), **check["vars"]),
                      "ansible.builtin.include_role": check["ansible.builtin.include_role"]})
        if role == "service":
            tasks += list(between)
    return {"vars": {"zkherd_hosts": "zk1:2181"}, "tasks": tasks}


def test_the_exporter_port_clashes_with_a_runner_metrics_port(plays):
    message = failed_with(plays, "exporter-9464")
    assert message is not None
    assert "zookeeper-exporter.service and zkherd-web.service both use metrics port 9464" in message, message
    assert passed(plays, "exporter-9465"), failed_with(plays, "exporter-9465")


def test_a_removed_unit_frees_its_metrics_port_for_the_next_roles(plays):
    assert passed(plays, "removed-frees"), failed_with(plays, "removed-frees")


PRODUCTION_CHECKS = ({"zookeeper_exporter_listen": "127.0.0.1:70000"},
                     {"zookeeper_exporter_listen": "[::1]:9464"},
                     {"zookeeper_audit": True, "zookeeper_audit_log": "/var/log/zookeeper_audit.log"},
                     {"zookeeper_audit": True, "zookeeper_audit_log": "/var/log/zookeeper/audit.log"},
                     {"zookeeper_quorum_sasl": True, "zookeeper_quorum_sasl_password": "a\nb"})


def test_the_zookeeper_production_checks_refuse_bad_ports_shared_audit_folders_and_multiline_passwords(plays):
    from tests.integration.test_zookeeper_role_prod import case_failures
    failures = case_failures(plays["run"].host("production-checks"), len(PRODUCTION_CHECKS))
    output = plays["run"].output
    assert "port 1-65535" in failures[0] and failures[1] == "", output
    assert "shared system folder" in failures[2] and failures[3] == "", output
    assert "one line" in failures[4] and "a\nb" not in output, output


def test_mntr_keys_sanitized_alike_give_one_series():
    import sys

    from tests.integration.test_zookeeper_role_prod_exporter import EXPORTER
    sys.path.insert(0, str(EXPORTER.parent))
    try:
        import zk_exporter
    finally:
        sys.path.remove(str(EXPORTER.parent))
    text = zk_exporter.exposition({"zk_a.b": "1", "zk_a-b": "2", "zk_up": "7", "zk_server_state": 'x"\n'})
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(samples) == len({line.rsplit(" ", 1)[0] for line in samples}), text
    assert 'zookeeper_server_state{state="x\\"\\n"} 1' in samples and "zookeeper_up 1" in samples, text
