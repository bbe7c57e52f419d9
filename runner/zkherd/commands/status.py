"""`zkherd status PATH... [--json]`: who holds a lock and who waits, a rollout's state, a pool's
leader and cron ticks, a farm's members, live registrations (status/; docs/operations.md)."""

from __future__ import annotations

NAMES = ("status",)
DEFAULTS = dict(status_paths=None, json=False, local=False, state_dir=None)
EXIT_CODES = ("Exit codes: 0 every path shown, 64 bad usage (a bad path), 65 a path that holds nodes zkherd does not "
              "write, 66 nothing at a path (no znode, no registration), 69 ZooKeeper unreachable or the connection "
              "lost, 77 access denied. With several paths, the highest code.")


def add_parsers(commands):
    status = commands.add("status", help="what a lock, rolling lock, pool, farm or registration path holds now",
                          description="Tells from the nodes zkherd writes what each PATH is and shows it: a lock's "
                                      "holders (since when) and waiters, a rolling lock's version being applied, its "
                                      "failed version and whether the rollout is paused, a pool's members, leader "
                                      "and cron ticks, a farm's members, a registration path's live registrations. "
                                      + EXIT_CODES + " With --local instead of PATHs: this host's runners, from "
                                      "their state files (docs/operations.md); 0 if any is shown, 66 if none.")
    status.add_argument("status_paths", nargs="*", metavar="PATH")
    status.add_argument("--json", action="store_true", help="print a JSON list, one object per PATH")
    status.add_argument("--local", action="store_true",
                        help="instead of PATHs: what this host's runners are doing, from their state files "
                             "(/run/zkherd, $XDG_RUNTIME_DIR/zkherd); exit 66 when there is none")
    status.add_argument("--state-dir", action="append", metavar="DIR",
                        help="with --local: read the state files of DIR instead (repeatable)")


def main(values, settings, log):
    from zkherd.core.settings import ConfigError

    if values["local"]:
        if values["status_paths"]:
            raise ConfigError("status: give either --local or PATHs, not both")
        from zkherd.status import local

        return local.main(_folders(values["state_dir"]), values["json"])
    if values["state_dir"]:
        raise ConfigError("status: --state-dir goes with --local")
    if not values["status_paths"]:
        raise ConfigError("status: give PATHs, or --local")
    from zkherd.status import show

    return show.main(values["status_paths"], values["json"], settings)


def _folders(value):
    """--state-dir from the command line (a list) or a config file (a word or a list)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]
