"""Pure logic of the containment (no processes): where cgroup v2 is and which folder is ours,
whatever the host's layout. Behaviour is tested with real processes in
tests/integration/test_containment.py."""

from __future__ import annotations

from zkherd.run import cgroups, proctable

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED_IN_A_UNIT = """\
234 233 0:38 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime shared:56 master:12 - cgroup2 cgroup rw
250 234 0:38 /system.slice/web.service /sys/fs/cgroup/system.slice/web.service rw,relatime - cgroup2 cgroup rw
"""
# A container whose cgroup2 mount shows only a subtree (its root is not the hierarchy's root).
SUBTREE = "50 40 0:38 /machine.slice/box.scope /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
ESCAPED = "41 31 0:38 / /mnt/cgroup\\040two rw - cgroup2 cgroup2 rw\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_cgroup2_mount_is_found_never_assumed(tmp_path):
    assert cgroups.cgroup2_mount(write(tmp_path, "m", HYBRID)) == ("/sys/fs/cgroup/unified", "/")
    assert cgroups.cgroup2_mount(write(tmp_path, "m", ESCAPED)) == ("/mnt/cgroup two", "/")
    assert cgroups.cgroup2_mount(write(tmp_path, "m", HYBRID.splitlines()[0] + "\n")) is None
    assert cgroups.cgroup2_mount(str(tmp_path / "missing")) is None


def test_our_folder(tmp_path):
    cgroup = write(tmp_path, "c", "9:name=systemd:/\n0::/system.slice/web.service\n")
    assert (cgroups.own_cgroup_folder(write(tmp_path, "m", HYBRID), cgroup)
            == "/sys/fs/cgroup/unified/system.slice/web.service")
    assert (cgroups.own_cgroup_folder(write(tmp_path, "m", UNIFIED_IN_A_UNIT), cgroup)
            == "/sys/fs/cgroup/system.slice/web.service")
    root = write(tmp_path, "root", "0::/\n")
    assert cgroups.own_cgroup_folder(write(tmp_path, "m", HYBRID), root) == "/sys/fs/cgroup/unified"
    inside = write(tmp_path, "inside", "0::/machine.slice/box.scope/app.service\n")
    assert cgroups.own_cgroup_folder(write(tmp_path, "m", SUBTREE), inside) == "/sys/fs/cgroup/app.service"
    outside = write(tmp_path, "outside", "0::/user.slice\n")  # not what the mount shows
    assert cgroups.own_cgroup_folder(write(tmp_path, "m", SUBTREE), outside) is None
    v1_only = write(tmp_path, "v1", "4:memory:/x\n")
    assert cgroups.own_cgroup_folder(write(tmp_path, "m", HYBRID), v1_only) is None


def test_descendants_from_a_process_table():
    table = {1: ("S", 0, 1), 10: ("S", 1, 10), 11: ("S", 10, 10), 12: ("Z", 11, 10), 20: ("S", 1, 20),
             21: ("S", 20, 21)}
    assert proctable.descendants({10}, table) == {10, 11, 12}
    assert proctable.descendants({20, 10}, table) == {10, 11, 12, 20, 21}
    assert proctable.descendants({99}, table) == {99}
    assert proctable.dead("Z") and not proctable.dead("S")


def test_launcher_env_line_is_one_line_that_sh_turns_into_the_new_environment():
    """The prespawned launcher (run/launcher.py) evals this line: any value comes through as it is
    (quotes, `$`, backslashes, backticks, spaces), what went is unset, what stayed is not repeated."""
    import subprocess

    from zkherd.run.launcher import env_line

    before = {"KEEP": "same", "GONE": "x", "PATH": "/usr/bin:/bin"}
    after = {"KEEP": "same", "PATH": "/usr/bin:/bin", "ZKHERD_LOCK_PATH": "/l/it's a $lock \\ `x` \"q\"/lock-1",
             "ZKHERD_FENCING_TOKEN": "42"}
    line = env_line(before, after)
    assert line.endswith("\n") and line.count("\n") == 1 and "KEEP" not in line
    shown = subprocess.run(["/bin/sh", "-c", 'eval "$0"; env', line], env=before, capture_output=True, text=True,
                           check=False)
    got = dict(entry.split("=", 1) for entry in shown.stdout.splitlines() if "=" in entry)
    assert {name: got.get(name) for name in after} == after and "GONE" not in got
    assert env_line(after, after) == ":\n"


def test_the_launcher_line_execs_the_command_with_its_arguments_as_they_are():
    """The command is in the line, not in the waiting launcher's argv (`pgrep -f` would count a
    standby's launcher as the service running); its arguments come through as they are."""
    import subprocess

    from zkherd.run.launcher import command_line

    argv = ["/bin/sh", "-c", 'printf "%s|" "$@"; printf "%s" "$ZKHERD_FENCING_TOKEN"', "x", "it's", "$HOME `id`", ""]
    line = command_line({"A": "1"}, {"A": "1", "ZKHERD_FENCING_TOKEN": "42"}, argv)
    shown = subprocess.run(["/bin/sh", "-c", 'eval "$0"; exit 126', line], env={"A": "1"}, capture_output=True,
                           text=True, check=False)
    assert shown.returncode == 0 and shown.stdout == "it's|$HOME `id`||42"
