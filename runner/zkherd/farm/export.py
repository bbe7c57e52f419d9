"""`zkherd farm export FARM DEST`: keep DEST equal to the farm's members, as zkfarmer's export did.

The members are cached: a child watch on FARM says who joined or left (a new member costs one
read), a data watch on each member says whose data changed (one read of that member only), so a
change among a thousand members costs one read, not a thousand. Writes are on the leading edge:
the first change after a quiet spell is written at once; the changes that follow it within GAP
(50 ms) are merged into one write at the end of that gap, so a burst costs a write per 50 ms and
its last state is always written. The farm is rendered (json, yaml, php in zkfarmer's
`return array(...)` shape, or a Jinja2 template), filtered (--filter), and DEST is replaced
atomically if the text differs, after
--check-cmd accepted the staged file. With fewer than --min-members members the last file stays.
A member that is not a JSON object, or that this client may not read (its ACL), is reported and
left out; it never stops the export (a farm folder it may not list ends it with 77).

The export holds only what its format allows: a NaN or infinite number (JSON members may hold
NaN, Infinity or 1e999) is PHP's NAN/INF and YAML's .nan/.inf, but JSON has no such value: it is
exported as null, with a warning that names the member and the field; a template's `tojson`
refuses it (the last file stays).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import time

from kazoo.exceptions import KazooException, NoAuthError, NoNodeError
from kazoo.protocol.states import KazooState

from zkherd import telemetry
from zkherd.common import farm, paths
from zkherd.common.connection import ZkError, translate
from zkherd.common.errors import AUTH
from zkherd.configfiles.install import FileSet, LocalFileError, Target
from zkherd.core import exits
from zkherd.core.loop import TRANSIENT, Loop, Program
from zkherd.core.safetext import safe, short
from zkherd.core.shellcmd import Task, command_env
from zkherd.farm.jsontext import JsonText

REPORTED = 10  # warnings per member about numbers JSON cannot hold; the rest are counted

GAP = 0.05  # the shortest time between two writes: a burst of changes is merged into one write per GAP


def php(value, depth=0):
    """zkfarmer's PHP: the top two levels as multi-line arrays, deeper ones on one line."""
    if isinstance(value, dict):
        items = ['"%s" => %s' % (_php_escape(str(k)), php(v, depth + 1)) for k, v in value.items()]
        if depth >= 2 or not items:
            return "array(%s)" % ", ".join(items)
        pad = "    " * depth
        return "array\n%s(\n%s%s)" % (pad, "".join("%s    %s,\n" % (pad, item) for item in items), pad)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "NAN" if math.isnan(value) else "INF" if value > 0 else "-INF"  # PHP's constants, not inf/nan
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "array(%s)" % ", ".join(php(v, 2) for v in value)
    return '"%s"' % _php_escape(str(value))


def _php_escape(text):
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


def nonfinite(doc, link=None):
    """(link, value) of every NaN or infinite number in a member, as they come. A link is the item's
    (name or index, parent's link): field_name(link) makes its name, only for what is told (a name per
    item made a 600 KB key above 150,000 items cost 2 s of CPU per change of the member, and 100,000
    such names would take 59 GB)."""
    if isinstance(doc, float) and not math.isfinite(doc):
        yield link, doc
    elif isinstance(doc, dict):
        for key, value in doc.items():
            yield from nonfinite(value, (str(key), link))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from nonfinite(value, (i, link))


def field_name(link):
    """A nonfinite() link as a dotted field, [i] for lists: printable, each name cut at 100 characters."""
    parts = []
    while link is not None:
        part, link = link
        parts.append("[%d]" % part if isinstance(part, int) else ("." if link is not None else "") + short(part))
    return safe("".join(reversed(parts)), 300)


def json_name(number):
    """How JSON-ish text spells a non-finite number (Python's json reads and writes these)."""
    return "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"


def finite(value):
    """*value* with every NaN or infinite number replaced by None (JSON's null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def render(members, fmt, template=None, farm_path=None, json_text=None):
    """The export's text. JSON is strict (RFC 8259): no NaN or Infinity, see finite(); with
    *json_text* (a jsontext.JsonText) only the members that changed since its last text are encoded."""
    if fmt == "json":
        if json_text is not None:
            return json_text.render(members)
        return json.dumps(finite(members), indent=4, allow_nan=False) + "\n"
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(members, default_flow_style=False)
    if fmt == "php":
        return "<?php\nreturn %s;\n" % php(members)
    return template.render(members=members, farm=farm_path)


def load_template(path):
    """The --template of --format template, in the one environment of zkherd's templates (the
    sandbox: member data is data; configfiles/templates.py)."""
    import jinja2

    from zkherd.configfiles.templates import environment

    try:
        with open(path, encoding="utf-8") as handle:
            return environment().from_string(handle.read())
    except OSError as exc:
        raise ZkError("cannot read template %s: %s" % (path, exc.strerror), "usage") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ZkError("template %s line %d: %s" % (path, exc.lineno, exc.message), "usage") from None


class Export(Program):
    def __init__(self, opts, log):
        self.opts = opts
        self.log = log
        self.members = {}  # name -> doc (None: malformed, left out)
        self.names_dirty = True
        self.dirty_members = set()
        self.due = None  # when to write next (monotonic); None: nothing to write
        self.last_write = None  # when the last write was tried (monotonic)
        self.reads = 0
        self.template = load_template(opts.template) if opts.format == "template" else None
        self.json_text = JsonText(finite)
        self.filter = farm.parse_filter(opts.filter)
        if not getattr(opts, "include_drained", False):  # in maintenance (`zkherd farm drain`): out of the file
            self.filter += farm.parse_filter("!drained")
        self.tasks = []
        self.last_error = None
        self.post = None

    def start(self, loop):
        self.post = loop.wakeup.post

    def _children_changed(self, event):
        self.post("children", None)

    def _member_changed(self, event):
        if event.path is None:  # kazoo cleared its watches on a connection loss (an event of type
            return  # NONE): the CONNECTED state that follows has every member read again
        self.post("member", event.path.rsplit("/", 1)[1])

    def on_event(self, kind, value):
        if kind == "signal":
            self.exit_code = 0
            return
        if kind == "children":
            self.names_dirty = True
        elif kind == "member":
            self.dirty_members.add(value)
        elif kind == "state" and value == KazooState.CONNECTED:  # watches may have been missed: read all again
            self.names_dirty, self.dirty_members = True, set(self.members)
        if self.due is None:
            self.due = self.next_slot()

    def next_slot(self):
        """Now after a quiet spell (the leading edge), else GAP after the last write."""
        now = time.monotonic()
        return now if self.last_write is None else max(now, self.last_write + GAP)

    def turn(self, loop):
        for task in self.tasks:
            task.poll()
        self.tasks = [t for t in self.tasks if t.done is None]
        if loop.connected and (self.names_dirty or self.dirty_members):
            loop.talk()
            self.refresh(loop)
            self.last_error = None
            if self.due is None:
                self.due = self.next_slot()
        if self.due is None or self.names_dirty or self.dirty_members:
            return None
        left = self.due - time.monotonic()
        if left > 0:
            return left
        self.due, self.last_write = None, time.monotonic()
        code = self.write()
        if code:
            telemetry.get().export_write("failed")
        if self.opts.once:
            self.exit_code = code
        return None if self.due is None else max(0.0, self.due - time.monotonic())  # a write to try again

    def on_error(self, loop, error):
        if self.opts.once or error.kind == AUTH:  # access denied will not get better by trying again
            self.log.error(error.message)
            self.exit_code = exits.NOPERM if error.kind == AUTH else exits.UNAVAILABLE
            return None
        if error.message != self.last_error:  # once, not every second
            self.log.warning(error.message)
        self.last_error = error.message
        return 1.0

    def refresh(self, loop):
        """Read what changed; on any failure everything is read again (never write what a failed
        read left half done)."""
        try:
            self._refresh(loop)
        except BaseException:
            self.names_dirty, self.dirty_members = True, set(self.members)
            raise

    def _refresh(self, loop):
        client, farm_path = loop.client, self.opts.farm
        try:
            if self.names_dirty:
                self.names_dirty = False
                names = set(loop.get(client.get_children_async(farm_path, watch=self._children_changed)))
                self.reads += 1
                for gone in set(self.members) - names:
                    del self.members[gone]
                    self.log.info("member left the farm", member=gone)
                self.dirty_members |= names - set(self.members)
            pending = [(n, client.get_async(paths.join(farm_path, n), watch=self._member_changed))
                       for n in sorted(self.dirty_members)]
            self.dirty_members = set()
            for name, result in pending:
                self.reads += 1
                try:
                    data = loop.get(result)[0]
                except NoNodeError:
                    self.members.pop(name, None)
                    continue
                except NoAuthError:  # an ACL on one member: left out like a malformed one, never the end
                    self.log.warning("skipping member %s: access denied (the member's ACL does not let this "
                                     "client read it)" % paths.join(farm_path, name))
                    self.members[name] = None
                    continue
                try:
                    self.members[name] = farm.decode_member(data, "member %s" % paths.join(farm_path, name))
                except farm.FarmError as exc:
                    self.log.warning("skipping " + exc.message)
                    self.members[name] = None
                    continue
                self.report_nonfinite(name, self.members[name])
        except NoNodeError:
            raise ZkError("farm %s does not exist" % farm_path) from None
        except (ZkError,) + TRANSIENT:
            raise
        except KazooException as exc:
            raise translate(exc, "read the farm", farm_path) from None

    def report_nonfinite(self, name, doc):
        """Say what the JSON export does with numbers it cannot hold (PHP and YAML have them)."""
        if self.opts.format == "json":
            found = nonfinite(doc)
            for link, number in itertools.islice(found, REPORTED):
                self.log.warning("member %s field %s holds %s, which JSON cannot hold: exported as null"
                                 % (name, field_name(link), json_name(number)))
            more = sum(1 for _found in found)
            if more:
                self.log.warning("member %s holds %d more numbers JSON cannot hold: exported as null" % (name, more))

    def write(self):
        opts = self.opts
        chosen = {n: d for n, d in sorted(self.members.items()) if d is not None and farm.matches(d, self.filter)}
        if len(chosen) < opts.min_members:
            self.log.warning("fewer members than --min-members; keeping the last file", members=len(chosen),
                             min_members=opts.min_members, dest=opts.dest)
            return exits.TEMPFAIL
        try:
            text = render(chosen, opts.format, self.template, opts.farm, self.json_text)
        except Exception as exc:  # a template error names the line; the last file stays
            self.log.error("cannot render %s: %s" % (opts.dest, exc))
            return exits.DATAERR
        files = FileSet(opts.file_mode)
        try:
            code = self.install(files, text.encode("utf-8"))
        except LocalFileError as exc:  # a link or a swap in DEST's folder: the last file stays
            self.log.error(exc.message)
            self.due = time.monotonic() + 1.0  # try again in a second
            return exits.CANTCREAT
        finally:
            files.discard()
        if code is not None:
            return code
        self.log.info("export written", dest=opts.dest, members=len(chosen), reads=self.reads)
        telemetry.get().export_write("written")
        if opts.on_change:
            self.tasks.append(Task("on-change command", opts.on_change, command_env(ZKHERD_EXPORT=opts.dest), 300.0,
                                   self.log))
        return 0

    def install(self, files, data):
        """Replace DEST with *data* through install.FileSet, after --check-cmd; an exit code if
        that is all (unchanged: 0, rejected: 65), None once written."""
        opts, target = self.opts, Target.file(self.opts.dest)
        if not files.differs(target, data):  # sizes first: DEST is never read whole
            return 0
        files.stage(target, data)
        if opts.check_cmd:
            (dest, staged), = files.staged_paths()  # through the private folder's descriptor: see staging.py
            env = command_env(ZKHERD_STAGED_FILE=staged, ZKHERD_STAGED_FILES="%s=%s" % (dest, staged))
            try:
                ok = subprocess.run(["/bin/sh", "-c", opts.check_cmd], env=env, timeout=60, check=False).returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if not ok:
                self.log.warning("check command rejected the new export; keeping the last file", dest=opts.dest)
                return exits.DATAERR
        files.install()
        return None


def run(opts, settings, log):
    if opts.format == "template" and not opts.template:
        raise ZkError("--format template needs --template FILE.j2", "usage")
    if os.path.isdir(opts.dest):
        raise ZkError("%s is a directory; the export writes a file" % opts.dest, "usage")
    return Loop(settings, log).run(Export(opts, log))
