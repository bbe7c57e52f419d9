"""`zkherd render SRC.j2=DEST... [--once]`: templates without a child (configfiles/renderer.py)."""

from __future__ import annotations

import argparse

from zkherd.core.argtypes import FILE_MODE_HELP, file_mode, seconds
from zkherd.core.settings import ConfigError

NAMES = ("render",)
DEFAULTS = dict(template_args=None, template=None, once=False, on_change_cmd=None, check_cmd=None, check_timeout=30.0,
                change_delay=0.2, render_timeout=10.0, file_mode=0o644, mirror=None, mirror_dir=None, alert=None)


def add_parsers(commands):
    render = commands.add(
        "render", reports=True,
        usage="zkherd render SRC.j2=DEST... [--once] [--on-change CMD] [--check-cmd CMD] [options]",
        help="render Jinja2 templates over znodes into files, once or whenever the znodes change",
        description="Render each local Jinja2 template SRC.j2 from ZooKeeper into DEST (docs/templates.md), as "
                    "one consistent set: checked by --check-cmd, installed atomically, then --on-change runs. "
                    "Without --once it keeps DEST up to date until SIGTERM (exit 0). With --once: exit 0 when "
                    "the files are in place, 65 if a template raised or the check rejected the set, 73 if DEST "
                    "cannot be written, 75 if a znode a template reads does not exist, 69 if ZooKeeper stops "
                    "answering. SIGHUP renders again at once.")
    render.add_argument("template_args", nargs="*", metavar="SRC.j2=DEST", help="a template and the file it renders")
    render.add_argument("--template", action="append", metavar="SRC.j2=DEST", help="the same, as an option")
    render.add_argument("--mirror", action="append", metavar="LOCAL=ZNODE", help="a mirrored file in the same set")
    render.add_argument("--mirror-dir", action="append", metavar="LOCAL_DIR=ZNODE",
                        help="a mirrored directory in the same set")
    render.add_argument("--once", action="store_true", help="render, check, install, run --on-change, exit")
    render.add_argument("--on-change", dest="on_change_cmd", metavar="CMD",
                        help="shell command run after files changed ($ZKHERD_CHANGED_FILES); a failure is logged")
    render.add_argument("--check-cmd", metavar="CMD",
                        help="shell command that validates the staged files ($ZKHERD_STAGED_FILE, "
                             "$ZKHERD_STAGED_FILES)")
    render.add_argument("--check-timeout", type=seconds, metavar="S", help="a check running longer fails (default 30)")
    render.add_argument("--change-delay", type=seconds, metavar="S",
                        help="wait until changes stop for S (default 0.2, at most 2 s) and render the newest once")
    render.add_argument("--render-timeout", type=seconds, metavar="S",
                        help="a template rendering longer fails, a render error (default 10; 0: no limit)")
    render.add_argument("--file-mode", type=file_mode, metavar="MODE", help=FILE_MODE_HELP)
    render.add_argument("--alert", metavar="CMD",
                        help="shell command run when a template raises, a set is rejected or cannot be installed, "
                             "or --on-change fails ($ZKHERD_ALERT, $ZKHERD_ALERT_MESSAGE)")


def main(values, settings, log):
    from zkherd.commands.run import mirror_pairs
    from zkherd.configfiles import renderer, templates

    opts = argparse.Namespace(**values)
    pairs = templates.template_pairs(list(opts.template or []) + list(opts.template_args or []), "render")
    if not pairs:
        raise ConfigError("render needs at least one SRC.j2=DEST")
    opts.mirror = mirror_pairs(opts.mirror, "--mirror", "LOCAL=ZNODE")
    opts.mirror_dir = mirror_pairs(opts.mirror_dir, "--mirror-dir", "LOCAL_DIR=ZNODE")
    clash = sorted({dest for _src, dest in pairs} & {local for local, _z in opts.mirror})
    if clash:
        raise ConfigError("render: DEST %s is also a --mirror file" % clash[0])
    for name in ("check_timeout", "change_delay", "render_timeout"):
        setattr(opts, name, float(getattr(opts, name)))
        if getattr(opts, name) < 0:
            raise ConfigError("--%s must not be negative" % name.replace("_", "-"))
    opts.templates = templates.load_all(pairs, opts.render_timeout)
    return renderer.run(opts, settings, log)
