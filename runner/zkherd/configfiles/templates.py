"""--template SRC.j2=DEST: a local Jinja2 template rendered from znodes into DEST (docs/templates.md).

The environment is Jinja2's immutable sandbox, with StrictUndefined (an undefined name is an error,
never an empty string), no autoescape, the template's trailing newline kept. ZooKeeper data is data:
what a function returns is a value, never compiled as template code, and the sandbox refuses
`''.__class__.__mro__` and the like (a render error).

Functions a template calls (each read is watched: a change renders again):
  znode(path, type='raw'|'json'|'yaml', default=<none>)  the data as text, or decoded
  children(path)                                           the sorted names of its children
  tree(path)                                               nested dict of the subtree; leaves: text
  farm(path, filter=None)                                  {member: data dict}, farm export's --filter

A missing znode without default= stops that template's render: at start nothing is written (the
child waits, as for a missing mirrored znode), later the last DEST stays and a warning names the
znode. With default= the default is used. Any other error while rendering (an undefined name, bad
JSON in a znode, a division by zero) is a RenderError naming SRC (and the line): the files in place
stay. All templates of a set read one consistent state (zkreads.py).
"""

from __future__ import annotations

import json
import os

from kazoo.exceptions import KazooException

from zkherd.common import farm, paths
from zkherd.common.connection import ZkError
from zkherd.configfiles.renderguard import DEFAULT_TIMEOUT, Guard, RenderTimeout
from zkherd.configfiles.zkreads import CHILDREN, DATA, Moving, RenderError, ZnodeCache
from zkherd.core.loop import TRANSIENT
from zkherd.core.settings import ConfigError

NO_DEFAULT = object()
TYPES = ("raw", "json", "yaml")
MAX_DEPTH = 100  # of a decoded JSON or YAML value (a znode holds at most 1 MB: its size bounds the rest)
MAX_REPEAT = 10_000_000  # items or characters `*` may make, `**`'s exponent: C code no signal interrupts


class MissingZnode(Exception):
    """A template read a znode that does not exist, without a default."""

    def __init__(self, znode):
        super().__init__(znode)
        self.znode = znode


def environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class Environment(ImmutableSandboxedEnvironment):
        """`'x' * n` and `n ** m` run in C code holding the GIL (no signal, no fence thread, no kazoo ping
        runs meanwhile): with n from a znode they would be ZooKeeper data holding the process."""

        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context, operator, left, right):
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    sized = isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int)
                    if sized and len(seq) * times > MAX_REPEAT:
                        why = "%s * %d makes more than %d items" % (type(seq).__name__, times, MAX_REPEAT)
                        raise SecurityError(why)
            elif isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 10_000:
                raise SecurityError("%d ** %d is too large a number" % (left, right))
            return super().call_binop(context, operator, left, right)

    env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "allow_nan": False}  # `tojson` is strict JSON
    return env


class Template:
    """One SRC=DEST: the compiled template (a syntax error or an unreadable SRC is a ConfigError: 64)."""

    def __init__(self, env, src, dest, limit=DEFAULT_TIMEOUT):
        import jinja2

        self.src, self.dest = src, os.path.abspath(dest)
        self.limit = limit  # --render-timeout
        self.keys = []  # what its last render read, in order: prefetched before the next one
        try:
            with open(src, encoding="utf-8") as handle:
                self.compiled = env.from_string(handle.read())
        except OSError as exc:
            raise ConfigError("cannot read template %s: %s" % (src, exc.strerror)) from None
        except UnicodeDecodeError:
            raise ConfigError("template %s is not UTF-8 text" % src) from None
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError("template %s line %s: %s" % (src, exc.lineno, exc.message)) from None


def load_all(pairs, limit=DEFAULT_TIMEOUT):
    """[Template] of [(src, dest)]; *limit*: --render-timeout (seconds, 0: none)."""
    env = environment()
    return [Template(env, src, dest, limit) for src, dest in pairs]


def template_pairs(items, option="--template"):
    """["SRC=DEST"] -> [(src, dest)] (ConfigError if one is not of that form)."""
    pairs = []
    for item in items or []:
        src, sep, dest = str(item).partition("=")
        if not sep or not src or not dest or "\0" in item:
            raise ConfigError("%s takes SRC.j2=DEST, got %r" % (option, item))
        pairs.append((src, os.path.abspath(dest)))
    dests = [dest for _src, dest in pairs]
    if len(set(dests)) != len(dests):
        raise ConfigError("%s: two templates render into the same DEST" % option)
    return pairs


class TemplateSet:
    def __init__(self, templates, post, log):
        self.templates = list(templates)
        self.cache = ZnodeCache(post)
        self.log = log
        self.missing = {}  # DEST -> the znode missing in its last render
        self.guard = Guard(max(t.limit for t in self.templates) if self.templates else 0)

    def render(self, loop):
        """{DEST: bytes, or None when a znode it reads is missing}. Raises Moving, RenderError, or a
        ZooKeeper error the loop retries. Call confirm() after the other reads of the set."""
        cache = self.cache
        cache.begin()
        for template in self.templates:
            cache.prefetch(loop.client, template.keys)
        out, self.missing = {}, {}
        for template in self.templates:
            reads = Reads(loop, cache, self.log, self.guard)
            try:
                out[template.dest] = self._render(template, reads, loop)
            except MissingZnode as exc:
                out[template.dest], self.missing[template.dest] = None, exc.znode
            except RenderError as exc:
                template.keys = reads.keys
                exc.version = cache.version()
                raise
            template.keys = reads.keys
        return out

    def _render(self, template, reads, loop):
        functions = dict(znode=reads.znode, children=reads.children, tree=reads.tree, farm=reads.farm)
        try:
            with self.guard.rendering(getattr(loop, "wakeup", None)):
                return template.compiled.render(**functions).encode("utf-8")
        except (MissingZnode, Moving):  # Moving: also renderguard.Interrupted (a signal for the loop)
            raise
        except RenderTimeout as exc:
            raise RenderError("cannot render %s%s: %s" % (template.src, _line(exc), exc)) from None
        except RenderError as exc:  # a function's: bad data in a znode
            raise RenderError("cannot render %s%s: %s" % (template.src, _line(exc), exc.message)) from None
        except (ZkError, KazooException) + TRANSIENT:
            raise  # ZooKeeper's, not the template's: the loop tries again
        except Exception as exc:  # noqa: BLE001  # whatever a template raises is the template's error
            why = "%s: %s" % (type(exc).__name__, exc)
            raise RenderError("cannot render %s%s: %s" % (template.src, _line(exc), why)) from None

    def confirm(self, loop):
        self.cache.confirm(loop)

    def version(self):
        return self.cache.version()


def _line(exc):
    """" line N" of the template where *exc* was raised (Jinja2 rewrites its frames to the template)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return "" if line is None else " line %d" % line


class Reads:
    """The functions of one render: what they read is recorded (prefetched next time)."""

    def __init__(self, loop, cache, log, guard):
        self.loop, self.cache, self.log, self.guard = loop, cache, log, guard
        self.keys = []

    def _read(self, key):
        self.keys.append(key)
        with self.guard.read():
            return self.cache.read(self.loop, key)

    def _read_many(self, keys):
        self.keys.extend(keys)
        with self.guard.read():
            return self.cache.read_many(self.loop, keys)

    def znode(self, path, type="raw", default=NO_DEFAULT):  # noqa: A002  # the name templates use
        path = _check_path(path)
        if type not in TYPES:
            raise RenderError("znode(%s, type=%r): type is one of %s" % (path, type, ", ".join(TYPES)))
        entry = self._read((DATA, path))
        if entry is None:
            if default is NO_DEFAULT:
                raise MissingZnode(path)
            return default
        return decode(entry[0] or b"", type, path)

    def children(self, path):
        path = _check_path(path)
        entry = self._read((CHILDREN, path))
        if entry is None:
            raise MissingZnode(path)
        return sorted(entry[0])

    def tree(self, path):
        """{name: subtree or leaf text} below *path* (its own data and folders' data are left out).
        Every znode's children are read (a child watch: a leaf that gains a child renders again),
        a leaf's data too (a data watch)."""
        path = _check_path(path)
        listing = self._read((CHILDREN, path))
        if listing is None:
            raise MissingZnode(path)
        result = {}
        level = [(path, listing, result)]
        while level:
            below = [(paths.join(parent, name), name, into) for parent, listing, into in level
                     for name in sorted(listing[0]) if not paths.is_system(paths.join(parent, name))]
            listings = self._read_many([(CHILDREN, child) for child, _n, _i in below])
            leaves, level = [], []
            for (child, name, into), listing in zip(below, listings):
                if listing is None:
                    raise Moving("%s went while it was read" % child)
                if listing[0]:
                    into[name] = {}
                    level.append((child, listing, into[name]))
                else:
                    leaves.append((child, name, into))
            answers = self._read_many([(DATA, child) for child, _n, _i in leaves])
            for (child, name, into), answer in zip(leaves, answers):
                if answer is None:
                    raise Moving("%s went while it was read" % child)
                into[name] = decode(answer[0] or b"", "raw", child)
        return result

    def farm(self, path, filter=None):  # noqa: A002  # farm export's name
        path = _check_path(path)
        try:
            terms = farm.parse_filter(filter)
        except farm.FarmError as exc:
            raise RenderError("farm(%s, filter=%r): %s" % (path, filter, exc.message)) from None
        names = self.children(path)
        keys = [(DATA, paths.join(path, name)) for name in names]
        members = {}
        for name, entry in zip(names, self._read_many(keys)):
            if entry is None:
                continue  # it left while the farm was read: the child watch renders again
            try:
                doc = farm.decode_member(entry[0], "member %s" % paths.join(path, name))
            except farm.FarmError as exc:
                self.log.warning("farm(): skipping " + exc.message)
                continue
            if farm.matches(doc, terms):
                members[name] = doc
        return members


def _check_path(path):
    if not isinstance(path, str):
        raise RenderError("a znode path is text, got %r" % (path,))
    try:
        paths.validate(path)
    except paths.PathError as exc:
        raise RenderError(str(getattr(exc, "message", exc))) from None
    return path


def decode(data, kind, path):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RenderError("znode %s is not UTF-8 text" % path) from None
    if kind == "raw":
        return text
    if kind == "json":
        try:
            return _bounded(json.loads(text), path)
        except RecursionError:
            raise RenderError("znode %s: JSON nested deeper than %d levels" % (path, MAX_DEPTH)) from None
        except ValueError as exc:
            raise RenderError("znode %s is not valid JSON: %s" % (path, exc)) from None
    import yaml

    try:
        return _bounded(yaml.load(text, Loader=_loader()), path)  # noqa: S506  # a SafeLoader without aliases
    except RecursionError:
        raise RenderError("znode %s: YAML nested deeper than %d levels" % (path, MAX_DEPTH)) from None
    except (yaml.YAMLError, ValueError) as exc:
        raise RenderError("znode %s is not valid YAML: %s" % (path, str(exc).replace("\n", " "))) from None


def _bounded(value, path):
    """*value*, unless it nests deeper than MAX_DEPTH."""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise RenderError("znode %s: nested deeper than %d levels" % (path, MAX_DEPTH))
        level = [item for node in level if isinstance(node, (dict, list))
                 for item in (node.values() if isinstance(node, dict) else node)]
    return value


_LOADER = []


def _loader():
    """yaml.SafeLoader refusing aliases (`*name`, `<<: *name`): a few hundred bytes of them build a
    value with billions of strings (shared objects), and printing it runs in C code holding the GIL
    for seconds - long enough for the session to expire under a running child."""
    if not _LOADER:
        import yaml

        class NoAliasLoader(yaml.SafeLoader):
            def compose_node(self, parent, index):
                if self.check_event(yaml.AliasEvent):
                    mark = self.peek_event().start_mark
                    raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in znode data",
                                                      mark)
                return super().compose_node(parent, index)

        _LOADER.append(NoAliasLoader)
    return _LOADER[0]
