"""What the rollout (run/rollout.py) reports to the runner: its phase, and what it wants done. A
module of its own so that the runner names them without importing the rollout, which brings the
configuration files' code (and its memory) only to runners that mirror files."""

IDLE, WAITING, APPLYING, PAUSED = "idle", "waiting for the rolling lock", "applying", "paused"
START, RESTART, RELOAD = "start", "restart", "reload"  # what the runner is asked to do
