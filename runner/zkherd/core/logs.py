"""Log lines that operators can grep: a UTC timestamp, the level, a message and key=value fields,
or one JSON object per line with --log-format json. Written to stderr; the child keeps stdout."""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys

LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Log:
    """log.info("message", key=value, ...); fields must never hold credentials."""

    def __init__(self, fmt="text", verbosity=0, stream=None, name="zkherd"):
        self.fmt = fmt
        self.level = LEVELS[max(-1, min(1, verbosity))]
        self.stream = stream or sys.stderr
        self.name = name
        self.pid = os.getpid()

    def _emit(self, level, message, fields, /):
        if level < self.level:
            return
        levelname = logging.getLevelName(level)
        if self.fmt == "json":
            line = json.dumps(dict({"ts": _now(), "level": levelname.lower(), "msg": message, "pid": self.pid},
                                   **fields), default=str)
        else:
            extra = "".join(" %s=%s" % (k, _quote(v)) for k, v in fields.items())
            line = "%s %s[%d] %s %s%s" % (_now(), self.name, self.pid, levelname, message, extra)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not take the runner (and its child) down

    def debug(self, message, /, **fields):
        self._emit(logging.DEBUG, message, fields)

    def info(self, message, /, **fields):
        self._emit(logging.INFO, message, fields)

    def warning(self, message, /, **fields):
        self._emit(logging.WARNING, message, fields)

    def error(self, message, /, **fields):
        self._emit(logging.ERROR, message, fields)


def _quote(value):
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n\t')) else text


class KazooBridge(logging.Handler):
    """Kazoo's own warnings (connection dropped, ...) into our log, at debug level unless they
    matter; its session password never leaves the connection module because we keep only
    WARNING and above."""

    def __init__(self, log):
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record):
        try:
            self.log.debug("kazoo: " + record.getMessage())
        except Exception:  # logging must never break the connection thread
            pass
