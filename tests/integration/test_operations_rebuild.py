"""rebuild.yml on a healthy standby changes nothing; with force=true it rebuilds by pg_rewind
(the node's WAL kept aside first), then by pg_basebackup (-e basebackup=true), which moves the
old data directory aside and never deletes it; copies beyond the retention are pruned, never
the newest. Both end with the node streaming from the primary and attached in pgpool; the
times are reported."""
import time

from cluster_probe import followers_ok, lab_exec, pool_attached, wait_for
from conftest import outcome, report

ASIDE = "ls -d /var/lib/postgresql/*/main.pgha-* 2>/dev/null"


def timed_rebuild(ansible, lab, primary, node, *extra):
    started = time.time()
    result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % node, *extra)
    assert result.returncode == 0, outcome(result)
    seconds = time.time() - started
    assert wait_for(lambda: followers_ok(lab, primary), 30), "%s does not stream from %s" % (node, primary)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool did not attach every node"
    return seconds


def test_rebuild_standby_by_rewind_then_by_basebackup(lab, ansible, healthy_cluster):
    primary = healthy_cluster
    node = sorted(n for n in lab["nodes"] if n != primary)[0]
    before = set(lab_exec(node, ASIDE).stdout.split())
    result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % node)
    assert result.returncode == 0, outcome(result)
    assert "it already streams from the primary" in result.stdout and "nothing to do" in result.stdout
    recap = [line for line in result.stdout.splitlines() if ": ok=" in line]
    assert recap and all("changed=0 " in line for line in recap), "\n".join(recap)
    rewind = timed_rebuild(ansible, lab, primary, node, "-e", "force=true")
    kept = set(lab_exec(node, ASIDE).stdout.split()) - before
    # pg_basebackup always moves the old directory aside: none moved means pg_rewind did it.
    assert [k.endswith("-wal") for k in kept] == [True], "pg_rewind must keep the WAL aside, found %s" % kept
    assert lab_exec(node, "ls %s | grep -q '^0000'" % kept.pop()).returncode == 0, "the kept WAL is empty"
    # Retention 1 copy, no minimum age: only the copy this run makes is left.
    basebackup = timed_rebuild(ansible, lab, primary, node, "-e", "force=true", "-e", "basebackup=true",
                               "-e", "rebuild_keep_aside=1", "-e", "rebuild_keep_aside_days=0")
    aside = lab_exec(node, ASIDE).stdout.split()
    assert len(aside) == 1 and aside[0] not in before, "expected only the newest copy kept, found %s" % aside
    assert lab_exec(node, "test -s %s/PG_VERSION" % aside[0]).returncode == 0, "the kept directory is empty"
    report("chaos.txt", "rebuild of standby %s (playbook run): pg_rewind %.1f s, pg_basebackup %.1f s "
           "(old directory kept aside)" % (node, rewind, basebackup))


LOCK = "/var/lib/pgha/operation.lock"


def test_a_target_lost_in_the_middle_of_its_rebuild_leaves_no_lock_elsewhere(lab, ansible, healthy_cluster):
    """The target becomes unreachable while pg_basebackup runs (here: it hangs, then the node's
    ssh goes away): the run fails, but the plays after it still give the lock back on every node
    they reach. Once the target is back, break_lock=true takes the lock it kept and the rebuild
    finishes the copy."""
    import threading
    primary = healthy_cluster
    node = sorted(n for n in lab["nodes"] if n != primary)[-1]
    tool = "/usr/lib/postgresql/$(ls /usr/lib/postgresql | head -1)/bin/pg_basebackup"
    assert lab_exec(node, "mv {0} {0}.real && printf '#!/bin/sh\\nexec sleep 600\\n' > {0} && chmod 755 {0}"
                    .format(tool)).returncode == 0
    runs = []
    thread = threading.Thread(target=lambda: runs.append(ansible.playbook(
        "pgha.cluster.rebuild", "-e", "target=%s" % node, "-e", "force=true", "-e", "basebackup=true")))
    thread.start()
    try:
        assert wait_for(lambda: lab_exec(node, "pgrep -x sleep -u postgres").returncode == 0, 120), \
            "the rebuild never reached pg_basebackup"
        lab_exec(node, "systemctl stop ssh.service; systemctl stop ssh.socket; pkill -KILL -x sshd")
        thread.join(300)
        assert runs and runs[0].returncode != 0, "the rebuild did not fail"
        left = [n for n in lab["nodes"] if n != node and lab_exec(n, "test -e %s" % LOCK).returncode == 0]
        assert left == [], "the lock was left on %s\n%s" % (left, outcome(runs[0]))
        assert lab_exec(node, "test -e %s" % LOCK).returncode == 0, "the unreachable target lost its lock"
    finally:
        lab_exec(node, "pkill -x sleep -u postgres; mv {0}.real {0}; systemctl start ssh".format(tool))
        thread.join(300)
    result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % node, "-e", "break_lock=true")
    assert result.returncode == 0, outcome(result)
    assert wait_for(lambda: followers_ok(lab, primary), 30), "%s does not stream from %s" % (node, primary)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool did not attach every node"
