"""The options of every long-running command that say where it reports: --metrics-listen,
--metrics-file, --state-dir (docs/operations.md "Metrics" and "Runner state files")."""

from __future__ import annotations

DEFAULTS = dict(metrics_listen=None, metrics_file=None, state_dir=None)


def add_options(parser):
    group = parser.add_argument_group("metrics and state (docs/operations.md)")
    group.add_argument("--metrics-listen", metavar="[ADDR:]PORT",
                       help="serve Prometheus metrics over HTTP on PORT (all addresses unless ADDR is given)")
    group.add_argument("--metrics-file", metavar="PATH",
                       help="write the metrics to PATH in node_exporter's textfile format (on change, at most once "
                            "a second, and on exit)")
    group.add_argument("--state-dir", metavar="DIR",
                       help="write this runner's state to DIR/zkherd-PID.json for `zkherd status --local` (default "
                            "$RUNTIME_DIRECTORY, /run/zkherd as root, else $XDG_RUNTIME_DIR/zkherd; '' turns it off)")
