"""`zkherd barrier PATH --count N [--timeout S] [-- CMD]`: a double barrier.

Enter: each participant creates an ephemeral sequential node PATH/p-N; once N are there, the first
to see it creates PATH/ready and everyone goes on (a participant arriving after that goes on too).
Then CMD runs, if given. Leave: each deletes its node and waits until all have left; the last one
deletes PATH/ready. Waiting is driven by watches, with a re-check every half second, so a
connection blip (kazoo reconnects with the same session) does not lose a wake-up; if the session
expires while entering, the participant's node is made again.

Exit codes: CMD's (or 0), 69 if ZooKeeper cannot be reached, 75 if the others do not arrive (or
leave) within --timeout; its node is removed then, so a late barrier is not blocked by it.
"""

from __future__ import annotations

import subprocess
import threading
import time

from kazoo.exceptions import NodeExistsError, NoNodeError, NotEmptyError

from zkherd.common import paths
from zkherd.common.connection import ZkError, close_client, open_client, translate
from zkherd.common.errors import AUTH
from zkherd.core.shellcmd import command_env

EX_UNAVAILABLE, EX_TEMPFAIL, EX_NOPERM = 69, 75, 77
PREFIX, READY = "p-", "ready"


class BarrierTimeout(Exception):
    pass


class Barrier:
    def __init__(self, client, path, count, ident, deadline, log):
        self.client = client
        self.path = path
        self.count = count
        self.ident = ident.encode("utf-8")
        self.deadline = deadline
        self.log = log
        self.node = None
        self.changed = threading.Event()

    def _watch(self, event):
        self.changed.set()

    def _wait(self, what):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BarrierTimeout(what)
        self.changed.wait(min(0.5, left))
        self.changed.clear()

    def participants(self):
        children = self.client.get_children(self.path, watch=self._watch)
        return [c for c in children if c.startswith(PREFIX)], READY in children

    def enter(self):
        self.client.ensure_path(self.path)
        while True:
            if self.node is None or self.client.exists(self.node) is None:
                self.node = self.client.create(paths.join(self.path, PREFIX), self.ident, ephemeral=True,
                                               sequence=True)
            here, ready = self.participants()
            if ready:
                return
            if len(here) >= self.count:
                try:
                    self.client.create(paths.join(self.path, READY))
                except NodeExistsError:
                    pass
                return
            self._wait("only %d of %d participants arrived" % (len(here), self.count))

    def leave(self):
        if self.node is not None:
            try:
                self.client.delete(self.node)
            except NoNodeError:
                pass
            self.node = None
        while True:
            here = self.participants()[0]
            if not here:
                try:
                    self.client.delete(paths.join(self.path, READY))
                except (NoNodeError, NotEmptyError):
                    pass
                return
            self._wait("%d participants have not left yet" % len(here))

    def abandon(self):
        if self.node is not None:
            try:
                self.client.delete(self.node)
            except Exception:  # ephemeral: it goes with the session anyway
                pass


def run(path, count, timeout, ident, command, settings, log):
    try:
        client = open_client(settings)
    except ZkError as exc:
        log.error(exc.message)
        return EX_UNAVAILABLE
    deadline = time.monotonic() + timeout
    barrier = Barrier(client, path, count, ident, deadline, log)
    try:
        barrier.enter()
        log.info("all participants arrived", barrier=path, count=count)
        code = subprocess.run(command, env=command_env(), check=False).returncode if command else 0
        barrier.deadline = max(deadline, time.monotonic() + timeout)  # the command's time does not count
        barrier.leave()
        log.info("all participants left", barrier=path)
        return code
    except BarrierTimeout as exc:
        log.error("barrier %s: %s within %g s" % (path, exc, timeout))
        barrier.abandon()
        return EX_TEMPFAIL
    except ZkError as exc:
        log.error(exc.message)
        return EX_NOPERM if exc.kind == AUTH else EX_UNAVAILABLE
    except Exception as exc:
        if type(exc).__module__.startswith("kazoo"):
            error = translate(exc, "use the barrier at", path)
            log.error(error.message)
            return EX_NOPERM if error.kind == AUTH else EX_UNAVAILABLE
        raise
    finally:
        close_client(client)
