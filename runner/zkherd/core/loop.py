"""The one skeleton of every long-running command: `run`, `elect`, `cron` while its job runs,
`farm join`, `farm export`, `barrier`.

    class Elect(Program):
        def turn(self, loop): ...            # do what is due; return seconds until more is due
    sys.exit(Loop(settings, log).run(Elect(...)))

Everything happens in the main thread. Kazoo's threads, watches and signal handlers only post
events (core/wakeup.py); the loop hands them to the program, lets it work, and sleeps until the next
event or deadline. What every command needs is here, once:

- connecting, with exit 69 when ZooKeeper cannot be reached at start (77 denied, 64 bad settings);
- the session state (`loop.connected`) and its events;
- ZooKeeper requests with a timeout (`loop.get`) that is never longer than the time left before the
  fence acts, and a pause after a request that got no answer: kazoo counts every request as a ping,
  so a loop that kept asking would keep kazoo from ever noticing a dead connection;
- errors: a ZooKeeper request that did not complete is retried with a backoff (the program simply
  has its turn again: it keeps what it still has to do until it is done); access denied and bad
  usage end the command with 77 and 64; anything unexpected ends it with 70 and one log line;
- exit codes (core/exits.py), and closing the session on the way out, whatever happened.
"""

from __future__ import annotations

import contextlib
import signal
import traceback

from kazoo.exceptions import ConnectionLoss, KazooException, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

from zkherd import telemetry
from zkherd.common.connection import ZkError, translate
from zkherd.common.errors import AUTH, USAGE
from zkherd.core import clock, exits
from zkherd.core.fence import Fence
from zkherd.core.session import Session
from zkherd.core.wakeup import Wakeup

RETRY_FIRST, RETRY_MAX = 0.1, 1.0
QUIET_LOOK = 0.1  # while quiet after an unanswered request: how often to look whether it may talk again


class OpTimeout(Exception):
    """A ZooKeeper request got no answer in time."""


class NotNow(Exception):
    """The loop keeps quiet until the server answers again (see Loop.talk)."""


TRANSIENT = (ConnectionLoss, SessionExpiredError, KazooTimeoutError, OpTimeout, NotNow)


class Stopped(Exception):
    """A stop signal came while connecting (before the loop could take it as an event)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stopped_by(signums):
    """While connecting, the program's stop signals raise Stopped instead of killing the process
    outright: the way out (the metrics file written on exit) is taken as for any other exit."""
    def stop(signum, frame):
        raise Stopped(signum)
    before = {signum: signal.signal(signum, stop) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def asking(action, path):
    """Around ZooKeeper requests in a turn: what the loop retries (TRANSIENT) and ZkError go up as
    they are; any other kazoo error becomes a ZkError that names *action* and *path* (an exit code
    and a clear message, never a traceback). Catch the errors a recipe expects (NodeExists...)
    inside it."""
    try:
        yield
    except (ZkError,) + TRANSIENT:
        raise
    except KazooException as exc:
        raise translate(exc, action, path) from None


class Program:
    """What a long-running command gives the loop. `exit_code` set means: done, exit with it."""

    signals = (signal.SIGTERM, signal.SIGINT)
    quiet = False  # connecting is logged at debug level (a cron job says nothing when all is well)
    exit_code = None

    def start(self, loop):
        """Connected: set up (watches, first reads) before the first turn."""

    def on_event(self, kind, value):
        """An event: ("signal", signum), ("state", KazooState), or one the program's watches post."""

    def turn(self, loop):
        """Do what is due. Returns seconds until something more is due, or None to wait for events.
        A ZooKeeper request that does not complete raises out of here: the loop calls turn again."""
        return None

    def on_error(self, loop, error):
        """A ZkError out of turn() that is not transient. Denied access and bad usage end the
        command (override to stop a child first); others are logged and tried again."""
        if error.kind in (AUTH, USAGE):
            loop.log.error(error.message)
            self.exit_code = exits.for_error(error)
            return None
        loop.log.warning(error.message)
        return RETRY_MAX

    def close(self, loop):
        """On the way out, whatever happened (the session is still open)."""


class Loop:
    def __init__(self, settings, log):
        self.settings = settings
        self.log = log
        self.wakeup = Wakeup()
        self.session = None
        self._fence = None
        self._retry = RETRY_FIRST

    @property
    def client(self):
        return self.session.client

    @property
    def connected(self):
        return self.session is not None and self.session.connected

    @property
    def fence(self):
        """The fence (core/fence.py), made on first use: only commands that fence a child pay its thread."""
        if self._fence is None:
            self._fence = Fence(self.session, lambda what, kill_at: self.wakeup.post("fence", (what, kill_at)))
        return self._fence

    def op_timeout(self):
        """How long a request may be waited for: a third of the session timeout (at most 2 s), and
        never past the moment the fence acts."""
        timeout = max(0.2, min(2.0, self.session.timeout / 3.0))
        left = self._fence.time_left() if self._fence is not None else None
        return timeout if left is None else max(0.05, min(timeout, left - 0.05))

    def renew_session(self, why, **fields):
        """The proof that the ZooKeeper leader knows our session lapsed (Session.lapsed): close the
        session and make a new one (Session.renew); kazoo's LOST and CONNECTED events follow, as
        after an expiry. Only with nothing under a fence. Raises NotNow: the rest of the turn must
        not use the old session's state."""
        self.log.warning("closing the ZooKeeper session and making a new one: the proof that the ZooKeeper "
                         "leader knows our session lapsed " + why, session="0x%x" % (self.session.session_id or 0),
                         lapsed_for="%.3fs" % (clock.now() - self.session.expires_no_earlier_than()), **fields)
        self.session.renew()
        raise NotNow("a new session is being made")

    def talk(self):
        """Call before sending requests: raises NotNow while a request is overdue and the server
        has not answered anything since (kazoo then pings, and notices a dead connection)."""
        if not self.session.may_talk():
            raise NotNow("waiting for ZooKeeper to answer again")

    def get(self, result, timeout=None):
        """The answer of an async request, waited for at most op_timeout() (or *timeout*)."""
        try:
            return result.get(timeout=self.op_timeout() if timeout is None else timeout)
        except KazooTimeoutError:
            self.session.overdue()
            raise OpTimeout("ZooKeeper did not answer in time") from None

    # -- the loop ----------------------------------------------------------------------------

    def run(self, program):
        self.session = Session(self.settings, self.wakeup, self.log, quiet=program.quiet)
        try:
            with _stopped_by(program.signals):
                self.session.connect()
        except ZkError as exc:
            self.log.error(exc.message)
            self.wakeup.close()
            return exits.for_error(exc)
        except Stopped as exc:  # nothing started yet: the way out (the metrics file) as for any exit
            self.log.info("stopped by a signal while connecting", signal=signal.Signals(exc.signum).name)
            self.wakeup.close()
            return 128 + exc.signum
        self.wakeup.install_signals(program.signals)
        reporter = telemetry.get()
        reporter.heard_age = self._heard_age
        reporter.session("connected", self.session.session_id)
        try:
            program.start(self)
            while program.exit_code is None:
                self._dispatch(program)
                if program.exit_code is not None:  # an event ended it: no more work
                    break
                due = self._turn(program)
                written = reporter.tick()
                if program.exit_code is None:
                    self.wakeup.wait(written if due is None else due if written is None else min(due, written))
            return program.exit_code
        except Exception as exc:  # a bug: one line, the traceback only with -v, never on the terminal alone
            self.log.error("internal error, exiting: %s: %s" % (type(exc).__name__, exc))
            self.log.debug("traceback", traceback="".join(traceback.format_exc()))
            return exits.SOFTWARE
        finally:
            self._close(program)

    def _dispatch(self, program):
        while self.wakeup.signals:
            program.on_event("signal", self.wakeup.signals.popleft())
        for kind, value in self.wakeup.events():
            if kind == "state":
                self.session.on_state(value)
                lost = value == KazooState.LOST
                renewing = self.session.renewing  # we closed it ourselves (Session.renew): no expiry
                telemetry.get().session(str(value).lower(), self.session.session_id,
                                        expired=lost and not renewing, renewed=lost and renewing)
                if value == KazooState.CONNECTED:
                    self._retry = RETRY_FIRST
            program.on_event(kind, value)

    def _turn(self, program):
        try:
            due = program.turn(self)
        except TRANSIENT as exc:
            if isinstance(exc, (KazooTimeoutError, OpTimeout)):
                self.session.overdue()  # quiet until the server answers: kazoo's pings notice a dead link
            self.log.debug("ZooKeeper request did not complete, trying again", error=type(exc).__name__,
                           retry_in="%.1fs" % self._retry)
            due, self._retry = self._retry, min(RETRY_MAX, self._retry * 2)
            return due
        except ZkError as exc:
            return program.on_error(self, exc)
        except KazooException as exc:  # one a recipe did not expect: denied access ends it, others are retried
            return program.on_error(self, translate(exc, "use", "ZooKeeper"))
        self._retry = RETRY_FIRST
        if self.connected and not self.session.may_talk():  # no event says when the server answers again
            due = QUIET_LOOK if due is None else min(due, QUIET_LOOK)
        return due

    def _heard_age(self):
        """Seconds since the leader last heard of our session (the metrics' and state file's)."""
        heard = self.session.last_heard if self.session is not None else None
        return None if heard is None else max(0.0, clock.now() - heard)

    def _close(self, program):
        try:
            program.close(self)
        except Exception as exc:
            self.log.error("error while exiting: %s: %s" % (type(exc).__name__, exc))
        if self._fence is not None:
            self._fence.close()
        if self.session is not None:
            self.session.close()
            telemetry.get().session("closed")
        self.wakeup.close()
