"""The connection retry that every client gets (issue 13, item 4): attempts go on for ever, and no
wait between two of them is longer than --reconnect-max-delay, jitter included. Behaviour against a
real outage: tests/integration/test_reconnect.py."""

from __future__ import annotations

import pytest
from kazoo.exceptions import ConnectionLoss
from kazoo.retry import KazooRetry

from zkherd.common.connection import Settings, ZkError, make_client
from zkherd.core.settings import connection_settings


def waits(max_delay, attempts=60):
    slept = []
    retry = make_client(Settings(reconnect_max_delay=max_delay))._conn_retry.copy()  # noqa: SLF001
    assert isinstance(retry, KazooRetry)
    retry.sleep_func = slept.append
    retry.interrupt = None
    failures = iter(range(attempts))

    def connect():
        if next(failures, None) is not None:
            raise ConnectionLoss()
        return "connected"

    assert retry(connect) == "connected"  # never gives up
    return slept


@pytest.mark.parametrize("max_delay", [1.0, 0.3, 5.0])
def test_no_wait_between_attempts_is_longer_than_the_bound(max_delay):
    slept = waits(max_delay)
    assert len(slept) == 60
    assert max(slept) <= max_delay
    assert slept[0] <= 0.12  # the first retry is quick
    assert sum(slept[-10:]) / 10 > 0.5 * max_delay  # and it does back off


def test_the_option_and_its_default():
    assert connection_settings({}).reconnect_max_delay == 1.0
    assert connection_settings({"reconnect_max_delay": "2.5"}).reconnect_max_delay == 2.5
    for bad in ("0", "-1", "nan", "soon"):
        with pytest.raises(ZkError):
            connection_settings({"reconnect_max_delay": bad})
