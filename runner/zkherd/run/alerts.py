"""--alert CMD: a shell command run for each thing an operator should hear about - a failed
version, a rejected configuration, a child that failed its health checks or exited, foreign nodes in
a lock - with ZKHERD_ALERT (the kind), ZKHERD_ALERT_MESSAGE, ZKHERD_ALERT_HOST and
ZKHERD_CONFIG_VERSION in its environment. Alerts run beside the child as Tasks (never blocking the
loop), at most 60 s each."""

from __future__ import annotations

import socket

from zkherd import telemetry
from zkherd.core.shellcmd import Task, command_env

ALERT_TIMEOUT = 60.0
REJECTIONS = ("rejected", "install-failed", "render-failed", "failed-version")  # a version kept out, by reason


class Alerts:
    def __init__(self, command, log):
        self.command = command
        self.log = log
        self.tasks = []
        self.version = None  # the configuration version the alerts speak of

    def fire(self, kind, message):
        if kind in REJECTIONS:  # every version kept out raises its alert here, once
            telemetry.get().config(rejected=kind)
        if not self.command:
            return
        env = command_env(ZKHERD_ALERT=kind, ZKHERD_ALERT_MESSAGE=message, ZKHERD_ALERT_HOST=socket.gethostname(),
                          ZKHERD_CONFIG_VERSION="" if self.version is None else str(self.version))
        self.log.warning("running the alert command", alert=kind, message=message)
        self.tasks.append(Task("alert command", self.command, env, ALERT_TIMEOUT, self.log))

    def poll(self):
        for task in self.tasks:
            task.poll()
        self.tasks = [task for task in self.tasks if task.done is None]
