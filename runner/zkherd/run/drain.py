"""The drain flags a runner watches (recipes/drainflag.py): one for its --lock path (stay out of
the lock: stop the child, release, stay out of the line) and one for its --register path (leave
discovery, the child keeps running). It reports what the flags say and answers for them once the
runner holds nothing there; the runner decides (run/runner.py). --standby-only is a lock drain
that nobody can lift."""

from __future__ import annotations

from kazoo.exceptions import NodeExistsError, NoNodeError

from zkherd.recipes import drainflag

LOCK, REGISTER = "lock", "register"


class DrainFlags:
    def __init__(self, opts, wakeup, log):
        self.log, self.wakeup, self.ident = log, wakeup, opts.id
        self.standby = bool(getattr(opts, "standby_only", False))
        self.paths = {kind: path for kind, path in ((LOCK, opts.lock), (REGISTER, opts.register)) if path}
        self.flags = {}  # kind -> the flag's stat, while there is one
        self.answers = {}  # kind -> czxid of the flag we answered, while our answer is there
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

    def lock_drained(self):
        return self.standby or LOCK in self.flags

    def registration_drained(self):
        return self.standby or REGISTER in self.flags

    def why(self):
        return "--standby-only" if self.standby and LOCK not in self.flags else "drained by an operator"

    def answer(self, loop, kind):
        """We hold nothing at the drained path: say so (once per flag) for `zkherd drain` to see."""
        flag = self.flags.get(kind)
        if flag is None or self.answers.get(kind) == flag.czxid:
            return
        node = drainflag.answer_path(self.paths[kind], self.ident)
        if kind in self.answers:
            self._delete(loop, node)  # the answer to an earlier flag of the same name
            self.answers.pop(kind)
        try:
            loop.get(loop.client.create_async(node, drainflag.answer_data(self.ident), ephemeral=True, makepath=True))
        except NodeExistsError:  # our create whose reply was lost, or a runner of the same id elsewhere
            stat = loop.get(loop.client.exists_async(node))
            if stat is not None and stat.ephemeralOwner != loop.client.client_id[0]:
                self.log.warning("another runner answers for this id; ids must be unique", path=node)
        self.answers[kind] = flag.czxid
        self.log.info("drained: holding nothing", path=self.paths[kind], id=self.ident)

    def withdraw(self, loop, kind):
        """The flag went: our answer goes too."""
        if kind in self.answers and kind not in self.flags:
            self._delete(loop, drainflag.answer_path(self.paths[kind], self.ident))
            self.answers.pop(kind)

    def _delete(self, loop, node):
        try:
            loop.get(loop.client.delete_async(node))
        except NoNodeError:
            pass

    def reconnected(self):
        self.dirty = True

    def session_lost(self):
        self.answers.clear()  # ephemeral: gone with the session
        self.dirty = True
