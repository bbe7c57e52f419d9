"""Settings from the command line, a YAML file (--config) and the environment, in that order of
precedence, so that a systemd unit needs one line: `zkherd run --config /etc/zkherd/NAME.yml`.

The file's keys are the long option names (dashes or underscores), e.g.

    zk: zk1:2181,zk2:2181/prod
    auth_file: /etc/zkherd/credentials    # user:password, readable by root only
    lock: /locks/myservice
    stop_timeout: 20
    command: [my-service, --port, "7777"]
"""

from __future__ import annotations

import os

import yaml

from zkherd.common.connection import Settings


class ConfigError(Exception):
    """Bad usage or configuration: exit code 64."""


def load_file(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror)) from None
    except yaml.YAMLError as exc:
        raise ConfigError("config file %s is not valid YAML: %s" % (path, str(exc).replace("\n", " "))) from None
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


def connection_settings(values):
    """The shared connection settings (zkherd.common.connection) from runner options; the
    credentials come from --auth, --auth-file or ZKHERD_AUTH, never from a log."""
    auth = values.get("auth")
    if values.get("auth_file"):
        auth = read_secret_file(values["auth_file"])
    if auth is None:
        auth = os.environ.get("ZKHERD_AUTH") or None
    return Settings.from_options({
        "hosts": values.get("zk") or os.environ.get("ZKHERD_HOSTS"),
        "session_timeout": values.get("session_timeout"),
        "connect_timeout": values.get("connect_timeout"),
        "auth": auth,
        "tls_ca": values.get("tls_ca") or os.environ.get("ZKHERD_TLS_CA"),
        "tls_cert": values.get("tls_cert") or os.environ.get("ZKHERD_TLS_CERT"),
        "tls_key": values.get("tls_key") or os.environ.get("ZKHERD_TLS_KEY"),
    })
