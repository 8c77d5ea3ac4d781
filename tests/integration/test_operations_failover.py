"""Chaos: kill -9 the primary's postmaster under a continuous writer, then rebuild.

Measured from the outside: a writer through the virtual IP records every acknowledged
commit; a sampler watches every node's role. Runs after the module tests on the same lab.
"""
import os
import statistics
import subprocess
import threading
import time

import psycopg2
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import survey_node
from conftest import REPO, report

CYCLES = int(os.environ.get("PGHA_CHAOS_CYCLES", "3"))
FOLLOW_BUDGET = 10.0


def params(lab, address, port=5432, timeout=1):
    return {"login_host": address, "login_port": port, "login_user": "pgha_admin",
            "login_password": lab["pgha_admin_password"], "login_db": "postgres", "connect_timeout": timeout}


def survey(lab):
    return {name: survey_node(params(lab, address), local=False) for name, address in lab["nodes"].items()}


def primaries(facts):
    return [n for n, f in facts.items() if f["reachable"] and f["in_recovery"] is False]


class Writer(threading.Thread):
    """Inserts numbered rows through pgpool; keeps (id, time, server address) of each acknowledged one."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab, self.stop, self.acked, self.next_id = lab, threading.Event(), [], int(time.time() * 1000)

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(**{"host": self.lab["vip"], "port": 9999, "user": "pgha_admin",
                                               "password": self.lab["pgha_admin_password"], "dbname": "postgres",
                                               "connect_timeout": 2})
                    conn.autocommit = True
                self.next_id += 1
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO pgha_chaos (id) VALUES (%s) RETURNING host(inet_server_addr())",
                                (self.next_id,))
                    server = cur.fetchone()[0]
                self.acked.append((self.next_id, time.time(), server))
                time.sleep(0.02)
            except psycopg2.Error:
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)


class Sampler(threading.Thread):
    """Samples every node's role; records any moment with two writable primaries."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab, self.stop, self.two_primaries = lab, threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            found = primaries(survey(self.lab))
            if len(found) > 1:
                self.two_primaries.append((time.time(), found))
            time.sleep(0.2)


def lab_exec(node, command):
    return subprocess.run([str(REPO / "bin" / "lab"), "exec", node, "sh", "-c", command],
                          capture_output=True, text=True, timeout=60)


def wait_for(predicate, timeout, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def followers_ok(lab, new_primary):
    facts = survey(lab)
    if primaries(facts) != [new_primary]:
        return False
    address = lab["nodes"][new_primary]
    standbys = [f for n, f in facts.items() if n != new_primary and f["reachable"]]
    return standbys and all((f["wal_receiver"] or {}).get("sender_host") == address and
                            f["wal_receiver"]["status"] == "streaming" for f in standbys)


@pytest.fixture(scope="module")
def chaos_table(lab):
    before = primaries(survey(lab))
    assert len(before) == 1, "the lab must start with one primary, found %s" % before
    conn = psycopg2.connect(**{"host": lab["vip"], "port": 9999, "user": "pgha_admin",
                               "password": lab["pgha_admin_password"], "dbname": "postgres"})
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS pgha_chaos (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
    conn.close()


def test_kill_primary_failover_and_rebuild_cycles(lab, ansible, chaos_table):
    fault_to_write, follow_times, rebuild_times = [], [], []
    for cycle in range(1, CYCLES + 1):
        old_primary = primaries(survey(lab))[0]
        writer, sampler = Writer(lab), Sampler(lab)
        writer.start()
        sampler.start()
        assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote before the fault"
        version = lab_exec(old_primary, "ls /var/lib/postgresql").stdout.split()[0]
        killed_at = time.time()
        kill = lab_exec(old_primary, "kill -9 $(head -1 /var/lib/postgresql/%s/main/postmaster.pid)" % version)
        assert kill.returncode == 0, kill.stderr
        old_address = lab["nodes"][old_primary]
        # The first write acknowledged by another server than the killed one (a commit that
        # was in flight may still be acknowledged by the dying primary: that is not recovery).
        first = wait_for(lambda: [(t, srv) for _, t, srv in writer.acked if t > killed_at and srv != old_address],
                         30, 0.05)
        assert first, "cycle %d: no write acknowledged within 30 s of killing %s" % (cycle, old_primary)
        fault_to_write.append(first[0][0] - killed_at)
        new_primary = wait_for(lambda: (primaries(survey(lab)) or [None])[0], 10)
        assert new_primary and new_primary != old_primary
        assert first[0][1] == lab["nodes"][new_primary], "a write landed on %s, not the new primary" % first[0][1]
        assert wait_for(lambda: followers_ok(lab, new_primary), FOLLOW_BUDGET + 10), \
            "cycle %d: standbys do not all stream from %s" % (cycle, new_primary)
        follow_times.append(time.time() - killed_at)
        writer.stop.set()
        writer.join(10)
        sampler.stop.set()
        sampler.join(10)
        assert sampler.two_primaries == [], "two primaries seen: %s" % sampler.two_primaries[:3]
        check_no_acked_row_lost(lab, new_primary, writer.acked)
        check_reads_through_pgpool_are_fresh(lab, writer.acked[-1][0])
        check_old_primary_stays_fenced(lab, old_primary, version)
        started = time.time()
        result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old_primary)
        assert result.returncode == 0, result.stdout[-3000:]
        rebuild_times.append(time.time() - started)
        assert wait_for(lambda: followers_ok(lab, new_primary), 20)
        report("chaos.txt", "kill -9 cycle %d: %s -> %s, fault-to-write %.2f s, all following %.2f s, rebuild %.1f s,"
               " acked %d" % (cycle, old_primary, new_primary, fault_to_write[-1], follow_times[-1],
                              rebuild_times[-1], len(writer.acked)))
    report("chaos.txt", "kill -9 over %d cycles: fault-to-write min %.2f median %.2f max %.2f s; all following max %.2f s;"
           " rebuild median %.1f s" % (CYCLES, min(fault_to_write), statistics.median(fault_to_write),
                                       max(fault_to_write), max(follow_times), statistics.median(rebuild_times)))


def check_no_acked_row_lost(lab, primary, acked):
    conn = psycopg2.connect(**{"host": lab["nodes"][primary], "port": 5432, "user": "pgha_admin",
                               "password": lab["pgha_admin_password"], "dbname": "postgres"})
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pgha_chaos WHERE id = ANY(%s)", ([i for i, _, _ in acked],))
        present = cur.fetchone()[0]
    conn.close()
    assert present == len(acked), "%d acknowledged rows missing on %s" % (len(acked) - present, primary)


def check_reads_through_pgpool_are_fresh(lab, last_id):
    for _ in range(12):  # new sessions: pgpool load-balances each to some backend
        conn = psycopg2.connect(**{"host": lab["vip"], "port": 9999, "user": "pgha_admin",
                                   "password": lab["pgha_admin_password"], "dbname": "postgres"})
        with conn.cursor() as cur:
            cur.execute("SELECT max(id) FROM pgha_chaos")
            seen = cur.fetchone()[0]
        conn.close()
        assert seen >= last_id, "stale read through pgpool: max id %s < acknowledged %s" % (seen, last_id)


def check_old_primary_stays_fenced(lab, node, version):
    assert lab_exec(node, "test -e /var/lib/pgha/fenced").returncode == 0, "no fence lock file on %s" % node
    start = lab_exec(node, "systemctl start postgresql@%s-main" % version)
    assert start.returncode != 0, "the fenced old primary %s started again" % node
    assert survey_node(params(lab, lab["nodes"][node]), local=False)["reachable"] is False
