"""Reading a runner's Prometheus metrics in tests: over HTTP (--metrics-listen) or from its
textfile (--metrics-file), with the library's own parser."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse(text):
    """{(sample name, ((label, value), ...)): value}"""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as reply:
            return parse(reply.read().decode())
    except OSError:
        return {}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))
