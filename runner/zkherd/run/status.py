"""What `zkherd run` tells the service manager (STATUS=, READY=1) about itself, from its state."""

from __future__ import annotations

from zkherd.run.states import State as S


def status_line(runner):
    """(STATUS text or None, whether the service counts as started): READY=1 once the child runs, or
    the runner is queued for the lock (a standby is a started service: `systemctl start` must not
    wait for the lock), or drained (--standby-only), or waits for mirrored znodes that do not exist yet."""
    state, life, connected = runner.machine.state, runner.life, runner.loop.connected
    held = runner.holding.lock if runner.holding is not None else None
    lock = " (lock %s)" % runner.opts.lock if held is not None else ""
    if life.running:
        if state in (S.STOPPING, S.FENCED, S.RESTARTING):
            status = "stopping pid %d: %s" % (life.pid, runner.machine.why)
        else:
            status = "running pid %d%s" % (life.pid, lock)
    elif state == S.QUEUED and held is not None and held.place is not None:
        status = "waiting for lock %s" % runner.opts.lock
    elif state == S.DRAINED:  # a started service too: drained, or a --standby-only host
        status = "drained: %s" % runner.machine.why
    elif state == S.WAITING_CONFIG and runner.rollout is not None and runner.rollout.sync.waiting:
        status = runner.rollout.sync.waiting
    elif not connected:
        return "no contact with ZooKeeper, waiting for it to come back", False
    else:
        return None, False  # on the way to one of those: nothing to say yet
    if not connected:
        status += ", no contact with ZooKeeper"
    return status, True
