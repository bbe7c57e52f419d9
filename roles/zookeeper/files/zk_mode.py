"""The mode of a ZooKeeper server (standalone, leader, follower, observer), from its `srvr` answer.

    zk_mode.py HOST PORT [TIMEOUT] [--tls KEYSTORE] [--mode MODE] [--synced N]

Without TIMEOUT: asks once and prints the mode, or `down` (no answer) or `not-serving` (running
but not in a quorum); exit status 0. With TIMEOUT (seconds): asks until the server serves (a mode
above) and prints it, exit status 0; or exit status 1 after TIMEOUT with the last answer.
With --tls, PORT is the secureClientPort and the question goes over TLS, with the server's own key
store (key and certificate, PEM) as client certificate: the plain port may be closed. The server's
certificate is not checked - this asks the server on this very host for its mode, nothing more.
With TIMEOUT, --mode MODE waits for that mode (a restarted follower is back as a follower, not
merely serving); --synced N also waits, when the server is the leader, until N followers are synced
to it (mntr's zk_synced_followers): the quorum is whole again. --synced needs mntr in the
whitelist: a server that refuses mntr ends the wait at once with exit status 1 and says so (the role
asserts mntr in zookeeper_4lw_whitelist for an ensemble). Bad arguments: exit status 64.
Needs `srvr` in 4lw.commands.whitelist. Standard library only: it runs on the managed host.
"""

import re
import socket
import ssl
import sys
import time

SERVING = ("standalone", "leader", "follower", "observer")


def connect(host, port, keystore=None):
    """A socket to the server, over TLS with KEYSTORE as client certificate (also zk_exporter.py's)."""
    sock = socket.create_connection((host, port), timeout=3)
    if keystore is None:
        return sock
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(keystore)
    return context.wrap_socket(sock)


def read_answer(sock):
    """A four-letter word's whole answer (the server closes the connection after it)."""
    chunks = []
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def ask(host, port, keystore, word):
    """The answer to a four-letter word, or None."""
    try:
        with connect(host, port, keystore) as sock:
            sock.sendall(word)
            answer = read_answer(sock)
    except OSError:
        return None
    return answer.decode("utf-8", "replace")


def mode(host, port, keystore=None):
    answer = ask(host, port, keystore, b"srvr")
    if answer is None:
        return "down"
    found = re.search(r"^Mode: (\S+)", answer, re.MULTILINE)
    return found.group(1) if found else "not-serving"


def synced_followers(host, port, keystore):
    found = re.search(r"^zk_synced_followers\s+(\d+)", ask(host, port, keystore, b"mntr") or "", re.MULTILINE)
    return int(found.group(1)) if found else -1


USAGE = "usage: zk_mode.py HOST PORT [TIMEOUT] [--tls KEYSTORE] [--mode MODE] [--synced N]"


def _option(argv, name):
    if name not in argv:
        return None, argv
    at = argv.index(name)
    if at + 1 >= len(argv):
        raise ValueError("%s needs a value" % name)
    return argv[at + 1], argv[:at] + argv[at + 2:]


def parse(argv):
    """(host, port, timeout or None, keystore, mode, synced), or ValueError."""
    keystore, argv = _option(argv, "--tls")
    wanted, argv = _option(argv, "--mode")
    synced, argv = _option(argv, "--synced")
    if len(argv) not in (3, 4):
        raise ValueError("HOST and PORT, and at most a TIMEOUT, expected")
    try:
        return (argv[1], int(argv[2]), float(argv[3]) if len(argv) == 4 else None, keystore, wanted,
                None if synced is None else int(synced))
    except ValueError as exc:
        raise ValueError("PORT and --synced are integers, TIMEOUT seconds: %s" % exc) from None


def main(argv):
    try:
        host, port, timeout, keystore, wanted, synced = parse(argv)
    except ValueError as exc:
        print("zk_mode: %s\n%s" % (exc, USAGE), file=sys.stderr)
        return 64
    if timeout is None:
        print(mode(host, port, keystore))
        return 0
    if synced is not None and "whitelist" in (ask(host, port, keystore, b"mntr") or ""):
        print("ZooKeeper at %s:%d refuses mntr (not in 4lw.commands.whitelist): cannot tell whether its followers "
              "are synced - add mntr to zookeeper_4lw_whitelist" % (host, port))
        return 1
    deadline = time.monotonic() + timeout
    while True:
        now = mode(host, port, keystore)
        followers = synced_followers(host, port, keystore) if now == "leader" and synced is not None else None
        if now in SERVING and (wanted is None or now == wanted) and (followers is None or followers >= synced):
            print(now)
            return 0
        if time.monotonic() > deadline:
            print("ZooKeeper at %s:%d does not serve%s after %s s (last answer: %s%s)"
                  % (host, port, " as " + wanted if wanted else "", "%g" % timeout, now,
                     "" if followers is None else ", %d of %s followers synced" % (followers, synced)))
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
