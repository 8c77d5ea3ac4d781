"""The keep-alive reaches the unix datagram socket systemd names in NOTIFY_SOCKET."""
import socket

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils.watchdog import Watchdog

UNIT = {"WATCHDOG_USEC": "2000000"}


@pytest.fixture
def systemd(tmp_path):
    """(NOTIFY_SOCKET as systemd sets it, the socket systemd reads)."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(2)
        yield path, server


def test_the_keep_alive_reaches_the_notify_socket(systemd):
    path, server = systemd
    watchdog = Watchdog(dict(UNIT, NOTIFY_SOCKET=path))
    assert watchdog.alive() and watchdog.alive()
    assert server.recv(64) == b"WATCHDOG=1" and server.recv(64) == b"WATCHDOG=1"


def test_the_abstract_namespace_is_reached_too():
    name = "pgha-test-%d" % id(object())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(2)
        assert Watchdog(dict(UNIT, NOTIFY_SOCKET="@" + name)).alive()
        assert server.recv(64) == b"WATCHDOG=1"


def test_without_a_unit_watchdog_nothing_is_sent(tmp_path):
    assert Watchdog({}).alive() is False
    assert Watchdog({"NOTIFY_SOCKET": str(tmp_path / "x")}).alive() is False, "no WATCHDOG_USEC: no watchdog"
    assert Watchdog(dict(UNIT, NOTIFY_SOCKET=str(tmp_path / "gone"))).alive() is False


def test_a_long_step_extends_the_deadline_and_gives_it_back(systemd):
    path, server = systemd
    watchdog = Watchdog(dict(UNIT, NOTIFY_SOCKET=path))
    with watchdog.allowing(35):
        assert server.recv(64) == b"WATCHDOG_USEC=35000000\nWATCHDOG=1"
    assert server.recv(64) == b"WATCHDOG_USEC=2000000\nWATCHDOG=1"
