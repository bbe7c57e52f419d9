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
from zkherd.configfiles.zkreads import CHILDREN, DATA, Moving, RenderError, ZnodeCache
from zkherd.core.loop import TRANSIENT
from zkherd.core.settings import ConfigError

NO_DEFAULT = object()
TYPES = ("raw", "json", "yaml")


class MissingZnode(Exception):
    """A template read a znode that does not exist, without a default."""

    def __init__(self, znode):
        super().__init__(znode)
        self.znode = znode


def environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "allow_nan": False}  # `tojson` is strict JSON
    return env


class Template:
    """One SRC=DEST: the compiled template (a syntax error or an unreadable SRC is a ConfigError: 64)."""

    def __init__(self, env, src, dest):
        import jinja2

        self.src, self.dest = src, os.path.abspath(dest)
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


def load_all(pairs):
    """[Template] of [(src, dest)]."""
    env = environment()
    return [Template(env, src, dest) for src, dest in pairs]


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

    def render(self, loop):
        """{DEST: bytes, or None when a znode it reads is missing}. Raises Moving, RenderError, or a
        ZooKeeper error the loop retries. Call confirm() after the other reads of the set."""
        cache = self.cache
        cache.begin()
        for template in self.templates:
            cache.prefetch(loop.client, template.keys)
        out, self.missing = {}, {}
        for template in self.templates:
            reads = Reads(loop, cache, self.log)
            try:
                out[template.dest] = self._render(template, reads)
            except MissingZnode as exc:
                out[template.dest], self.missing[template.dest] = None, exc.znode
            except RenderError as exc:
                template.keys = reads.keys
                exc.version = cache.version()
                raise
            template.keys = reads.keys
        return out

    def _render(self, template, reads):
        functions = dict(znode=reads.znode, children=reads.children, tree=reads.tree, farm=reads.farm)
        try:
            return template.compiled.render(**functions).encode("utf-8")
        except (MissingZnode, Moving):
            raise
        except RenderError as exc:  # a function's: bad data in a znode
            raise RenderError("cannot render %s%s: %s" % (template.src, _line(exc), exc.message)) from None
        except (ZkError, KazooException) + TRANSIENT:
            raise  # ZooKeeper's, not the template's: the loop tries again
        except Exception as exc:  # noqa: BLE001  # whatever a template raises is the template's error
            raise RenderError("cannot render %s%s: %s: %s" % (template.src, _line(exc),
                                                             type(exc).__name__, exc)) from None

    def confirm(self, loop):
        self.cache.confirm(loop)

    def version(self):
        return self.cache.version()

    def missing_pairs(self):
        return [(dest, znode) for dest, znode in self.missing.items()]


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

    def __init__(self, loop, cache, log):
        self.loop, self.cache, self.log = loop, cache, log
        self.keys = []

    def _read(self, key):
        self.keys.append(key)
        return self.cache.read(self.loop, key)

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
        """{name: subtree or leaf text} below *path* (its own data and folders' data are left out)."""
        path = _check_path(path)
        if self._read((CHILDREN, path)) is None:
            raise MissingZnode(path)
        result = {}
        level = [(path, result)]
        while level:
            keys = [(CHILDREN, p) for p, _d in level]
            self.keys.extend(keys)
            listings = self.cache.read_many(self.loop, keys)
            leaves, deeper = [], []
            for (parent, into), listing in zip(level, listings):
                if listing is None:
                    raise Moving("%s went while it was read" % parent)
                for name in sorted(listing[0]):
                    child = paths.join(parent, name)
                    if paths.is_system(child):
                        continue
                    leaves.append((child, name, into))
            data_keys = [(DATA, child) for child, _n, _i in leaves]
            self.keys.extend(data_keys)
            answers = self.cache.read_many(self.loop, data_keys)
            for (child, name, into), answer in zip(leaves, answers):
                if answer is None:
                    raise Moving("%s went while it was read" % child)
                if answer[1].numChildren:
                    into[name] = {}
                    deeper.append((child, into[name]))
                else:
                    into[name] = decode(answer[0] or b"", "raw", child)
            level = deeper
        return result

    def farm(self, path, filter=None):  # noqa: A002  # farm export's name
        path = _check_path(path)
        try:
            terms = farm.parse_filter(filter)
        except farm.FarmError as exc:
            raise RenderError("farm(%s, filter=%r): %s" % (path, filter, exc.message)) from None
        names = self.children(path)
        keys = [(DATA, paths.join(path, name)) for name in names]
        self.keys.extend(keys)
        members = {}
        for name, entry in zip(names, self.cache.read_many(self.loop, keys)):
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
            return json.loads(text)
        except ValueError as exc:
            raise RenderError("znode %s is not valid JSON: %s" % (path, exc)) from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RenderError("znode %s is not valid YAML: %s" % (path, str(exc).replace("\n", " "))) from None
