"""Real Apache ZooKeeper servers (Debian's 3.8 package) for tests.

    server = ZooKeeperServer()            # temp dir, free loopback port
    server.start()                        # returns once it serves requests
    KazooClient(server.hosts)
    server.kill(); server.start()         # crash + recover, same port and data
    server.close()

ZooKeeperEnsemble(3) does the same for a quorum. `python -m
tests.support.zkserver start|stop|status` is a CLI for demo scripts (see
zkcli.py).
"""

import os
import random
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import procs

JAVA = os.environ.get("ZK_TEST_JAVA", "java")
_LIB = "/usr/share/java"
# zookeeper.jar's manifest Class-Path covers most dependencies. Missing from
# it: an slf4j binding (without one the server logs nothing) and the netty
# pieces NettyServerCnxnFactory needs (codec for the pipeline incl. TLS,
# resolver and unix-common for the transport).
CLASSPATH = os.environ.get("ZK_TEST_CLASSPATH") or ":".join(
    ["/etc/zookeeper/conf"]
    + [
        f"{_LIB}/{jar}.jar"
        for jar in (
            "zookeeper",
            "slf4j-log4j12",
            "log4j-1.2",
            "netty-codec",
            "netty-resolver",
            "netty-transport-native-unix-common",
        )
    ]
)
# Small, quick-starting JVMs: the test machine has 2 cores. The heap may grow to 1 GiB (a server
# is shared by a worker's whole run; 256 MiB ran out once under megabyte-sized nodes and trees).
JVM_OPTS = [
    "-Xmx1g",
    "-XX:+UseSerialGC",
    "-Xshare:auto",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.net.preferIPv4Stack=true",
    "-Dzookeeper.root.logger=INFO,CONSOLE",
]
STANDALONE_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
LOOPBACK = "127.0.0.1"

_handed_out: set[int] = set()
# The fixed ports of the boxes' servers and consumers (playbooks/inventory/boxes.yml, molecule's
# fourth server, the renderers' metrics: all within 25000-25999). Molecule runs beside the
# integration tests (scripts/test.sh) and the boxes share this host's network: a test's server on
# one of them would keep a box's from starting, or the other way round.
BOX_PORTS = (25000, 26000)


class ZooKeeperStartError(RuntimeError):
    pass


def free_port() -> int:
    """A currently free loopback port below the kernel's ephemeral range.

    Staying below the ephemeral range means outgoing connections (kazoo
    clients, the fault proxy) can never grab the port while a server is
    stopped between restarts.
    """
    low = _ephemeral_low()
    for _unused in range(200):
        port = random.randrange(10000, low)
        if port in _handed_out or BOX_PORTS[0] <= port < BOX_PORTS[1]:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found")


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, 10001)


def four_letter_word(host: str, port: int, cmd: str, timeout: float = 2.0) -> str:
    """Send a 4lw command (ruok, srvr, stat, mntr, ...) and return the reply."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(cmd.encode())
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class ZooKeeperServer:
    """One ZooKeeper JVM with its own directory: zoo.cfg, data/, zookeeper.log.

    base_dir=None creates a temp dir that close() removes; a given base_dir
    is never removed (pytest's tmp_path keeps logs of recent runs). TLS is on
    when keystore is given: a secureClientPort (free one unless secure_port)
    served by netty; key/trust stores may be JKS, PKCS12 (.p12) or PEM, the
    type is inferred from the file extension. ssl_client_auth is
    none/want/need (ZooKeeper's default: need). extra_cfg overrides zoo.cfg
    keys; jvm_props become -Dkey=value.
    myid/quorum make it an ensemble member; see ZooKeeperEnsemble.
    """

    def __init__(
        self,
        base_dir: Path | str | None = None,
        *,
        port: int | None = None,
        tick_time: int = 200,
        secure_port: int | None = None,
        keystore: Path | str | None = None,
        keystore_password: str | None = None,
        truststore: Path | str | None = None,
        truststore_password: str | None = None,
        ssl_client_auth: str | None = None,
        extra_cfg: Mapping[str, object] | None = None,
        jvm_props: Mapping[str, object] | None = None,
        myid: int | None = None,
        detach: bool = False,
    ):
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="zkherd-zk-")).resolve()
        self.port = port or free_port()
        self.secure_port = (secure_port or free_port()) if keystore else None
        self.tick_time = tick_time
        self.myid = myid
        self.detach = detach
        self.jvm_props = dict(jvm_props or {})
        self.cfg = self._default_cfg()
        if keystore:
            tls = {
                "secureClientPort": self.secure_port,
                "secureClientPortAddress": LOOPBACK,
                "serverCnxnFactory": NETTY_FACTORY,
                # Unknown zoo.cfg keys become zookeeper.* system properties,
                # so these are zookeeper.ssl.keyStore.location etc.
                "ssl.keyStore.location": keystore,
                "ssl.keyStore.password": keystore_password,
                "ssl.trustStore.location": truststore,
                "ssl.trustStore.password": truststore_password,
                "ssl.clientAuth": ssl_client_auth,
            }
            self.cfg.update({k: v for k, v in tls.items() if v is not None})
        self.cfg.update(extra_cfg or {})
        self._proc = None

    def _default_cfg(self) -> dict[str, object]:
        return {
            "tickTime": self.tick_time,
            "dataDir": self.data_dir,
            "clientPort": self.port,
            "clientPortAddress": LOOPBACK,
            # Explicit bounds so tests can use 1-2 s sessions.
            "minSessionTimeout": 2 * self.tick_time,
            "maxSessionTimeout": 60000,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            # Test data need not survive a power cut; fsync makes every write slow.
            "forceSync": "no",
            "preAllocSize": 1024,
        }

    # -- paths and addresses -------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def cfg_path(self) -> Path:
        return self.base_dir / "zoo.cfg"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "zookeeper.log"

    @property
    def pid_path(self) -> Path:
        return self.base_dir / "zookeeper.pid"

    @property
    def hosts(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def secure_hosts(self) -> str | None:
        return f"{LOOPBACK}:{self.secure_port}" if self.secure_port else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "ZooKeeperServer":
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Spawn the JVM without waiting; see the thread caveat in procs."""
        if self.running:
            raise RuntimeError(f"ZooKeeper on {self.hosts} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.myid is not None:
            (self.data_dir / "myid").write_text(f"{self.myid}\n")
        self.cfg_path.write_text("".join(f"{k}={v}\n" for k, v in self.cfg.items()))
        with open(self.log_path, "a") as log:
            log.write(f"\n===== zkherd test harness: start {time.strftime('%H:%M:%S')} =====\n")
        self._proc = procs.spawn(self._argv(), self.log_path, cwd=self.base_dir, detach=self.detach)
        self.pid_path.write_text(f"{self._proc.pid}\n")

    def _argv(self) -> list[str]:
        props = {"zookeeper.log.dir": self.base_dir, **self.jvm_props}
        main = STANDALONE_MAIN if self.myid is None else QUORUM_MAIN
        return [
            JAVA,
            *JVM_OPTS,
            *(f"-D{k}={v}" for k, v in props.items()),
            "-cp",
            CLASSPATH,
            main,
            str(self.cfg_path),
        ]

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if not self.running:
                self._fail("exited during startup")
            if time.monotonic() > deadline:
                self._fail(f"not serving after {timeout:.0f}s")
            time.sleep(0.05)

    def is_ready(self) -> bool:
        """Standalone: ruok says imok and it serves; member: leader or follower."""
        if self.myid is not None:
            return self.mode() in ("leader", "follower")
        return self.ruok() and self.mode() == "standalone"

    def _fail(self, what: str) -> None:
        if self.running:
            self.kill()
        raise ZooKeeperStartError(f"ZooKeeper {self.hosts} {what}; log {self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful shutdown: SIGTERM, then SIGKILL after timeout."""
        if self._proc:
            procs.terminate(self._proc, timeout)
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: simulates a crash. Data stays for the next start()."""
        if self._proc:
            procs.kill(self._proc)
        self.pid_path.unlink(missing_ok=True)

    def restart(self, timeout: float = 30.0) -> "ZooKeeperServer":
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop and remove the directory if this object created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> "ZooKeeperServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- introspection ---------------------------------------------------------

    def four_letter(self, cmd: str, timeout: float = 2.0) -> str:
        return four_letter_word(LOOPBACK, self.port, cmd, timeout)

    def ruok(self) -> bool:
        try:
            return self.four_letter("ruok") == "imok"
        except OSError:
            return False

    def mode(self) -> str | None:
        """leader/follower/standalone, or None if not serving."""
        try:
            match = re.search(r"^Mode: (\S+)", self.four_letter("srvr"), re.MULTILINE)
        except OSError:
            return None
        return match.group(1) if match else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ZooKeeperServer {self.hosts} myid={self.myid} {state} {self.base_dir}>"


class ZooKeeperEnsemble:
    """A quorum of `size` members on loopback; members are indexed from 0.

    Member i has myid i+1. Members are launched together and then awaited,
    so the election starts with everybody present.
    """

    def __init__(
        self,
        size: int = 3,
        base_dir: Path | str | None = None,
        *,
        tick_time: int = 200,
        extra_cfg: Mapping[str, object] | None = None,
        jvm_props: Mapping[str, object] | None = None,
    ):
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="zkherd-ens-")).resolve()
        peers = {
            f"server.{i}": f"{LOOPBACK}:{free_port()}:{free_port()}" for i in range(1, size + 1)
        }
        cfg = {
            "initLimit": 10,
            "syncLimit": 5,
            # Members wait on each other's election ports; fail fast and retry.
            "cnxTimeout": 1000,
            **peers,
            **(extra_cfg or {}),
        }
        self.servers = [
            ZooKeeperServer(
                self.base_dir / f"zk{i}",
                tick_time=tick_time,
                extra_cfg=cfg,
                jvm_props=jvm_props,
                myid=i,
            )
            for i in range(1, size + 1)
        ]

    @property
    def hosts(self) -> str:
        return ",".join(server.hosts for server in self.servers)

    def start(self, timeout: float = 60.0) -> "ZooKeeperEnsemble":
        for server in self.servers:
            server.launch()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0, members: Iterable[int] | None = None) -> None:
        """Wait until the given (default: running) members serve with one leader."""
        indexes = list(members) if members is not None else [
            i for i, s in enumerate(self.servers) if s.running
        ]
        deadline = time.monotonic() + timeout
        while True:
            modes = [self.servers[i].mode() for i in indexes]
            if modes.count("leader") == 1 and all(m in ("leader", "follower") for m in modes):
                return
            for i in indexes:
                if not self.servers[i].running:
                    self.servers[i]._fail("exited while waiting for the ensemble")
            if time.monotonic() > deadline:
                detail = "\n".join(
                    f"--- member {i} mode={m}\n{self.servers[i].log_tail(15)}"
                    for i, m in zip(indexes, modes)
                )
                raise ZooKeeperStartError(f"ensemble not healthy after {timeout:.0f}s:\n{detail}")
            time.sleep(0.05)

    def ensure_all_running(self, timeout: float = 30.0) -> None:
        """Restart members a previous test stopped, then wait for health."""
        for server in self.servers:
            if not server.running:
                server.launch()
        self.wait_healthy(timeout)

    def leader(self) -> ZooKeeperServer:
        leaders = [s for s in self.servers if s.running and s.mode() == "leader"]
        if len(leaders) != 1:
            raise AssertionError(f"expected one leader, found {leaders}")
        return leaders[0]

    def followers(self) -> list[ZooKeeperServer]:
        return [s for s in self.servers if s.running and s.mode() == "follower"]

    def index(self, server: ZooKeeperServer) -> int:
        return self.servers.index(server)

    def stop(self, i: int) -> None:
        self.servers[i].stop()

    def kill(self, i: int) -> None:
        self.servers[i].kill()

    def restart(self, i: int, timeout: float = 30.0) -> None:
        """Stop (if running) and start member i; waits until it has rejoined."""
        self.servers[i].stop()
        self.servers[i].launch()
        self.wait_healthy(timeout)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> "ZooKeeperEnsemble":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    import sys

    from .zkcli import main

    sys.exit(main())
