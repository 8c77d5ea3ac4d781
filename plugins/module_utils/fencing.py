# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing over ssh, and the same script run locally by the node guard.

A node that may be a primary (no standby.signal) gets the lock file (PG-REX style) and an
immediate stop; the result counts only when the script then sees no postmaster. A standby
is told to follow nobody (primary_conninfo emptied), so it can never confirm the old
primary again, and keeps running. The script prints one line `PGHA-FENCED <kind>
<timeline>` only when that was verified; anything else is a failure.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import time
from shlex import quote

VERIFIED = re.compile(r"^PGHA-FENCED (primary|standby) (\d+|unknown)$", re.MULTILINE)


# An immediate stop takes milliseconds; the kill -9 sweep follows. With the steps around it,
# within the stop_seconds (1.0) that the promotion side's revocation wait allows a guard's
# own fence.
STOP_SECONDS = 0.7
# How long a fence waits for the postmaster of a start in flight: from the start guard's last
# look at the lock to the postmaster's pid file takes well under a second (within the 5 s ssh
# allows a fence on top of its connect timeout).
START_WAIT_SECONDS = 3.0


def start_marker(lock_file):
    """The file a start guard touches before its last look at the fence lock (beside it)."""
    return os.path.join(os.path.dirname(lock_file), "starting")


def fence_script(layout, lock_file, reason, port=5432):
    """The shell run (as postgres) on the node to fence. layout: the cluster's version, name,
    bindir and datadir, as the roles define them (pgha_pg_layout)."""
    note = json.dumps({"fenced_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reason": reason})
    datadir, bindir = quote(layout["datadir"]), quote(layout["bindir"])
    # The rule of promotion.stopped_timeline: the control file's timelines and the newest
    # history file in pg_wal (a promotion not yet checkpointed is on the latter).
    control = ("LC_ALL=C %s/pg_controldata %s 2>/dev/null | sed -n -e 's/^Latest checkpoint.s TimeLineID: *//p' "
               "-e 's/^Min recovery ending loc.s timeline: *//p'" % (bindir, datadir))
    history = ("for h in %s/pg_wal/*.history; do h=${h##*/}; case $h in %s.history) printf '%%d\\n' 0x${h%%.history};; "
               "esac; done" % (datadir, "[0-9A-F]" * 8))
    timeline = ('tl=0; for v in $(%s) $(%s); do [ "$v" -gt $tl ] 2>/dev/null && tl=$v; done; '
                '[ $tl -gt 0 ] || tl=unknown' % (control, history))
    running = "%s/pg_ctl status -D %s >/dev/null 2>&1" % (bindir, datadir)
    # Only pg_ctl's "no server running" (3) proves the postmaster gone; 4 (no accessible data
    # directory: a wrong layout) proves nothing, so the stop runs and the fence fails.
    stopped = "{ %s; [ $? -eq 3 ]; }" % running
    # A postmaster killed with -9 leaves its backends and WAL senders running until each
    # notices: they could still commit and stream. They are the processes whose working
    # directory is the data directory; none may be left before the fence counts.
    # test -ef is a shell builtin: a readlink per process costs a fork, about 0.1 s a pass on a
    # node running pgpool's children.
    orphans = 'for p in /proc/[0-9]*; do [ "$p/cwd" -ef %s ] && ACTION; done' % datadir
    kill_orphans = orphans.replace("ACTION", "kill -9 ${p#/proc/} 2>/dev/null")
    no_orphans = "( %s; exit 0 )" % orphans.replace("ACTION", "exit 1")
    revoke = ("if %s; then timeout 5 psql -p %d -XAtq -c \"ALTER SYSTEM SET primary_conninfo = ''\" -c "
              "'SELECT pg_reload_conf()' >/dev/null || exit 1; else printf \"primary_conninfo = ''\\n\" "
              ">> %s/postgresql.auto.conf || exit 1; fi" % (running, port, datadir))
    # A start whose guard passed just before the lock was written has no postmaster yet: "not
    # running" would be a lie a moment later. The guard marks a start before its last look at
    # the lock and the unit removes the mark when the start ended (start_marker): while a mark
    # stands and no postmaster runs, wait; a start still in flight after that fails the fence.
    # (A mark older than a minute was left by a crash, not by a start.)
    in_flight = ('{ [ -e "$m" ] && [ $(( $(date +%%s) - $(stat -c %%Y "$m" 2>/dev/null || echo 0) )) -lt 60 ] '
                 '&& %s; }' % stopped)
    waits = int(START_WAIT_SECONDS / 0.02)
    starting = ('m=%s; i=0; while %s; do [ $i -ge %d ] && { echo "PostgreSQL is starting here"; exit 1; }; '
                'sleep 0.02; i=$((i+1)); done' % (quote(start_marker(lock_file)), in_flight, waits))
    # The stop is bounded: a frozen postmaster (SIGSTOP, a hung disk) never answers it, while its
    # backends could still commit; the kill sweep ends it and them. A lock that cannot be
    # written (a full or read-only disk) does not spare the primary: it is stopped all the
    # same, and the fence is not verified (nothing would keep it from starting again).
    stopped_without_lock = "{ echo 'stopped, but the fence lock could not be written'; exit 1; }"
    return ("umask 022; %s; if [ -e %s/standby.signal ]; then %s; echo \"PGHA-FENCED standby $tl\"; exit 0; fi; "
            "nolock=; printf '%%s\\n' %s > %s || nolock=1; %s; "
            "%s || timeout %s pg_ctlcluster %s %s stop -m immediate >/dev/null 2>&1; "
            "i=0; while [ $i -lt 100 ]; do %s; %s && %s && { [ -z \"$nolock\" ] || %s; "
            "echo \"PGHA-FENCED primary $tl\"; exit 0; }; "
            "sleep 0.02; i=$((i+1)); done; echo 'postmaster or its processes still running after the stop'; exit 1"
            % (timeline, datadir, revoke, quote(note), quote(lock_file), starting, stopped, STOP_SECONDS,
               quote(layout["version"]), quote(layout["cluster"]), kill_orphans, stopped, no_orphans,
               stopped_without_lock))


def parse_fence_output(rc, out):
    """{"kind", "timeline"} when the fence was verified, else None."""
    match = VERIFIED.search(out or "")
    if rc != 0 or not match:
        return None
    return {"kind": match.group(1), "timeline": int(match.group(2)) if match.group(2).isdigit() else None}


def silent(facts):
    """Survey facts of a node whose host did not answer the TCP probe in time (powered off,
    cut away), as opposed to one that refused it or that PostgreSQL answered on."""
    return not facts.get("reachable") and facts.get("host_answers") is False


def fence_plan(facts, has_fence_command):
    """How to fence a node, from the survey's facts of it: {"link": over the standing ssh
    connection (its host answers: refused the port, or PostgreSQL answered), "power_at_once":
    the fence_command beside ssh rather than after it fails (a silent host: powered off or
    cut away, where ssh tells only after its timeout and a link could hang)}."""
    answers = bool(facts.get("reachable") or facts.get("host_answers"))
    return {"link": answers, "power_at_once": has_fence_command and not answers}


def streams_as_standby(facts):
    """A node a fence retry may leave alone (survey facts): it answers, runs in recovery and
    its WAL receiver streams. An old primary cannot stream, not even with a standby.signal
    given by hand (diverged); a node rebuilt meanwhile does, and a fence would tell it to
    follow nobody."""
    return bool(facts.get("reachable") and facts.get("in_recovery")
                and (facts.get("wal_receiver") or {}).get("status") == "streaming")


def fence_over_ssh(address, layout, lock_file, reason, connect_timeout, port=5432, link=None):
    """(verified result or None, what the node said). link: the control socket of a standing
    ssh connection to the node (it saves the handshake, most of a fence's time); ssh connects
    anew when there is none or it fails."""
    script = fence_script(layout, lock_file, reason, port)
    if link:
        rc, out = _ssh(address, script, connect_timeout, ["-o", "ControlMaster=no", "-o", "ControlPath=" + link])
        if rc != SSH_FAILED:
            return out
    return _ssh(address, script, connect_timeout, ["-o", "ControlPath=none"])[1]


SSH_FAILED = 255
# Host keys are pinned in known_hosts by the ssh role: never add one (a second site.yml run
# would find the file changed).
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no"]


def _ssh(address, script, connect_timeout, options):
    """(ssh's exit code, (verified result or None, what the node said))."""
    argv = ["ssh"] + SSH_OPTIONS + ["-o", "ConnectTimeout=%d" % connect_timeout] + options + [
        "postgres@%s" % address, script]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=connect_timeout + 5, check=False)
    except subprocess.TimeoutExpired:
        return SSH_FAILED, (None, "timed out after %d s" % (connect_timeout + 5))
    out = (proc.stdout + proc.stderr).strip()
    return proc.returncode, (parse_fence_output(proc.returncode, proc.stdout), out)


def fence_locally(layout, lock_file, reason, port=5432):
    """The guard fencing its own node (runs as postgres)."""
    proc = subprocess.run(["sh", "-c", fence_script(layout, lock_file, reason, port)], capture_output=True,
                          text=True, timeout=30, check=False)
    return parse_fence_output(proc.returncode, proc.stdout), (proc.stdout + proc.stderr).strip()
