"""`zkherd status PATH... [--json]`: who holds a lock and who waits, a rollout's state, a pool's
leader and cron ticks, a farm's members, live registrations (status/; docs/operations.md)."""

from __future__ import annotations

NAMES = ("status",)
DEFAULTS = dict(status_paths=None, json=False)
EXIT_CODES = ("Exit codes: 0 every path shown, 64 bad usage (a bad path), 65 a path that holds nodes zkherd does not "
              "write, 66 nothing at a path (no znode, no registration), 69 ZooKeeper unreachable or the connection "
              "lost, 77 access denied. With several paths, the highest code.")


def add_parsers(commands):
    status = commands.add("status", help="what a lock, rolling lock, pool, farm or registration path holds now",
                          description="Tells from the nodes zkherd writes what each PATH is and shows it: a lock's "
                                      "holders (since when) and waiters, a rolling lock's version being applied, its "
                                      "failed version and whether the rollout is paused, a pool's members, leader "
                                      "and cron ticks, a farm's members, a registration path's live registrations. "
                                      + EXIT_CODES)
    status.add_argument("status_paths", nargs="+", metavar="PATH")
    status.add_argument("--json", action="store_true", help="print a JSON list, one object per PATH")


def main(values, settings, log):
    from zkherd.status import show

    return show.main(values["status_paths"], values["json"], settings)
