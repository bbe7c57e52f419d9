"""Settings from the command line, a YAML file (--config) and the environment, in that order of
precedence, so that a systemd unit needs one line: `zkherd run --config /etc/zkherd/NAME.yml`.

The file's keys are the long option names (dashes or underscores), e.g.

    zk: zk1:2181,zk2:2181/prod
    auth_file: /etc/zkherd/credentials    # user:password, readable by root only
    acl: ["auth::rwcda", "world:anyone:r"] # the ACL of every znode zkherd creates
    lock: /locks/myservice
    stop_timeout: 20
    command: [my-service, --port, "7777"]
"""

from __future__ import annotations

import os
import stat

from zkherd.common import acl, codec
from zkherd.common.connection import Settings


class ConfigError(Exception):
    """Bad usage or configuration: exit code 64."""


def read_bounded(path, limit, what):
    """The bytes of the operator's file *path* (a config file, --data @FILE), at most *limit*:
    ConfigError beyond (no local file is ever read unbounded)."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ConfigError("%s %s is bigger than %d bytes" % (what, path, limit))
    return data


def load_file(path):
    from zkherd.common.tree import MAX_FILE_BYTES  # here: the tree code is for other commands (memory of `run`)

    try:
        text = read_bounded(path, MAX_FILE_BYTES, "config file").decode("utf-8")
    except OSError as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror)) from None
    except UnicodeDecodeError:
        raise ConfigError("config file %s is not UTF-8 text" % path) from None
    except ValueError as exc:  # a NUL in the name
        raise ConfigError("cannot read config file %r: %s" % (path, exc)) from None
    try:
        data = codec.load_yaml(text, "config file %s" % path) or {}
    except codec.CodecError as exc:  # not YAML, `!!int 0x`, nested too deeply, a "billion laughs"...
        raise ConfigError(exc.message) from None
    if not isinstance(data, dict):
        raise ConfigError("config file %s must hold a mapping of option names to values" % path)
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def merge(cli, file_values, known):
    """Command line beats file; unknown file keys are an error (a typo must not pass silently)."""
    unknown = sorted(set(file_values) - set(known))
    if unknown:
        raise ConfigError("unknown option(s) in config file: %s" % ", ".join(unknown))
    merged = dict(known)
    merged.update(file_values)
    merged.update(cli)
    return merged


def read_secret_file(path):
    """The credentials of --auth-file: refused when others may read or write the file (checked on
    the file opened, so a swap between check and read changes nothing), as ssh refuses a loose key."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                raise ConfigError("credentials file %s is open to others (mode %04o): it must be readable by its owner "
                                  "only - run chmod 600 %s" % (path, stat.S_IMODE(mode), path))
            data = handle.read(4097)
    except OSError as exc:
        raise ConfigError("cannot read credentials file %s: %s" % (path, exc.strerror)) from None
    except ValueError as exc:  # a NUL in the name
        raise ConfigError("cannot read credentials file %r: %s" % (path, exc)) from None
    if len(data) > 4096:
        raise ConfigError("credentials file %s is larger than 4 KiB: not a USER:PASSWORD file" % path)
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError("credentials file %s is not UTF-8 text" % path) from None


def check_credentials(auth, source):
    """USER:PASSWORD on one line; the message says where it came from, never what it holds."""
    if not isinstance(auth, str):
        raise ConfigError("%s must be USER:PASSWORD text, not a %s" % (source, type(auth).__name__))
    user, colon, _password = auth.partition(":")
    if not colon or not user or "\n" in auth or "\r" in auth:
        raise ConfigError("%s must hold USER:PASSWORD on one line (digest credentials)" % source)
    try:
        auth.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("%s must be UTF-8 text" % source) from None
    return auth


def env_flag(name):
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError("environment variable %s must be 1 or 0 (true or false), got %r" % (name, value))


def connection_settings(values):
    """The shared connection settings (zkherd.common.connection) from runner options; the
    credentials come from --auth, --auth-file or ZKHERD_AUTH, never from a log. --acl (the file's
    `acl:` list) becomes the ACL of every znode the command creates."""
    auth = values.get("auth")
    if auth is not None:
        auth = check_credentials(auth, "--auth (or auth: in the config file)")
    if values.get("auth_file"):
        auth = check_credentials(read_secret_file(values["auth_file"]), "credentials file %s" % values["auth_file"])
    if auth is None and os.environ.get("ZKHERD_AUTH"):
        auth = check_credentials(os.environ["ZKHERD_AUTH"], "environment variable ZKHERD_AUTH")
    default_acl = acl.parse_specs(values.get("acl"))
    if default_acl and not auth and any(entry[0] == "auth" for entry in default_acl):
        raise ConfigError("--acl auth::PERMS gives the znodes to the runner's own credentials: "
                          "it needs --auth-file (or --auth, or env ZKHERD_AUTH)")
    settings = Settings.from_options({
        "hosts": values.get("zk") or os.environ.get("ZKHERD_HOSTS"),
        "session_timeout": values.get("session_timeout"),
        "connect_timeout": values.get("connect_timeout"),
        "reconnect_max_delay": values.get("reconnect_max_delay"),
        "auth": auth,
        "tls_ca": values.get("tls_ca") or os.environ.get("ZKHERD_TLS_CA"),
        "tls_cert": values.get("tls_cert") or os.environ.get("ZKHERD_TLS_CERT"),
        "tls_key": values.get("tls_key") or os.environ.get("ZKHERD_TLS_KEY"),
        "tls_system_ca": values.get("tls_system_ca") or env_flag("ZKHERD_TLS_SYSTEM_CA"),
    })
    settings.default_acl = default_acl
    return settings
