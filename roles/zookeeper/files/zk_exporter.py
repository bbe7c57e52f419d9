"""A Prometheus exporter for a ZooKeeper server: its `mntr` answer in Prometheus text format.

    zk_exporter.py LISTEN_HOST:LISTEN_PORT ZK_HOST ZK_PORT [--tls KEYSTORE]

Every scrape of http://LISTEN/metrics asks the server for `mntr` (4lw; needs mntr in
4lw.commands.whitelist) and answers with:
  zookeeper_up                      1 when the server answered mntr, else 0 (and nothing else)
  zookeeper_<name>                  every number of mntr (zk_<name>), as a gauge - mntr gives the
                                    current value of counters too, and they reset with the server
  zookeeper_server_state{state=S}   1 for the server's state (leader, follower, observer, standalone)
                                    and 0 for the others
  zookeeper_version_info{version=V} 1
With --tls, ZK_PORT is the secureClientPort and mntr goes over TLS with the server's own key store
as client certificate (like zk_mode.py): the plain port may be closed. Works with any ZooKeeper
3.4+ (Debian's package lacks the jars of ZooKeeper's own Prometheus metrics provider). Standard
library only, next to zk_mode.py (its connection code).
A scrape waits at most MNTR_SECONDS for the whole mntr answer and reads at most MNTR_BYTES of it;
past either the server counts as down (zookeeper_up 0). LISTEN may be [IPv6]:PORT. Bad arguments
(a port out of 1-65535 too): exit status 64, which the unit does not restart; cannot listen: 1.
"""

import re
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from zk_mode import connect

STATES = ("leader", "follower", "observer", "standalone")
# Per-namespace (top-level znode) summaries: zk_avg_<namespace>_write_per_namespace and so on.
PER_NAMESPACE = re.compile(r"^zk_(avg|min|max|cnt|sum)_(.+)_((?:read|write)_per_namespace)$")
NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
# One scrape's bounds on the server's answer: Prometheus' default scrape_timeout is 10 s, and mntr is a
# few kB (a few hundred lines more with many namespaces). A server past either is answered as down.
MNTR_SECONDS = 5.0
MNTR_BYTES = 1024 * 1024


def mntr(host, port, keystore=None):
    """mntr's answer as {key: value} (strings), or None when the server does not answer - or does not
    finish within MNTR_SECONDS, or answers more than MNTR_BYTES (a dripping or hostile server)."""
    deadline = time.monotonic() + MNTR_SECONDS
    try:
        with connect(host, port, keystore) as sock:
            sock.sendall(b"mntr")
            chunks, size = [], 0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(min(left, 3))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > MNTR_BYTES:
                    return None
                chunks.append(chunk)
    except (OSError, ValueError):
        return None
    pairs = (line.split("\t", 1) for line in b"".join(chunks).decode("utf-8", "replace").splitlines())
    found = {pair[0]: pair[1].strip() for pair in pairs if len(pair) == 2}
    return found or None  # not whitelisted: a message, no key-value lines


def _label(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def sample_name(key):
    """The metric and sample of mntr's KEY: zk_<name> is zookeeper_<name>; a per-namespace summary
    zk_<stat>_<namespace>_<what>_per_namespace is zookeeper_<what>_per_namespace_<stat>{namespace=...}."""
    per_namespace = PER_NAMESPACE.match(key)
    if per_namespace:
        stat, namespace, what = per_namespace.groups()
        name = "zookeeper_%s_%s" % (what, stat)
        return name, '%s{namespace="%s"}' % (name, _label(namespace))
    name = "zookeeper_" + re.sub(r"[^a-zA-Z0-9_]", "_", key[3:] if key.startswith("zk_") else key)
    return name, name


def exposition(values):
    """The Prometheus text format of one mntr answer (None: the server did not answer)."""
    lines = ["# HELP zookeeper_up 1 when the server answered mntr.", "# TYPE zookeeper_up gauge",
             "zookeeper_up %d" % (values is not None)]
    if values is None:
        return "\n".join(lines) + "\n"
    state = values.get("zk_server_state", "")
    lines += ["# HELP zookeeper_server_state The server's state (1 for the current one).",
              "# TYPE zookeeper_server_state gauge"]
    lines += ['zookeeper_server_state{state="%s"} %d' % (_label(one), one == state)
              for one in sorted(set(STATES) | {state} - {""})]
    if "zk_version" in values:
        lines += ["# HELP zookeeper_version_info The server's version.", "# TYPE zookeeper_version_info gauge",
                  'zookeeper_version_info{version="%s"} 1' % _label(values["zk_version"].split(",")[0])]
    samples, taken = {}, set()
    for key in sorted(values):
        if NUMBER.match(values[key]):
            name, sample = sample_name(key)
            if sample in taken or name in ("zookeeper_up", "zookeeper_server_state", "zookeeper_version_info"):
                continue  # two keys sanitized alike (zk_a.b, zk_a-b): one series, the first key's
            taken.add(sample)
            samples.setdefault(name, []).append("%s %s" % (sample, values[key]))
    for name in sorted(samples):  # each metric's samples together, after one HELP and TYPE
        lines += ["# HELP %s From mntr." % name, "# TYPE %s gauge" % name] + samples[name]
    return "\n".join(lines) + "\n"


def handler(host, port, keystore):
    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics here")
                return
            body = exposition(mntr(host, port, keystore)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # one line per scrape in the journal would be noise
            pass

    return Metrics


class IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def listener(listen, metrics):
    """The HTTP server on LISTEN (HOST:PORT, [IPv6]:PORT); ValueError for a bad LISTEN."""
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("LISTEN is HOST:PORT with a port 1-65535")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    server = IPv6Server if ":" in host else ThreadingHTTPServer
    return server((host, int(port)), metrics)


def main(argv):
    keystore = None
    if "--tls" in argv:
        at = argv.index("--tls")
        keystore, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 64
    try:
        if not argv[3].isdigit() or not 1 <= int(argv[3]) <= 65535:
            raise ValueError("ZK_PORT is a port 1-65535")
        server = listener(argv[1], handler(argv[2], int(argv[3]), keystore))
    except (ValueError, OverflowError, OSError) as err:
        sys.stderr.write("zk_exporter: cannot listen on %s for %s:%s: %s\n" % (argv[1], argv[2], argv[3], err))
        return 1 if isinstance(err, OSError) else 64
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
