"""A --standby-only runner under systemd's Type=notify is a started service: READY=1 with a STATUS
that says it is drained (else `systemctl start` would wait for it forever)."""

from __future__ import annotations

from tests.integration.test_runner_sdnotify import NotifySocket
from tests.support.runner import Zkherd


def test_standby_only_is_ready(zk_server, zk_base, tmp_path):
    sock = NotifySocket(str(tmp_path / "notify"))
    runner = Zkherd(["run", "--zk", zk_server.hosts, "--standby-only", "--lock", zk_base + "/lock", "--",
                     "sleep", "1000"], tmp_path / "r.log", env={"NOTIFY_SOCKET": sock.env})
    try:
        ready = sock.wait("READY", "1")
        assert ready["STATUS"].startswith("drained: --standby-only"), ready
        assert not runner.has("started child")
    finally:
        runner.stop()
        sock.close()
