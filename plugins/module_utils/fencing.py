# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing an old primary over ssh: the lock file (PG-REX style) and an immediate stop.

Shared by pgpool's failover hook and the keeper; runs as postgres with the cluster's
ssh trust. A node that is a standby by now is left alone, so a late retry never stops
a rebuilt standby.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import subprocess
import time
from shlex import quote


def fence_script(pg_version, lock_file, reason):
    """The shell run on the old primary: keep a standby, else write the lock and stop."""
    note = json.dumps({"fenced_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reason": reason})
    datadir = "/var/lib/postgresql/%s/main" % pg_version
    return ("umask 022; if [ -e %s/standby.signal ]; then echo 'is a standby, not fenced'; exit 0; fi; "
            "printf '%%s\\n' %s > %s; pg_ctlcluster %s main stop -m immediate >/dev/null 2>&1; "
            "echo 'lock file written, PostgreSQL stopped'"
            % (datadir, quote(note), quote(lock_file), pg_version))


def fence_over_ssh(address, pg_version, lock_file, reason, connect_timeout):
    """(True, what happened) when the node answered over ssh, else (False, why not)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % connect_timeout,
            "postgres@%s" % address, fence_script(pg_version, lock_file, reason)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=connect_timeout + 5, check=False)
    except subprocess.TimeoutExpired:
        return False, "timed out after %d s" % (connect_timeout + 5)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()
