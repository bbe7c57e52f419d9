"""What `zkherd run` holds in ZooKeeper for its child: the lock (--lock, recipes/lock.py) and the
registration (--register, recipes/registration.py). It answers the runner's questions - is the lock
ours now, is it still ours, what goes into the child's environment - and keeps the registration as
the runner says; it never decides about the child."""

from __future__ import annotations

from zkherd.recipes.lock import Lock, LockLost
from zkherd.recipes.registration import Registration

WAITING, HELD = "waiting", "held"


class Holding:
    def __init__(self, opts, loop, log, alerts):
        self.opts = opts
        self.log = log
        self.lock = self.registration = None
        if opts.lock:
            self.lock = Lock(opts.lock, opts.slots, opts.id, loop.wakeup, log, loop.op_timeout,
                             on_foreign=lambda message: alerts.fire("foreign-lock-node", message))
        if opts.register:
            self.registration = Registration(opts.register, opts.data, log, loop.wakeup)
        self.dirty = True  # look at the lock: a watch fired, the connection is new, or a start is due
        self.held = False  # take() found the lock ours, and it was not released or lost since
        # take()'s last look at the line finished and found another holder ahead of us (not a look
        # whose answer was lost, nor a release or a session since): the lock went elsewhere
        self.behind = False

    def take(self, loop):
        """Step towards holding the lock: (HELD or WAITING, seconds until a look is due or None)."""
        if self.lock is None:
            return HELD, None
        if not self.dirty and self.lock.place is not None:
            return WAITING, None  # a watch will tell
        self.dirty, self.behind = False, False
        try:
            held = self.lock.step(loop.client)
        except LockLost as exc:
            self.log.warning("lost our place in the lock", lock=self.opts.lock, reason=str(exc))
            self.dirty, self.held = True, False
            return WAITING, 0.0 if self.lock.leave(loop.client) else 0.2  # queue again at once
        except BaseException:
            self.dirty = True  # look again on the next turn
            raise
        self.held = bool(held)
        self.behind = not held
        return (HELD if held else WAITING), None

    def still_ours(self, loop):
        """After a watch fired while the child runs: True if our lock nodes are still ours."""
        if self.lock is None or not self.dirty:
            return True
        self.dirty = False
        try:
            ours = self.lock.still_held(loop.client)
        except BaseException:
            self.dirty = True
            raise
        if not ours:
            self.held = False  # a deleted node: the metrics tell a release (and later a new acquisition)
        return ours

    def child_env(self, loop, register):
        """ZKHERD_LOCK_PATH, ZKHERD_FENCING_TOKEN and ZKHERD_REGISTERED_PATH for a child about to
        start (registering it now if *register*); None if the lock is not ours after all."""
        env = {}
        if self.lock is not None:
            if self.lock.node is None:  # never a child under a lock we do not hold
                self.dirty = True
                return None
            env["ZKHERD_LOCK_PATH"], env["ZKHERD_FENCING_TOKEN"] = self.lock.node, str(self.lock.token)
        if self.registration is not None and register:
            env["ZKHERD_REGISTERED_PATH"] = self.registration.ensure(loop.client, loop.op_timeout())
        return env

    def keep_registration(self, loop, wanted):
        """While the child runs: registered while *wanted* (always, or while healthy with
        --register-when healthy), made again on a new session."""
        registration = self.registration
        if registration is None:
            return
        if wanted:
            registration.ensure(loop.client, loop.op_timeout())
        elif registration.node is not None or registration.doubtful:
            registration.remove(loop.client, loop.op_timeout())

    def reconnected(self):
        """kazoo may drop watches with the connection: look (and watch) again."""
        self.dirty = True
        if self.registration is not None:
            self.registration.recheck()

    def report(self):
        """What the metrics and the state file say of the lock: (path, held, place in line, token)."""
        lock = self.lock
        if lock is None:
            return None
        queued = lock.place is not None and not self.held
        place = (lock.queue_place or None) if queued else None
        return self.opts.lock, self.held, place, lock.token if self.held else None

    def tidy(self, loop):
        """While no child runs: a registration delete whose answer was lost is made sure of."""
        if self.registration is not None and self.registration.doubtful:
            self.registration.remove(loop.client, loop.op_timeout())

    def release(self, loop):
        """Remove our nodes (the child is gone); best effort: they are ephemeral and go with the
        session anyway."""
        if not loop.connected:
            return
        try:
            if self.registration is not None:
                self.registration.remove(loop.client, loop.op_timeout())
            if self.lock is not None:
                self.held = self.behind = False
                self.lock.release(loop.client)
        except Exception as exc:
            self.log.warning("could not remove our nodes now; they go when the session ends", error=str(exc))
            self.dirty = True

    def session_lost(self):
        """The server deleted our ephemeral nodes with the session."""
        self.held = self.behind = False
        if self.lock is not None:
            self.lock.forget_session()
        if self.registration is not None:
            self.registration.forget_session()  # made again on the new session
        self.dirty = True
