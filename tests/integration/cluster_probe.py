"""Probes for operations tests: a writer through pgpool, a role sampler, cluster checks."""
import itertools
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
    return {name: survey_node(params(lab, address), local=False, probe_timeout=0.3)
            for name, address in lab["nodes"].items()}


def primaries(facts):
    return [n for n, f in facts.items() if f["reachable"] and f["in_recovery"] is False]


# What a client of a virtual IP needs: when the VIP moves, a session to the old holder
# gets no reset; without keepalives it waits for TCP's retransmission timeout (tens of s).
CLIENT_KEEPALIVES = {"keepalives_idle": 1, "keepalives_interval": 1, "keepalives_count": 2,
                     "tcp_user_timeout": 3000}


WRITERS = 16
WRITER_NUMBERS = itertools.count()


class Writer(threading.Thread):
    """Inserts numbered rows through pgpool (or the given entry point); keeps (id, time, server
    address) of each acknowledged one."""

    def __init__(self, lab, host=None, port=9999, pause=0.02, **options):
        super().__init__(daemon=True)
        # Several writers at once (through the VIP and straight to a node) must not collide:
        # each takes every WRITERS-th id from its own offset.
        self.lab, self.stop, self.acked = lab, threading.Event(), []
        self.next_id = int(time.time() * 1000) * WRITERS + next(WRITER_NUMBERS) % WRITERS
        self.pause = pause
        self.errors = []  # (time, first line of the error): explains a long write pause
        self.dsn = dict({"host": host or lab["vip"], "port": port, "user": "pgha_admin",
                         "password": lab["pgha_admin_password"], "dbname": "postgres", "connect_timeout": 2},
                        **CLIENT_KEEPALIVES, **options)

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(**self.dsn)
                    conn.autocommit = True
                self.next_id += WRITERS
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO pgha_chaos (id) VALUES (%s) RETURNING host(inet_server_addr())",
                                (self.next_id,))
                    server = cur.fetchone()[0]
                self.acked.append((self.next_id, time.time(), server))
                time.sleep(self.pause)
            except psycopg2.Error as exc:
                self.errors.append((time.time(), (str(exc).strip().splitlines() or [type(exc).__name__])[0][:100]))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)


class FreshWriter(Writer):
    """A new client every `pause` seconds, each on its own connection and thread: answers
    "does the cluster take writes from a new client", which one session stuck on a server
    that was cut away (its commit waiting behind pgpool) cannot tell."""

    def run(self):
        while not self.stop.is_set():
            self.next_id += WRITERS
            threading.Thread(target=self.commit_one, args=(self.next_id,), daemon=True).start()
            time.sleep(max(self.pause, 0.1))

    def commit_one(self, row_id):
        try:
            conn = psycopg2.connect(**self.dsn)
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO pgha_chaos (id) VALUES (%s) RETURNING host(inet_server_addr())", (row_id,))
                    server = cur.fetchone()[0]
                self.acked.append((row_id, time.time(), server))
            finally:
                conn.close()
        except psycopg2.Error as exc:
            self.errors.append((time.time(), (str(exc).strip().splitlines() or [type(exc).__name__])[0][:100]))


def node_connect(lab, node, timeout=3, **options):
    """An autocommit session on one node's PostgreSQL as the admin user."""
    conn = psycopg2.connect(host=lab["nodes"][node], port=5432, user="pgha_admin", password=lab["pgha_admin_password"],
                            dbname="postgres", connect_timeout=timeout, **options)
    conn.autocommit = True
    return conn


def node_sql(lab, node, sql, args=None):
    """Run one statement on a node; its rows (empty when it returns none)."""
    conn = node_connect(lab, node)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def commit_acknowledged(lab, node):
    """Try a real commit on a node that answers as primary. An isolated old primary in
    synchronous mode cannot acknowledge one: its commit waits for a standby until the
    statement timeout cancels the wait (PostgreSQL then warns instead of confirming)."""
    try:
        conn = node_connect(lab, node, timeout=2, options="-c statement_timeout=1000")
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO pgha_probe DEFAULT VALUES")
        return not any("synchronous replication" in notice for notice in conn.notices)
    except psycopg2.Error:
        return False
    finally:
        conn.close()


class Sampler(threading.Thread):
    """Samples every node; when two answer as primary, records the moment if both can
    acknowledge a commit (split brain), else notes the isolated one for the report."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab, self.stop, self.two_primaries, self.stale_primaries = lab, threading.Event(), [], []

    def run(self):
        while not self.stop.is_set():
            found = primaries(survey(self.lab))
            if len(found) > 1:
                writable = [n for n in found if commit_acknowledged(self.lab, n)]
                (self.two_primaries if len(writable) > 1 else self.stale_primaries).append((time.time(), found))
            time.sleep(0.2)


def lab_exec(node, command):
    return subprocess.run([str(REPO / "bin" / "lab"), "exec", node, "sh", "-c", command],
                          capture_output=True, text=True, timeout=60)


# Liveness bounds of the chaos tests: "the cluster takes writes again within" this many
# seconds. They sit an order of magnitude above the speed goals so that only a broken
# failover, never a slow machine, turns a test red; bin/bench measures the speed.
LIVENESS_KILL = 30.0
LIVENESS_NODE_LOSS = 60.0


def lab_cli(*args):
    proc = subprocess.run([str(REPO / "bin" / "lab"), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, "bin/lab %s: %s" % (" ".join(args), proc.stderr)
    return proc.stdout


def pg_version(node):
    return lab_exec(node, "ls /var/lib/postgresql").stdout.split()[0]


class KillPostmaster:
    name = "kill -9"
    # Liveness bound, an order of magnitude above the goal (speed is bin/bench's business).
    cycle_limit = LIVENESS_KILL

    def inject(self, node):
        return float(lab_cli("kill-postmaster", node).split()[-1])

    def restore(self, node):
        pass


class PowerOff:
    name = "power-off"
    # Only health checks see it; when the node also led the watchdog, a new leader must be
    # elected first. Liveness bound only: bin/bench measures the speed.
    cycle_limit = LIVENESS_NODE_LOSS

    def inject(self, node):
        return float(lab_cli("poweroff", node).split()[0])

    def restore(self, node):
        lab_cli("poweron", node)


class CutLink(PowerOff):
    name = "link cut"

    def inject(self, node):
        return float(lab_cli("cut", node).split()[0])

    def restore(self, node):
        lab_cli("heal", node)


def vip_holders(lab):
    """The nodes holding the virtual IP: the watchdog leader, one when the watchdog is healthy."""
    return [n for n in sorted(lab["nodes"]) if " %s/" % lab["vip"] in lab_exec(n, "ip -o addr show").stdout]


def watchdog(ansible, lab):
    """The watchdog as the VIP holder's pgpool sees it (pcp answers on localhost only)."""
    args = {"source": "pcp", "watchdog": True, "pcp_host": "localhost", "pcp_user": "pgha_pcp",
            "pcp_password": lab["pgha_pcp_password"]}
    holder = (vip_holders(lab) or sorted(lab["nodes"]))[0]
    result, raw = ansible.module(holder, "pgha.cluster.pgpool_node_info", args)
    return result.get("watchdog")


def healthy_watchdog(ansible, lab, members):
    """Quorum, one leader holding the VIP and every other member a standby."""
    info = watchdog(ansible, lab)
    return bool(info and info["quorum"] and len(vip_holders(lab)) == 1 and
                sorted(n["status_name"] for n in info["nodes"]) == sorted(["LEADER"] + ["STANDBY"] * (members - 1)))


def stopped(*threads):
    """Stop the writers and samplers given and wait for them."""
    for thread in threads:
        thread.stop.set()
        thread.join(10)


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


def missing_acked_rows(lab, primary, acked):
    """How many of the writer's acknowledged rows the primary lacks."""
    present = node_sql(lab, primary, "SELECT count(*) FROM pgha_chaos WHERE id = ANY(%s)", ([i for i, _, _ in acked],))
    return len(acked) - present[0][0]


def check_no_acked_row_lost(lab, primary, acked):
    missing = missing_acked_rows(lab, primary, acked)
    assert missing == 0, "%d acknowledged rows missing on %s" % (missing, primary)


def pool_connect(lab, attempts=10, **options):
    """A session through pgpool; retried because pgpool restarts its children after a
    failback (attach), closing sessions that were just opened."""
    for attempt in range(attempts):
        try:
            return psycopg2.connect(host=lab["vip"], port=9999, user="pgha_admin",
                                    password=lab["pgha_admin_password"], dbname="postgres", connect_timeout=3,
                                    **options)
        except psycopg2.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def pool_view(lab):
    """SHOW pool_nodes through pgpool, by backend address."""
    conn = pool_connect(lab)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW pool_nodes")
            columns = [c.name for c in cur.description]
            rows = [dict(zip(columns, row)) for row in cur.fetchall()]
    finally:
        conn.close()
    return dict((r["hostname"], r) for r in rows)


def pool_attached(lab, nodes):
    """True when pgpool has every given node up (or waiting) and exactly one primary; False
    while pgpool (or its virtual IP) does not answer: after a failover or a detach it
    restarts its children, which closes the session asking."""
    try:
        by_host = pool_view(lab)
    except psycopg2.OperationalError:
        return False
    wanted = [lab["nodes"][n] for n in nodes]
    return (all(by_host[a]["status"] in ("up", "waiting") for a in wanted) and
            [r["role"] for r in by_host.values() if r["status"] in ("up", "waiting")].count("primary") == 1)


def check_reads_through_pgpool_are_fresh(lab, last_id):
    for _ in range(12):  # new sessions: pgpool load-balances each to some backend
        conn = pool_connect(lab)
        with conn.cursor() as cur:
            cur.execute("SELECT max(id) FROM pgha_chaos")
            seen = cur.fetchone()[0]
        conn.close()
        assert seen >= last_id, "stale read through pgpool: max id %s < acknowledged %s" % (seen, last_id)
