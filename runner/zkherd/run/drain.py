"""The drain flags a runner watches (recipes/drainflag.py): one for its --lock path (stay out of
the lock: stop the child, release, stay out of the line) and one for its --register path (leave
discovery, the child keeps running). It reports what the flags say and answers for them once the
runner holds nothing there; the runner decides (run/runner.py). --standby-only is a lock drain
that nobody can lift."""

from __future__ import annotations

from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
    ZookeeperError,
)

from zkherd.core.loop import NotNow
from zkherd.core.session import ours
from zkherd.recipes import drainflag
from zkherd.recipes.sequential import create

LOCK, REGISTER = "lock", "register"


class DrainFlags:
    def __init__(self, opts, wakeup, log):
        self.log, self.wakeup, self.ident = log, wakeup, opts.id
        self.standby = bool(getattr(opts, "standby_only", False))
        self.paths = {kind: path for kind, path in ((LOCK, opts.lock), (REGISTER, opts.register)) if path}
        self.flags = {}  # kind -> the flag's stat, while there is one
        self.answers = {}  # kind -> (czxid of the flag we answered, True if the answer node is ours)
        self.dirty = True  # look at the flags: a watch fired or the connection is new

    def _watch(self, event):
        self.dirty = True  # a plain flag: read by the loop's thread on its next turn
        self.wakeup.post("drain", event.path)

    def look(self, loop):
        """Read (and watch) the flags again if a watch fired; one round trip for both."""
        if not self.dirty or not self.paths:
            return
        self.dirty = False
        try:
            pending = [(kind, loop.client.exists_async(drainflag.flag_path(path, self.ident), watch=self._watch))
                       for kind, path in self.paths.items()]
            found = {kind: loop.get(result) for kind, result in pending}
        except BaseException:
            self.dirty = True
            raise
        for kind, stat in found.items():
            was = kind in self.flags
            if stat is not None and not was:
                self.log.warning("drained by an operator" if kind == LOCK else
                                 "registration drained by an operator: leaving discovery, the child keeps running",
                                 path=self.paths[kind], id=self.ident)
            elif stat is None and was:
                self.log.info("undrained by an operator", path=self.paths[kind], id=self.ident)
            if stat is None:
                self.flags.pop(kind, None)
            else:
                self.flags[kind] = stat

    def recheck_lock(self, loop):
        """Read the lock's flag once more (no watch): called after our lock node was made and before
        a child may start, so a flag that `zkherd drain` saw made before our node is never missed
        (ZooKeeper orders this read after our create). True if the lock is drained."""
        if LOCK not in self.paths or self.lock_drained():
            return self.lock_drained()
        stat = loop.get(loop.client.exists_async(drainflag.flag_path(self.paths[LOCK], self.ident)))
        if stat is not None:
            self.log.warning("drained by an operator just before the child was to start", path=self.paths[LOCK],
                             id=self.ident)
            self.flags[LOCK] = stat
        return self.lock_drained()

    def lock_drained(self):
        return self.standby or LOCK in self.flags

    def registration_drained(self):
        return self.standby or REGISTER in self.flags

    def why(self):
        return "--standby-only" if self.standby and LOCK not in self.flags else "drained by an operator"

    def answer(self, loop, kind):
        """We hold nothing at the drained path: say so (once per flag) for `zkherd drain` to see."""
        flag = self.flags.get(kind)
        known = self.answers.get(kind)
        if flag is None or known is not None and known[0] == flag.czxid and known[1] is not None:
            return
        node = drainflag.answer_path(self.paths[kind], self.ident)
        self.withdraw(loop, kind, force=True)  # our answer to an earlier flag (or a try that got no reply)
        self.answers[kind] = (flag.czxid, None)  # until the reply: a node of ours may be made
        owned = True
        try:
            owned = self._make_answer(loop, node, flag)
        except NoAuthError:  # never fatal: the drain itself is done, only `zkherd drain` is not told
            owned = False
            self.log.warning("cannot write our drain answer (access denied): `zkherd drain` will time out; give "
                             "the runner's credentials create rights on " + drainflag.ANSWERS, path=node)
        except NoNodeError:  # its folder deleted each time we made it: nothing made, tried again later
            self.answers.pop(kind)
            raise NotNow("the drain answer's folder keeps going") from None
        except (ConnectionLoss, SessionExpiredError, OperationTimeoutError):
            raise  # tried again on the next turn with a connection (the answer stays doubtful)
        except ZookeeperError as exc:  # a hand-made node in the way (an ephemeral folder, say): never fatal
            owned = False
            self.log.warning("cannot write our drain answer: `zkherd drain` will time out; see what is at the "
                             "answer's folder in " + drainflag.ANSWERS, path=node, error=type(exc).__name__)
        self.answers[kind] = (flag.czxid, owned)
        self.log.info("drained: holding nothing", path=self.paths[kind], id=self.ident)

    def _make_answer(self, loop, node, flag):
        """Create the answer; True if the node there is ours and newer than the flag."""
        client = loop.client
        try:
            create(client, node, drainflag.answer_data(self.ident), loop.get, ephemeral=True)
            return True
        except NodeExistsError:  # our create whose reply was lost, or a node that is not ours
            pass
        stat = loop.get(client.exists_async(node))
        if not ours(client, stat):
            if stat is not None:
                self.log.warning("a node that is not ours is at our answer's path (another runner of this id, or "
                                 "someone else's): left alone; `zkherd drain` gets no answer from us",
                                 path=node, ephemeral=stat.ephemeralOwner != 0)
            return False
        if stat.czxid < flag.czxid:  # ours, but older than the flag: it answers nothing; made anew
            self._delete_answer(loop, node, stat.version)
            create(client, node, drainflag.answer_data(self.ident), loop.get, ephemeral=True)
        return True

    def withdraw(self, loop, kind, force=False):
        """The flag went: our answer goes too (only a node that is ours: an undrain never waits on
        someone else's node). An answer whose create got no reply is looked for first."""
        if kind not in self.answers or kind in self.flags and not force:
            return
        owned = self.answers[kind][1]
        node = drainflag.answer_path(self.paths[kind], self.ident)
        if owned is None:
            stat = loop.get(loop.client.exists_async(node))
            if ours(loop.client, stat):
                self._delete_answer(loop, node, stat.version)
        elif owned:
            self._delete_answer(loop, node)
        self.answers.pop(kind)

    @staticmethod
    def _delete_answer(loop, node, version=-1):
        try:
            loop.get(loop.client.delete_async(node, version=version))
        except (NoNodeError, NotEmptyError, NoAuthError, BadVersionError):
            pass  # ours is ephemeral (no children); gone, or replaced by someone else's

    def reconnected(self):
        self.dirty = True

    def session_lost(self):
        self.answers.clear()  # ephemeral: gone with the session
        self.dirty = True
