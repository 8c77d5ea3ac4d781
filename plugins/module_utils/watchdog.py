# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd's watchdog for pgha's daemons (plain Python, no libsystemd): the node guard and
the keeper tell systemd they are alive at every beat. One that stops telling (frozen,
stopped with SIGSTOP, stuck in a call) is killed and started again by its unit
(WatchdogSec=, WatchdogSignal=SIGKILL, Restart=always): a primary's guard that hangs would
otherwise never stop it when its lease runs out."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import socket


class Watchdog:
    """alive(): one keep-alive to systemd; allowing(seconds): a context in which the next
    keep-alive may come that much later (a fence that waits for the server to go). Nothing
    is sent when the process does not run under a unit with a watchdog (NOTIFY_SOCKET or
    WATCHDOG_USEC unset) and nothing fails when systemd does not take it."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        self.usec = int(environ.get("WATCHDOG_USEC", "0") or 0)
        self.address, self.sock = (address if self.usec > 0 else ""), None

    def alive(self):
        return self._send("WATCHDOG=1")

    @contextlib.contextmanager
    def allowing(self, seconds):
        self._send("WATCHDOG_USEC=%d\nWATCHDOG=1" % max(self.usec, int(seconds * 1e6)))
        try:
            yield
        finally:
            self._send("WATCHDOG_USEC=%d\nWATCHDOG=1" % self.usec)

    def _send(self, message):
        if not self.address:
            return False
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.sendto(message.encode(), self.address)
            return True
        except OSError:
            return False
