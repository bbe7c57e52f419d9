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

from zkherd.common import acl, codec
from zkherd.common.connection import Settings


class ConfigError(Exception):
    """Bad usage or configuration: exit code 64."""


def load_file(path):
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
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
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ConfigError("cannot read credentials file %s: %s" % (path, exc.strerror)) from None
    except UnicodeDecodeError:
        raise ConfigError("credentials file %s is not UTF-8 text" % path) from None
    except ValueError as exc:  # a NUL in the name
        raise ConfigError("cannot read credentials file %r: %s" % (path, exc)) from None


def connection_settings(values):
    """The shared connection settings (zkherd.common.connection) from runner options; the
    credentials come from --auth, --auth-file or ZKHERD_AUTH, never from a log. --acl (the file's
    `acl:` list) becomes the ACL of every znode the command creates."""
    auth = values.get("auth")
    if values.get("auth_file"):
        auth = read_secret_file(values["auth_file"])
    if auth is None:
        auth = os.environ.get("ZKHERD_AUTH") or None
    default_acl = acl.parse_specs(values.get("acl"))
    if default_acl and not auth and any(entry[0] == "auth" for entry in default_acl):
        raise ConfigError("--acl auth::PERMS gives the znodes to the runner's own credentials: "
                          "it needs --auth-file (or --auth, or env ZKHERD_AUTH)")
    settings = Settings.from_options({
        "hosts": values.get("zk") or os.environ.get("ZKHERD_HOSTS"),
        "session_timeout": values.get("session_timeout"),
        "connect_timeout": values.get("connect_timeout"),
        "auth": auth,
        "tls_ca": values.get("tls_ca") or os.environ.get("ZKHERD_TLS_CA"),
        "tls_cert": values.get("tls_cert") or os.environ.get("ZKHERD_TLS_CERT"),
        "tls_key": values.get("tls_key") or os.environ.get("ZKHERD_TLS_KEY"),
    })
    settings.default_acl = default_acl
    return settings
