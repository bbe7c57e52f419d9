"""`zkherd farm join FARM CONF`: this host as a member of a farm, kept in sync both ways.

The member is the ephemeral znode FARM/NAME (NAME: the IPv4 address of the default route's
interface, or --name) holding CONF as a JSON object. CONF is a JSON or YAML file, or a DJB
directory (folder = dict, file = key holding its text, trailing newline trimmed).

- A local edit is written to the znode: inotify tells of it at once (core/fswatch.py); where
  inotify cannot be used (none, a network filesystem, its limits reached, --no-inotify), or no
  longer (the watcher's error: the folder above CONF's went, its thread failed), CONF is looked at
  every --poll seconds (default 0.5; with inotify a look every --poll, default 60, only in case an
  event was missed). The log and the metric farm_join_watch{mode} say which is used.
  An edit of the znode (for instance `zkherd farm set`) is written to CONF - atomically: a file
  is replaced by rename; the changed files of a directory are installed as one set, all or
  nothing (install.FileSet), also when a field changes between an object (folder) and a value (file).
- Conflict rule, nothing lost silently: both sides are merged field by field against the last
  state both agreed on (a three-way merge of fields, each known by its names from the top: a name
  may hold "."). A field changed on one side only takes that side's value; a field changed on both
  sides differently takes the local value and a warning names it (also a field made a value on one
  side and a folder of fields on the other: the local one, whole). Writes to the znode are
  compare-and-set: a write that raced another is merged again.
- After a session expiry the member is created again from CONF. --on-change CMD runs after CONF
  was changed from ZooKeeper.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import os
import socket
import struct

from kazoo.exceptions import BadVersionError, ConnectionLoss, KazooException, NodeExistsError, NoNodeError
from kazoo.protocol.states import KazooState

from zkherd import telemetry
from zkherd.common import codec, farm, paths
from zkherd.common.connection import ZkError, translate
from zkherd.common.errors import AUTH
from zkherd.configfiles.install import DEFAULT_FILE_MODE, FileSet, LocalFileError, Target
from zkherd.core import fswatch
from zkherd.core.loop import TRANSIENT, Loop, Program
from zkherd.core.safetext import safe, short
from zkherd.core.session import ours, session_id
from zkherd.core.shellcmd import Task, command_env
from zkherd.recipes.sequential import create


def default_route_address():
    """The IPv4 address of the interface of the default route (zkfarmer's member name)."""
    try:
        with open("/proc/net/route") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[1] == "00000000":
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                        packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", fields[0][:15].encode()))
                        return socket.inet_ntoa(packed[20:24])  # SIOCGIFADDR
    except OSError:
        pass
    return socket.gethostname()


# The merge compares fields by their names from the top: (name, name, ...) per field. A member that
# nests many fields deep makes many names per field; more than this many in all are refused (a member
# anyone would write stays far below it: 200,000 fields 20 deep are as many).
MAX_FIELD_NAMES = 4 * 1000 * 1000


def flatten(doc):
    """{"a": {"b": 1}} -> {("a", "b"): 1}; an empty dict stays a value. A field is the tuple of its
    names, never a dotted string: keys may hold "." ({"nginx.conf": 1} is not {"nginx": {"conf": 1}}),
    and a tuple shares the keys instead of copying them (a dotted name per field made a 600 KB key
    above 30,000 fields take 18 GB). FarmError beyond MAX_FIELD_NAMES names in all."""
    flat, left = {}, [MAX_FIELD_NAMES]

    def walk(value, prefix):
        for key, item in value.items():
            field = prefix + (key,)
            if isinstance(item, dict) and item:
                walk(item, field)
                continue
            left[0] -= len(field)
            if left[0] < 0:
                raise farm.FarmError("the member's fields nest too many names to merge: more than %d in all, "
                                     "at %s" % (MAX_FIELD_NAMES, dotted(field)))
            flat[field] = item

    walk(doc, ())
    return flat


def dotted(field):
    """A field's names as one dotted name for a message: printable, at most ten names of 100 characters."""
    return safe(".".join(short(name) for name in field[:10]) + ("..." if len(field) > 10 else ""), 1100)


def merge(base, local, remote, shows=None):
    """Three-way merge of fields; returns (merged, dotted names of the fields where both sides differ).
    Values compare with their types (codec.equal): 1 -> true on one side is a change. *shows(mine,
    value)*: whether a local field is what the local side makes of *value* (default: the same value)."""
    b, lo, re_ = flatten(base), flatten(local), flatten(remote)
    shows = shows or _same
    merged, conflicts = {}, []
    for key in sorted(set(b) | set(lo) | set(re_)):
        mine, theirs, was = lo.get(key, _GONE), re_.get(key, _GONE), b.get(key, _GONE)
        mine_changed = not shows(mine, was)
        if mine_changed and not _same(theirs, was) and not shows(mine, theirs):
            conflicts.append(key)
            value = mine
        else:  # both sides the same (in the local side's terms): theirs, which keeps a value's type
            value = mine if mine_changed and not shows(mine, theirs) else theirs
        if value is not _GONE:
            merged[key] = value
    clashes = _two_shapes(merged)  # changed on both sides: into a value on one, fields below it on the other
    if clashes:
        conflicts = _keep_local_shape(merged, clashes, lo, b, shows, conflicts)
    return unflatten(merged), [dotted(field) for field in sorted(conflicts)]


def _two_shapes(flat):
    """The fields of *flat* that hold a value and have fields below them too: each side is one document,
    so one side made it a value and the other put fields below it. One pass in order (a field's own
    fields come right after it)."""
    clashes, value = set(), None  # value: the last field holding a value (not a dict)
    for key in sorted(flat):
        if value is not None and key[:len(value)] == value:
            clashes.add(value)
            continue
        value = None if flat[key] == {} else key
    return clashes


def _keep_local_shape(merged, clashes, lo, b, shows, conflicts):
    """Each field of *clashes* as the local side has it, whole, in *merged*; returns the conflicts: these
    fields instead of any below them. One pass in order, so a field's region is one run."""
    region, inside = None, set()
    for key in sorted(set(merged) | set(lo)):
        if region is None or key[:len(region)] != region:
            region = key if key in clashes else None
        if region is None:
            continue
        inside.add(key)
        merged.pop(key, None)
        if key in lo:  # the agreed value where the local side still shows it (a DJB file keeps 5 a number)
            merged[key] = b[key] if key in b and shows(lo[key], b[key]) else lo[key]
    return [c for c in conflicts if not any(c[:n] in clashes for n in range(1, len(c) + 1))] + list(clashes)


def unflatten(flat):
    """{("a", "b"): 1} -> {"a": {"b": 1}}, in one pass over the fields (a copy of the whole member per
    field made a 1 MB member take minutes). A field below one that is a value is a FarmError (merge
    never makes one). The dicts are new: an empty dict that a field lands in is copied, never one of
    the inputs changed."""
    doc, made = {}, set()  # ids of the dicts made here, which may be filled
    made.add(id(doc))
    for field in sorted(flat):
        node = doc
        for key in field[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                if key in node:
                    raise farm.FarmError("cannot set %s: %s is a value, not a dict" % (dotted(field), safe(key)))
                child = node[key] = {}
                made.add(id(child))
            elif id(child) not in made:
                child = node[key] = dict(child)
                made.add(id(child))
            node = child
        node[field[-1]] = flat[field]
    if farm.too_deep(doc):  # what decode_member would refuse is never made
        raise farm.FarmError("the merged member would nest deeper than %d levels" % farm.MAX_DEPTH)
    return doc


_GONE = object()

# Data a server takes in one request by default (jute.maxbuffer 0xfffff), less the request's path and
# header: 1,048,518 bytes of data in /farm/x was the most a create got through.
JUTE_MAXBUFFER = 1048575 - 512


def _same(a, b):
    if isinstance(a, str) and isinstance(b, str):  # most fields: a plain comparison says it, without the typed walk
        return a == b
    return codec.equal(a, b)


def djb_shows(mine, value):
    """Whether the DJB field *mine* shows *value*: a file holds text only, so a value that is not a
    string (5, true, [1], null, {} where no folder was) is written as its JSON text and reads back as
    that text. Only an edit of that text is a local change (its text is then the value)."""
    if isinstance(mine, str) and value is not _GONE and not isinstance(value, str):
        return mine == farm.text(value)
    return _same(mine, value)


def djb_equal(local, doc):
    """Whether a DJB directory read as *local* shows the whole member *doc* (djb_shows per field)."""
    lo, flat = flatten(local), flatten(doc)
    return lo.keys() == flat.keys() and all(djb_shows(lo[key], flat[key]) for key in lo)


class Conf:
    """The local side: a JSON/YAML file or a DJB directory."""

    def __init__(self, path, fmt, file_mode=DEFAULT_FILE_MODE):
        self.path = path
        self.file_mode = file_mode  # of the files (and, made executable, folders) it creates
        self.fmt = fmt or ("dir" if os.path.isdir(path) else "yaml" if path.endswith((".yml", ".yaml")) else "json")

    def stamp(self):
        """Something that changes when the local side changes (mtimes and sizes, and a DJB tree's
        folders; links not followed). With inotify too, it decides whether CONF changed since we read or
        wrote it (an event only wakes the turn: our own writes are told as well)."""
        if self.fmt != "dir":
            try:
                st = os.lstat(self.path)
            except OSError:
                return None
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        marks = []
        for directory, dirs, files in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            marks.append((directory,))  # an empty folder is a field ({}): made or removed, it is a change
            for name in sorted(f for f in files if not f.startswith(".")):
                try:
                    st = os.lstat(os.path.join(directory, name))
                except OSError:
                    continue  # gone meanwhile: the next look sees it
                marks.append((directory, name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(marks)

    def read(self):
        if self.fmt == "dir":
            return farm.read_dir(self.path)
        files = FileSet()
        try:
            raw = files.read(Target.file(self.path))  # never through a symlink: CONF's folder may not be root's
        except LocalFileError as exc:
            raise farm.FarmError(exc.message) from None
        finally:
            files.discard()
        if raw is None:
            raise farm.FarmError("%s does not exist" % self.path)
        if self.fmt == "yaml":
            try:
                doc = codec.load_yaml(raw, self.path) or {}
            except codec.CodecError as exc:  # not YAML, `!!int 0x`, a "billion laughs"...
                raise farm.FarmError(exc.message) from None
            if not isinstance(doc, dict):
                raise farm.FarmError("%s must hold a mapping" % self.path)
            problem = farm.json_problem(doc)  # `since: 2020-01-01` is a date, `on: 1` a key True
            if problem:
                raise farm.FarmError("%s holds %s" % (self.path, problem))
            return doc
        return farm.decode_member(raw, self.path)

    def write(self, doc):
        """Replace CONF (or the DJB directory's changed files) atomically through install.FileSet:
        no name from ZooKeeper leaves the directory, no symlink inside it is followed."""
        files = FileSet(self.file_mode)
        try:
            if self.fmt == "json":
                files.stage(Target.file(self.path), (json.dumps(doc, indent=2) + "\n").encode())
            elif self.fmt == "yaml":
                import yaml

                files.stage(Target.file(self.path), yaml.safe_dump(doc, default_flow_style=False).encode())
            else:
                current, wanted = flatten(farm.read_dir(self.path)), flatten(doc)
                keep = set(wanted)
                fields = sorted(wanted)
                for key, now in current.items():
                    if key in wanted or now == {} and _below(fields, key):
                        continue  # kept, or an empty folder that fields go into
                    files.remove(_topmost_unwanted(self.path, list(key), keep))  # first: before anything is staged
                for key, value in wanted.items():
                    now = current.get(key)
                    if now == farm.text(value) or isinstance(now, dict) and value == {}:
                        continue  # the same text, or an empty folder for {}: nothing to write
                    target = Target.below(self.path, list(key))
                    try:
                        data = (farm.text(value) + "\n").encode()
                    except UnicodeEncodeError:  # JSON's "\ud800": no file can hold it
                        raise farm.FarmError("the member's field %s holds text that is not UTF-8 (a lone surrogate), "
                                             "which no DJB file can hold: nothing written" % dotted(key)) from None
                    if isinstance(now, dict):  # an empty folder becomes a value: replaced in the same set
                        files.remove(target)
                    files.stage(target, data)
            files.install()
        except BaseException:
            files.discard()
            raise


def _below(fields, key):
    """Whether a field of *fields* (sorted) is below *key*: the first one after it, if any."""
    i = bisect.bisect_right(fields, key)
    return i < len(fields) and fields[i][:len(key)] == key


def _topmost_unwanted(path, names, keep):
    """The Target of the first folder on the way of the field *names* (a list) that no field in
    *keep* is below (a field object that went goes as a whole folder, also when it became a value),
    else of the field itself."""
    depth = next((d for d in range(1, len(names)) if not any(len(k) > d and k[:d] == tuple(names[:d]) for k in keep)),
                 len(names))
    return Target.below(path, names[:depth])


class Member(Program):
    def __init__(self, opts, log):
        self.opts = opts
        self.log = log
        self.conf = Conf(opts.conf, opts.format, opts.file_mode)
        self.node = paths.join(opts.farm, opts.name or default_route_address())
        self.base = None  # the last state both sides agreed on
        self.joined = False  # our node exists in this session
        self.stamp = None
        self.dirty = True
        self.tasks = []
        self.post = None
        self.warned_size = None
        self.watcher = None  # a fswatch.Watcher while inotify follows CONF
        self.poll = float(opts.poll or 0.5)  # seconds between looks at CONF

    def start(self, loop):
        self.post = loop.wakeup.post
        why = "--no-inotify was given" if self.opts.no_inotify else fswatch.unusable(self.conf.path)
        if why is None:
            try:
                self.watcher = fswatch.Watcher(self.conf.path, self.conf.fmt == "dir", self.post)
            except fswatch.WatchError as exc:
                why = str(exc)
        if self.watcher is not None:
            self.poll = float(self.opts.poll or 60.0)
            self.log.info("following local edits with inotify", conf=self.conf.path, safety_look="%gs" % self.poll)
        self._polling(why)

    def _polling(self, why):
        """Log (once) and report which way local edits are followed; *why*: the reason to poll."""
        if why is not None:
            self.log.info("following local edits by polling every %gs" % self.poll, conf=self.conf.path, why=why)
        telemetry.get().watch("inotify" if self.watcher is not None else "poll")

    def close(self, loop):
        if self.watcher is not None:
            self.watcher.close()

    def _changed(self, event):
        self.post("remote", None)

    def on_event(self, kind, value):
        if kind == "signal":
            self.exit_code = 0
            return
        if kind == "local" and self.watcher is not None and self.watcher.error:  # inotify gave up
            why = self.watcher.error
            self.watcher.close()
            self.watcher, self.poll = None, float(self.opts.poll or 0.5)
            self._polling(why)
        if kind == "state" and value == KazooState.LOST:
            self.joined = False  # our ephemeral node is gone: make it again
        if kind != "local":  # a local event only wakes the turn: its stamp says whether CONF changed since
            self.dirty = True  # we last read or wrote it (our own writes are told by inotify too)

    def turn(self, loop):
        for task in self.tasks:
            task.poll()
        self.tasks = [t for t in self.tasks if t.done is None]
        stamp = self.conf.stamp()
        if stamp != self.stamp:
            self.dirty = True
        if loop.connected and self.dirty:
            loop.talk()
            try:
                self.sync(loop, stamp)
            except farm.FarmError as exc:  # the local file, or the member's fields for a DJB directory
                self.log.warning("cannot sync the member, keeping both sides as they are", error=exc.message)
                self.stamp = stamp
            except (BadVersionError, NodeExistsError, NoNodeError) as exc:  # raced a writer: merge again
                self.log.debug("the member changed meanwhile, syncing again", error=type(exc).__name__)
                return 0.0
            self.dirty = False
        return self.poll

    def on_error(self, loop, error):
        if error.kind == AUTH:  # will not get better by trying again
            return super().on_error(loop, error)
        self.log.warning("could not sync the member yet", error=error.message)
        return max(float(self.opts.poll or 0.5), 1.0)

    def sync(self, loop, stamp):
        client = loop.client
        local = self.conf.read()
        self.stamp = stamp
        try:
            data, stat = loop.get(client.get_async(self.node, watch=self._changed))
        except NoNodeError:
            data = stat = None
        except (ZkError,) + TRANSIENT:
            raise
        except KazooException as exc:
            raise translate(exc, "read", self.node) from None
        ours = session_id(client)
        if ours is None:
            raise ConnectionLoss("lost contact with ZooKeeper")  # tried again once it is back
        if stat is None or not self.joined and stat.ephemeralOwner != ours:
            if stat is not None:  # a node of an old session of ours, or of another host: replace it
                self.write(loop, client.delete_async(self.node, version=stat.version), "replace")
            if self.conf.fmt == "dir":  # made again: a DJB file still showing a typed value keeps its type
                local = self.typed(local, data if self.base is None and stat is not None else None)
            create(client, self.node, self.encode(local), lambda result: self.write(loop, result, "join the farm as"),
                   ephemeral=True)
            self.log.info("joined the farm", node=self.node)
            self.remember(loop, local, joined=True)
            return
        try:
            remote = farm.decode_member(data, "member %s" % self.node)
        except farm.FarmError as exc:  # a hand edit left no fields to merge: the local side is the member
            self.log.warning("replacing the member with the local configuration", error=exc.message)
            remote, self.base = None, local
        if remote is not None and self.conf.fmt == "dir":
            farm.check_dir_names(remote, "member %s" % self.node)
        base = self.base if self.base is not None else remote
        djb = self.conf.fmt == "dir"
        merged, conflicts = merge(base, local, remote, djb_shows if djb else None) if remote is not None \
            else (local, [])
        for field in conflicts:
            self.log.warning("field changed here and in ZooKeeper; keeping the local value", field=field)
        if remote is None or not codec.equal(merged, remote):  # compare-and-set: BadVersion merges again
            self.write(loop, client.set_async(self.node, self.encode(merged), version=stat.version), "update")
            self.log.info("member updated from the local configuration", node=self.node)
        if not (djb_equal(local, merged) if djb else codec.equal(merged, local)):
            self.conf.write(merged)
            self.stamp = self.conf.stamp()
            self.log.info("local configuration updated from ZooKeeper", conf=self.conf.path)
            if self.opts.on_change:
                self.tasks.append(Task("on-change command", self.opts.on_change, command_env(), 300.0, self.log))
        self.remember(loop, merged)

    def typed(self, local, old_data):
        """*local* (a DJB directory's fields) with the types of the last agreed state, or of the node being
        replaced (*old_data*: a restart has no last state) where a file still shows that value (5, not "5")."""
        base = self.base
        if base is None and old_data is not None:
            try:
                base = farm.decode_member(old_data, "member %s" % self.node)
            except farm.FarmError:
                return local
        if base is None:
            return local
        try:
            return merge(base, local, base, djb_shows)[0]
        except farm.FarmError:  # too many names, nested too deep: the files as they are
            return local

    def encode(self, doc):
        """The member's data; a warning (once per size) when ZooKeeper's default limit would refuse it:
        a server drops the connection of a request above jute.maxbuffer, which looks like any other
        connection loss and is tried again - the warning says why it never gets through."""
        data = farm.encode_member(doc)
        if len(data) > JUTE_MAXBUFFER and len(data) != self.warned_size:
            self.warned_size = len(data)
            self.log.warning("the member is bigger than ZooKeeper takes by default (jute.maxbuffer, 1 MiB): "
                             "unless the servers' limit was raised, it cannot be written", bytes=len(data))
        return data

    def write(self, loop, result, action):
        """Wait for a write; races (BadVersion, NodeExists, NoNode) and transient errors go up as
        they are (the loop syncs again), anything else becomes a message."""
        try:
            return loop.get(result)
        except (BadVersionError, NodeExistsError, NoNodeError, ZkError) + TRANSIENT:
            raise
        except KazooException as exc:
            raise translate(exc, action, self.node) from None

    def remember(self, loop, doc, joined=False):
        self.base = doc
        self.joined = True
        # re-arm the watch on our node (a get without data changes is cheap)
        stat = self.write(loop, loop.client.exists_async(self.node, watch=self._changed), "watch")
        if joined:  # the read before the create could set no watch on a missing node: was it changed since?
            mine = stat is not None and ours(loop.client, stat)
            if not mine or stat.version != 0:
                self.joined = mine  # gone, or another session's node now: made again (replaced) next turn
                self.post("remote", None)


def run(opts, settings, log):
    if not os.path.exists(opts.conf):
        raise ZkError("%s does not exist" % opts.conf, "usage")
    return Loop(settings, log).run(Member(opts, log))
