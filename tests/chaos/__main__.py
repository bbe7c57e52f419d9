"""`python -m tests.chaos --seed N --duration S [--report FILE]`: one chaos run; exit 0 if no
invariant was violated, 1 if one was, 2 if the harness itself failed."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from tests.chaos import harness, report, schedule


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seed", type=int, default=None, help="fixes the fault schedule (default: from the clock)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of faults (default 120)")
    parser.add_argument("--report", metavar="FILE", help="write the JSON report to FILE and the text one to FILE.txt")
    parser.add_argument("--work", metavar="DIR",
                        help="keep logs and files in DIR (default: a temporary directory, removed after a run "
                             "without violations)")
    parser.add_argument("--session-timeout", type=float, default=3.0, help="of every zkherd service (default 3)")
    parser.add_argument("--slack", type=float, default=5.0,
                        help="a live member is in the export within session timeout + slack (default 5)")
    parser.add_argument("--dead-slack", type=float, default=2.5,
                        help="a dead member is out of the export within session timeout + this (default 2.5)")
    parser.add_argument("--tick", type=float, default=10.0,
                        help="cron tick in seconds (default 10: --catch-up, the tick less 2 s, must exceed the "
                             "pool's session timeout)")
    parser.add_argument("--daemon-timeout", type=float, default=10.0,
                        help="session timeout of the daemon group (default 10)")
    parser.add_argument("--lockroll-timeout", type=float, default=3.0,
                        help="session timeout of the lockroll group (default 3)")
    parser.add_argument("--slow-timeout", type=float, default=30.0,
                        help="session timeout of the slow group (default 30)")
    parser.add_argument("--profile", choices=sorted(schedule.PROFILES), default="wide",
                        help="services per group and outage lengths: quick (make test) or wide (default)")
    parser.add_argument("--catch-up", choices=("auto", "on", "off"), default="auto",
                        help="cron firings with --catch-up (3 ticks): auto = when `zkherd cron --help` has it")
    parser.add_argument("--daemons", type=int, default=None, help="services in the daemon group (default: profile's)")
    parser.add_argument("--lockrolls", type=int, default=None,
                        help="services in the lockroll group (default: the profile's)")
    parser.add_argument("--plan", action="store_true", help="print the fault schedule and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="say every fault as it is applied")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    options = harness.Options(seed=seed, duration=args.duration, work=Path(args.work) if args.work else None,
                              session_timeout=args.session_timeout, slack=args.slack, dead_slack=args.dead_slack,
                              tick=args.tick, daemon_timeout=args.daemon_timeout,
                              lockroll_timeout=args.lockroll_timeout, daemons=args.daemons, lockrolls=args.lockrolls,
                              slow_timeout=args.slow_timeout, profile=args.profile, catch_up=args.catch_up,
                              verbose=args.verbose)
    if args.plan:
        chaos = harness.Chaos(options)
        for fault in chaos.plan:
            print(fault.describe())
        print("counts: %s" % schedule.counts(chaos.plan))
        return 0
    try:
        result = harness.run(options, out=sys.stderr)
    except Exception:
        traceback.print_exc()
        print("chaos harness failed (seed %d); reproduce with: %s" % (seed, options.command()), file=sys.stderr)
        return 2
    rendered = report.text(result)
    sys.stdout.write(rendered)
    if args.report:
        path = Path(args.report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        Path(str(path) + ".txt").write_text(rendered)
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
