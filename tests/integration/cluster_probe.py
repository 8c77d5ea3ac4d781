"""Probes for operations tests: a writer through pgpool, a role sampler, cluster checks."""
import subprocess
import threading
import time

import psycopg2

from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import survey_node
from conftest import REPO


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


def check_no_acked_row_lost(lab, primary, acked):
    conn = psycopg2.connect(**{"host": lab["nodes"][primary], "port": 5432, "user": "pgha_admin",
                               "password": lab["pgha_admin_password"], "dbname": "postgres"})
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pgha_chaos WHERE id = ANY(%s)", ([i for i, _, _ in acked],))
        present = cur.fetchone()[0]
    conn.close()
    assert present == len(acked), "%d acknowledged rows missing on %s" % (len(acked) - present, primary)


def pool_connect(lab, attempts=10):
    """A session through pgpool; retried because pgpool restarts its children after a
    failback (attach), closing sessions that were just opened."""
    for attempt in range(attempts):
        try:
            return psycopg2.connect(host=lab["vip"], port=9999, user="pgha_admin",
                                    password=lab["pgha_admin_password"], dbname="postgres", connect_timeout=3)
        except psycopg2.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def pool_attached(lab, nodes):
    """True when pgpool has every given node up (or waiting) and exactly one primary."""
    conn = pool_connect(lab)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW pool_nodes")
            columns = [c.name for c in cur.description]
            rows = [dict(zip(columns, row)) for row in cur.fetchall()]
    finally:
        conn.close()
    by_host = dict((r["hostname"], r) for r in rows)
    wanted = [lab["nodes"][n] for n in nodes]
    return (all(by_host[a]["status"] in ("up", "waiting") for a in wanted) and
            [r["role"] for r in rows if r["status"] in ("up", "waiting")].count("primary") == 1)


def check_reads_through_pgpool_are_fresh(lab, last_id):
    for _ in range(12):  # new sessions: pgpool load-balances each to some backend
        conn = pool_connect(lab)
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
