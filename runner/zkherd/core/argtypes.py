"""Values of the command line and the config file that several commands take: durations, file modes,
signals, znode paths. Bad values are ConfigError (exit 64), never a traceback."""

from __future__ import annotations

import argparse
import signal

from zkherd.common import paths
from zkherd.core.settings import ConfigError

FILE_MODE_HELP = "mode of the files zkherd creates, in octal (default 0644; a file in place keeps its own)"


def seconds(text):
    """A duration option: a finite number of seconds, 0 or more (not nan, inf or -1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % (text,)) from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("%r: seconds must be a finite number, 0 or more" % (text,))
    return value


def file_mode(text):
    """--file-mode: permission bits in octal (0640, 640 or 0o640), at most 0777 - no set-id or sticky bit."""
    digits = str(text).strip().lower()
    digits = digits[2:] if digits.startswith("0o") else digits
    if not digits or len(digits) > 4 or any(c not in "01234567" for c in digits):
        raise argparse.ArgumentTypeError("%r is not an octal file mode such as 0644 or 0600" % (text,))
    mode = int(digits, 8)
    if mode > 0o777:
        raise argparse.ArgumentTypeError("%r: only permission bits (at most 0777), no set-id or sticky bits" % (text,))
    return mode


def parse_signal(value):
    """TERM, SIGTERM, term or 15 -> signal.SIGTERM."""
    text = str(value).upper()
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return signal.Signals(int(text)) if text.isascii() and text.isdigit() else signal.Signals[name]
    except (KeyError, ValueError):
        raise ConfigError("unknown signal %r" % value) from None


def znode_path(value, what):
    """*value* if it is a valid absolute znode path, else ConfigError naming *what*."""
    try:
        paths.validate(value, what=what)
    except paths.PathError as exc:
        raise ConfigError(str(exc)) from None
    return value
