"""Keeper mode under faults, with a writer connected to whichever node is primary.

- kill -9 of the primary: the standby becomes primary (the time against the keepalive budget
  is reported; only the liveness bound is asserted, bin/bench measures speed), no
  acknowledged row is lost (synchronous replication), the old primary is fenced and
  rebuilt as the new standby; three cycles (longer series: bin/bench).
- a stopped standby: the primary switches to asynchronous replication, so writes go on;
  when the standby runs again, synchronous replication is back.
- a standby whose link is cut (no primary, no arbiter): it does not promote itself.
- the link between the two nodes cut while both reach the arbiter: nothing is promoted, the
  primary goes asynchronous and is the only node that acknowledges writes.
- the arbiter down: no failover and no switch to asynchronous replication while it is
  down (a killed primary is replaced only once the arbiter is back).
- a standby whose replication is broken while the primary answers: the primary records at
  the arbiter that the standby may lack commits, goes asynchronous, and when it then dies
  the standby does not promote itself; status.yml says why.
"""
import statistics
import time

import psycopg2

from cluster_probe import LIVENESS_KILL, Writer, check_no_acked_row_lost, node_sql, primaries, survey, wait_for
from conftest import node_exec, playbook, report

CYCLES = 3
# molecule/keeper sets keeper_after_command to write $PGHA_OLD_PRIMARY here.
AFTER_COMMAND_OUT = "/var/lib/pgha/after_command.out"
VERSION_DIR = "/var/lib/postgresql/$(ls /var/lib/postgresql | head -1)/main"


def writer_for(lab):
    hosts = ",".join(lab["nodes"].values())
    return Writer(lab, host=hosts, port=5432, target_session_attrs="read-write")


def query(lab, node, sql):
    return node_sql(lab, node, sql)


def the_primary(lab):
    found = wait_for(lambda: primaries(survey(lab)), 30)
    assert len(found) == 1, "expected one primary, found %s" % found
    return found[0]


def synchronous(lab, primary):
    """The standby streams and the primary waits for it (no asynchronous override)."""
    try:
        rows = query(lab, primary, "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'")
        setting = query(lab, primary, "SHOW synchronous_standby_names")[0][0]
    except psycopg2.Error:
        return False
    return setting != "" and [r[0] for r in rows] in (["sync"], ["quorum"])


def asynchronous(lab, primary):
    return query(lab, primary, "SHOW synchronous_standby_names")[0][0] == ""


def started_writer(lab):
    writer = writer_for(lab)
    writer.start()
    assert wait_for(lambda: len(writer.acked) > 20, 20), "the writer never wrote"
    return writer


def stopped(writer):
    writer.stop.set()
    writer.join(10)
    return writer


def longest_pause(acked, since):
    times = [t for _, t, _ in acked if t > since - 1]
    return max(b - a for a, b in zip(times, times[1:]))


def test_chaos_table(lab):
    primary = the_primary(lab)
    assert wait_for(lambda: synchronous(lab, primary), 30), "the cluster does not start synchronous"
    node_sql(lab, primary, "CREATE TABLE IF NOT EXISTS pgha_chaos (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")


def kill_primary_cycle(lab, cycle):
    old = the_primary(lab)
    standby = [n for n in lab["nodes"] if n != old][0]
    assert wait_for(lambda: synchronous(lab, old), 30), "cycle %d: not synchronous before the fault" % cycle
    node_exec(standby, "rm -f %s" % AFTER_COMMAND_OUT)
    writer = started_writer(lab)
    kill = node_exec(old, "pid=$(head -1 %s/postmaster.pid); date +%%s.%%N; kill -9 $pid" % VERSION_DIR)
    assert kill.returncode == 0, kill.stderr
    killed_at = float(kill.stdout.split()[0])
    promoted = wait_for(lambda: primaries(survey(lab)) == [standby] and time.time(), LIVENESS_KILL, 0.1)
    assert promoted, "cycle %d: %s was not promoted" % (cycle, standby)
    to_primary = promoted - killed_at
    first = wait_for(lambda: [t for _, t, srv in writer.acked if t > killed_at and srv == lab["nodes"][standby]],
                     20, 0.05)
    assert first, "cycle %d: no write acknowledged by the new primary" % cycle
    stopped(writer)
    check_no_acked_row_lost(lab, standby, writer.acked)
    # The new primary fences its old peer right after its promotion (the lease already rules it out).
    assert wait_for(lambda: node_exec(old, "test -e /var/lib/pgha/fenced").returncode == 0, 15), \
        "the old primary was not fenced"
    assert wait_for(lambda: node_exec(standby, "cat %s" % AFTER_COMMAND_OUT).stdout.strip() == lab["nodes"][old], 10), \
        "cycle %d: after_command did not run on %s with the old primary's address" % (cycle, standby)
    assert node_exec(old, "systemctl start postgresql@$(ls /var/lib/postgresql | head -1)-main").returncode != 0, \
        "the fenced old primary started again"
    started = time.time()
    result = playbook(lab, "pgha.cluster.rebuild", "-e", "target=%s" % old)
    assert result.returncode == 0, result.stdout[-3000:]
    rebuild = time.time() - started
    assert wait_for(lambda: synchronous(lab, standby), 30), "cycle %d: synchronous replication did not come back" % cycle
    report("kill -9 cycle %d: %s -> %s, promoted %.2f s after the kill (budget %.1f s), first write %.2f s, "
           "rebuild %.1f s, acked %d, lost 0" % (cycle, old, standby, to_primary, lab["budget"],
                                                 first[0] - killed_at, rebuild, len(writer.acked)))
    return to_primary


def test_kill_primary_failover_and_rebuild_cycles(lab):
    times = [kill_primary_cycle(lab, cycle) for cycle in range(1, CYCLES + 1)]
    report("kill -9 over %d cycles: promoted after min %.2f median %.2f max %.2f s (budget %.1f s)" % (
        CYCLES, min(times), statistics.median(times), max(times), lab["budget"]))


def fault_on_standby(lab, command):
    """With the cluster synchronous and a writer running, run command on the standby; the node
    stamps the moment itself. Returns (primary, standby, writer, time of the fault)."""
    primary = the_primary(lab)
    standby = [n for n in lab["nodes"] if n != primary][0]
    assert wait_for(lambda: synchronous(lab, primary), 30), "not synchronous before the fault"
    writer = started_writer(lab)
    fault = node_exec(standby, "date +%s.%N; " + command)
    assert fault.returncode == 0, fault.stderr
    return primary, standby, writer, float(fault.stdout.split()[0])


def test_stopped_standby_primary_goes_async_then_back_to_sync(lab):
    primary, standby, writer, stopped_at = fault_on_standby(
        lab, "systemctl stop postgresql@$(ls /var/lib/postgresql | head -1)-main")
    assert wait_for(lambda: asynchronous(lab, primary), LIVENESS_KILL), "the primary did not switch to async"
    assert wait_for(lambda: len([t for _, t, _ in writer.acked if t > stopped_at + lab["budget"]]) > 10,
                    LIVENESS_KILL), \
        "writes did not resume while the standby was down"
    pause = longest_pause(writer.acked, stopped_at)
    start = node_exec(standby, "systemctl start postgresql@$(ls /var/lib/postgresql | head -1)-main")
    assert start.returncode == 0, start.stderr
    back = wait_for(lambda: synchronous(lab, primary) and time.time(), 30)
    assert back, "synchronous replication did not come back"
    stopped(writer)
    check_no_acked_row_lost(lab, primary, writer.acked)
    report("stopped standby %s: longest write pause %.2f s (budget %.1f s), synchronous again %.1f s after start"
           % (standby, pause, lab["budget"], back - stopped_at))
    assert pause <= LIVENESS_KILL, "writes paused %.2f s (liveness bound %.0f s)" % (pause, LIVENESS_KILL)


def test_isolated_standby_does_not_promote(lab):
    primary, standby, writer, cut_at = fault_on_standby(lab, "ip link set eth0 down")
    try:
        time.sleep(lab["budget"] + 3)
        local = node_exec(standby, "runuser -u postgres -- psql -XAtqc 'SELECT pg_is_in_recovery()'")
        assert local.stdout.strip() == "t", "the isolated standby promoted itself: %s" % local.stdout
        assert "isolated" in node_exec(standby, "journalctl -t pgha-keeper --since @%d" % int(cut_at)).stdout
        assert wait_for(lambda: asynchronous(lab, primary), LIVENESS_KILL), "the primary did not switch to async"
        assert wait_for(lambda: [t for _, t, _ in writer.acked if t > cut_at + lab["budget"]], LIVENESS_KILL), \
            "writes stopped"
    finally:
        gateway = ".".join(lab["nodes"][standby].split(".")[:3] + ["1"])
        node_exec(standby, "ip link set eth0 up; ip route replace default via %s dev eth0" % gateway)
    back = wait_for(lambda: synchronous(lab, primary) and time.time(), 60)
    assert back, "synchronous replication did not come back after the link healed"
    stopped(writer)
    check_no_acked_row_lost(lab, primary, writer.acked)
    assert primaries(survey(lab)) == [primary]
    report("cut standby %s (no primary, no arbiter): stayed a standby; primary async meanwhile, sync again %.1f s "
           "after the link came back" % (standby, back - cut_at - lab["budget"] - 3))


def lease(lab):
    """(holder, synchronous) of the cluster's lease row at the arbiter."""
    out = node_exec(lab["arbiter"], "runuser -u postgres -- psql -XAtq -d pgha_arbiter "
                                    "-c 'SELECT holder, synchronous FROM pgha_lease'").stdout.strip()
    holder, unused, synchronous = out.partition("|")
    return holder, synchronous == "t"


def in_recovery(node):
    return node_exec(node, "runuser -u postgres -- psql -XAtqc 'SELECT pg_is_in_recovery()'").stdout.strip() == "t"


def journal(node, since):
    return node_exec(node, "journalctl -t pgha-keeper --since @%d" % int(since)).stdout


def pg_unit(node, action):
    result = node_exec(node, "systemctl %s postgresql@$(ls /var/lib/postgresql | head -1)-main" % action)
    assert result.returncode == 0, result.stderr
    return result


def kill_postmaster(node):
    kill = node_exec(node, "pid=$(head -1 %s/postmaster.pid); date +%%s.%%N; kill -9 $pid" % VERSION_DIR)
    assert kill.returncode == 0, kill.stderr
    return float(kill.stdout.split()[0])


def cut_between_nodes(lab, heal=False):
    """Drop traffic between the two nodes only (prohibit routes): both still reach the arbiter."""
    names = list(lab["nodes"])
    for node, peer in ((names[0], names[1]), (names[1], names[0])):
        verb = "del" if heal else "replace"
        node_exec(node, "ip route %s prohibit %s/32" % (verb, lab["nodes"][peer]))


def test_the_lease_names_the_primary(lab):
    primary = the_primary(lab)
    assert wait_for(lambda: lease(lab) == (primary, True), 30), "lease at the arbiter: %s" % (lease(lab),)
    # The first primary started before any lease existed; from now on its start guard asks the arbiter.
    assert node_exec(primary, "test -e /var/lib/pgha/bootstrap").returncode != 0, "the bootstrap marker stayed"


def test_a_keeper_stopped_by_hand_comes_back_while_postgresql_runs(lab):
    """PostgreSQL upholds its keeper: a primary without one would neither renew its lease
    nor step aside."""
    primary = the_primary(lab)
    stop = node_exec(primary, "systemctl stop pgha-keeper")
    assert stop.returncode == 0, stop.stderr
    assert wait_for(lambda: node_exec(primary, "systemctl is-active pgha-keeper").stdout.strip() == "active", 30), \
        "the keeper on the primary %s stayed stopped" % primary
    assert the_primary(lab) == primary


def test_a_frozen_keeper_is_killed_and_started_again_by_the_watchdog(lab):
    """A keeper that stops beating (SIGSTOP here; a call stuck over a cut link) neither renews
    its lease nor steps aside: systemd's watchdog kills it and its unit starts it again."""
    primary = the_primary(lab)
    pid = node_exec(primary, "systemctl show -P MainPID pgha-keeper").stdout.strip()
    assert node_exec(primary, "kill -STOP %s" % pid).returncode == 0
    assert wait_for(lambda: node_exec(primary, "systemctl show -P MainPID pgha-keeper").stdout.strip()
                    not in (pid, "0"), 60), "the frozen keeper on %s was not started again" % primary
    assert wait_for(lambda: lease(lab) == (primary, True), 30), "lease at the arbiter: %s" % (lease(lab),)
    assert the_primary(lab) == primary


def test_link_cut_between_the_nodes_with_both_reaching_the_arbiter(lab):
    """Issue 18's split brain: the old keeper promoted the standby here and both acknowledged writes."""
    primary = the_primary(lab)
    standby = [n for n in lab["nodes"] if n != primary][0]
    assert wait_for(lambda: synchronous(lab, primary), 30), "not synchronous before the cut"
    writers = dict((n, Writer(lab, host=lab["nodes"][n], port=5432)) for n in lab["nodes"])
    for writer in writers.values():
        writer.start()
    assert wait_for(lambda: len(writers[primary].acked) > 20, 20), "the writer never wrote"
    cut_at = time.time()
    cut_between_nodes(lab)
    try:
        time.sleep(lab["budget"] + 4)
        assert in_recovery(standby), "the standby promoted itself although the primary holds the lease"
        assert wait_for(lambda: asynchronous(lab, primary), LIVENESS_KILL), "the primary did not switch to async"
        assert wait_for(lambda: [t for _, t, _ in writers[primary].acked if t > cut_at + lab["budget"] + 4],
                        LIVENESS_KILL), "the primary stopped taking writes"
        assert "the link between the nodes is down" in journal(standby, cut_at)
        assert lease(lab) == (primary, False)
    finally:
        cut_between_nodes(lab, heal=True)
    back = wait_for(lambda: synchronous(lab, primary) and time.time(), 60)
    for writer in writers.values():
        stopped(writer)
    assert back, "synchronous replication did not come back after the link healed"
    counts = dict((n, len([1 for _, t, _ in writers[n].acked if t > cut_at])) for n in writers)
    assert counts[standby] == 0, "the standby acknowledged %d writes" % counts[standby]
    check_no_acked_row_lost(lab, primary, writers[primary].acked)
    assert primaries(survey(lab)) == [primary]
    assert wait_for(lambda: lease(lab) == (primary, True), 30), "the lease does not say synchronous again"
    report("link cut between the nodes (both reach the arbiter): acknowledged after the cut by %s (primary) %d, by "
           "%s (standby) %d; no promotion; synchronous again %.1f s after the heal" % (
               primary, counts[primary], standby, counts[standby], back - cut_at - lab["budget"] - 4))


def test_arbiter_down_no_failover_until_it_is_back(lab):
    primary = the_primary(lab)
    standby = [n for n in lab["nodes"] if n != primary][0]
    assert wait_for(lambda: synchronous(lab, primary), 30), "not synchronous before the fault"
    writer = started_writer(lab)
    down_at = time.time()
    pg_unit(lab["arbiter"], "stop")
    try:
        time.sleep(lab["budget"] + 1)
        assert wait_for(lambda: [t for _, t, _ in writer.acked if t > down_at + lab["budget"] + 1], 10), \
            "writes stopped while only the arbiter was down"
        assert synchronous(lab, primary), "the primary went asynchronous without the arbiter"
        assert "arbiter does not answer" in journal(primary, down_at)
        killed_at = kill_postmaster(primary)
        time.sleep(lab["budget"] + 4)
        assert in_recovery(standby), "the standby promoted itself without the arbiter"
        assert "neither does the arbiter" in journal(standby, killed_at)
    finally:
        pg_unit(lab["arbiter"], "start")
    back_at = time.time()
    promoted = wait_for(lambda: primaries(survey(lab)) == [standby] and time.time(), LIVENESS_KILL, 0.1)
    assert promoted, "the standby was not promoted once the arbiter was back"
    assert wait_for(lambda: [t for _, t, srv in writer.acked if srv == lab["nodes"][standby]], 20), "no write after"
    stopped(writer)
    check_no_acked_row_lost(lab, standby, writer.acked)
    result = playbook(lab, "pgha.cluster.rebuild", "-e", "target=%s" % primary)
    assert result.returncode == 0, result.stdout[-3000:]
    assert wait_for(lambda: synchronous(lab, standby), 30), "synchronous replication did not come back"
    report("arbiter down: writes went on synchronously, the killed primary %s was not replaced while it was down; "
           "%s promoted %.2f s after the arbiter was back, 0 rows lost" % (primary, standby, promoted - back_at))


def test_standby_with_broken_replication_does_not_promote(lab):
    primary = the_primary(lab)
    standby = [n for n in lab["nodes"] if n != primary][0]
    assert wait_for(lambda: synchronous(lab, primary), 30), "not synchronous before the fault"
    conninfo = query(lab, standby, "SHOW primary_conninfo")[0][0]
    node_sql(lab, standby, "ALTER SYSTEM SET primary_conninfo = %s", (conninfo + " password=wrong-password",))
    node_sql(lab, standby, "SELECT pg_reload_conf()")
    writer = started_writer(lab)
    try:
        assert wait_for(lambda: asynchronous(lab, primary), LIVENESS_KILL), "the primary did not switch to async"
        assert wait_for(lambda: lease(lab) == (primary, False), 10), "the lease still says synchronous"
        time.sleep(1)
        killed_at = kill_postmaster(primary)
        time.sleep(lab["budget"] + 4)
        assert in_recovery(standby), "a standby that may lack commits promoted itself"
        assert "could lose acknowledged commits" in journal(standby, killed_at)
        status = playbook(lab, "pgha.cluster.status")
        assert "could lose acknowledged commits" in status.stdout, status.stdout[-3000:]
    finally:
        node_sql(lab, standby, "ALTER SYSTEM SET primary_conninfo = %s", (conninfo,))
        node_sql(lab, standby, "SELECT pg_reload_conf()")
    pg_unit(primary, "start")
    assert wait_for(lambda: synchronous(lab, primary), 60), "synchronous replication did not come back"
    stopped(writer)
    check_no_acked_row_lost(lab, primary, writer.acked)
    assert wait_for(lambda: lease(lab) == (primary, True), 30), "the lease does not say synchronous again"
    report("broken replication of %s, then kill -9 of %s: no promotion (status says why); %s started again as the "
           "primary, 0 rows lost" % (standby, primary, primary))


def test_switchover_pauses_the_keepers(lab):
    """A planned switchover (keepers paused by the maintenance file) swaps the roles without a
    fence or a lost row, and leaves both keepers guarding the new layout."""
    primary = the_primary(lab)
    standby = [n for n in lab["nodes"] if n != primary][0]
    assert wait_for(lambda: synchronous(lab, primary), 30)
    writer = started_writer(lab)
    started = time.time()
    result = playbook(lab, "pgha.cluster.switchover", "-e", "candidate=%s" % standby)
    assert result.returncode == 0, result.stdout[-3000:]
    elapsed = time.time() - started
    assert the_primary(lab) == standby
    assert wait_for(lambda: synchronous(lab, standby), 30), "synchronous replication did not come back"
    assert wait_for(lambda: [t for _, t, srv in writer.acked if srv == lab["nodes"][standby]], 20), "no write after"
    stopped(writer)
    check_no_acked_row_lost(lab, standby, writer.acked)
    for node in lab["nodes"]:
        assert node_exec(node, "test -e /var/lib/pgha/maintenance").returncode != 0, "maintenance left on %s" % node
        assert node_exec(node, "systemctl is-active pgha-keeper").stdout.strip() == "active"
    assert node_exec(primary, "test -e /var/lib/pgha/fenced").returncode != 0, "a switchover fenced %s" % primary
    report("switchover %s -> %s with the keepers paused: playbook %.1f s, longest write pause %.2f s" % (
        primary, standby, elapsed, longest_pause(writer.acked, started)))
