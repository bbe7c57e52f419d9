"""core/hostcodec.py: the light `idna` codec gives what encodings.idna gives for ASCII names
(bytes and errors), and hands other names to it."""

from __future__ import annotations

import codecs
import socket
import subprocess
import sys

import pytest

from zkherd.core import hostcodec


@pytest.mark.parametrize("name", ["zk1.example.com", "127.0.0.1", "localhost.", "a" * 63 + ".b", "",
                                  "a" * 64, "a..b", "bücher.example", "xn--bcher-kva.example"])
def test_same_as_the_real_codec(name):
    from encodings import idna

    real = idna.Codec()
    try:
        expected = real.encode(name)
    except UnicodeError as exc:
        expected = type(exc)
    try:
        got = hostcodec._encode(name)  # noqa: SLF001
    except UnicodeError as exc:
        got = type(exc)
    assert got == expected


def test_installed_it_resolves_without_the_idna_module():
    code = ("from zkherd.core import hostcodec; import socket, sys; hostcodec.install(); "
            "socket.getaddrinfo('localhost', 2181); print('encodings.idna' in sys.modules, "
            "'x'.encode('idna'), 'bücher'.encode('idna'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if hasattr(codecs, "unregister"):
        assert out[0] == "False", "resolving an ASCII name loaded encodings.idna"
    assert out[1:] == ["b'x'", "b'xn--bcher-kva'"]
    assert socket.getaddrinfo("localhost", 2181)
