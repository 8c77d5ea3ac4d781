"""pgha-guard: the node guard next to PostgreSQL (runs as postgres).

    pgha-guard run                  the lease loop (systemd unit pgha-guard)
    pgha-guard start-check INSTANCE the start guard (ExecStartPre of postgresql@.service)

run: every guard_interval the guard reads its own server. On a primary it counts the
standbys whose replies keep arriving (pg_stat_replication.reply_time changes); when a
majority of the cluster (itself included) has not confirmed it for lease_seconds, it writes
the fence lock and stops PostgreSQL immediately: a primary cut off from its peers stops
taking writes before the other side may promote (safety.promotion_gate waits longer).
Old primaries that the failover proved fenced count towards the majority (the record it
wrote on this node for this timeline: safety.fenced_peers). With synchronous replication
and pgha_synchronous_mode_strict false, it turns asynchronous replication on while no
listed standby streams and the lease holds without one, and off again once one streams.
Paused while the maintenance marker, the operation lock of a playbook (failover.yml,
switchover.yml) or the bootstrap marker of a new cluster exists, as long as the node reaches
a majority of the cluster's hosts (safety.pause_holds: a marker left on a cut-off primary
must not keep it writable).

start-check: decides with safety.start_decision whether this node may start: a standby
always; a fenced node never; a primary only when no other node runs as primary or on a
newer timeline and a majority confirms it (standbys configured to follow it; with two
nodes, the standby, or start.yml -e force=true once); in keeper mode
only when the arbiter's lease names it or an older timeline. It waits up to start_wait
seconds for peers and the arbiter to answer (network not up at boot).

Settings: /etc/pgha/guard.json (written by the postgresql role). Logs go to the journal.
"""
import functools
import json
import shlex
import os
import subprocess
import sys
import threading
import time
from contextlib import closing

CONFIG = os.environ.get("PGHA_GUARD_CONFIG", "/etc/pgha/guard.json")
# The peers are probed (in parallel) only while a marker is in force; the probe fits in a
# beat (guard_interval 0.5 s), so the lease is found expired as soon as unpaused.
PAUSE_PROBE_SECONDS = 0.2
# start.yml writes the operator's force just before the start and removes it right after; a
# file left by a playbook that died must not let a later start skip the confirmation.
START_OVERRIDE_SECONDS = 600
# The watchdog's deadline while the guard fences (the fence script's own timeout is 30 s).
FENCE_SECONDS = 35


def load_config():
    with open(CONFIG) as handle:
        config = json.load(handle)
    sys.path.insert(0, config["lib_dir"])
    config["lease"] = dict((k, float(v)) for k, v in config["lease"].items())
    return config


def log(message):
    sys.stderr.write("pgha-guard: %s\n" % message)
    sys.stderr.flush()


def local_params(config):
    return {"login_unix_socket": "/var/run/postgresql", "login_port": config["port"], "login_user": "postgres",
            "login_db": "postgres", "connect_timeout": 2}


def read_local(config, postgres, promotion, safety):
    """(role, {standby: reply_time}, primary facts: timeline, async (the guard's override of
    synchronous_standby_names), streaming: standbys caught up) of this node's server; role
    None when its postmaster is gone, "unknown" when it runs but could not be read."""
    try:
        conn = postgres.connect(local_params(config))
    except postgres.PgConnectError:
        return unread(config), {}, {}
    try:
        if postgres.query_one(conn, "SELECT pg_is_in_recovery() AS r")["r"]:
            return "standby", {}, {}
        rows = postgres.query(conn, "SELECT application_name, host(client_addr) AS client_addr, "
                                    "reply_time::text AS reply, state FROM pg_stat_replication "
                                    "WHERE state IN ('streaming', 'catchup')")
        facts = postgres.query_one(
            conn, "SELECT " + promotion.CURRENT_TIMELINE + " AS timeline, (SELECT count(*) > 0 FROM pg_file_settings "
                  "WHERE name = 'synchronous_standby_names' AND applied AND setting = '' "
                  "AND sourcefile LIKE '%postgresql.auto.conf') AS async")
        peers = dict((n["name"], n["address"]) for n in config["nodes"] if n["name"] != config["name"])
        replies = safety.peer_replies(rows, peers)
        facts["streaming"] = sorted(r["application_name"] for r in rows
                                    if r["state"] == "streaming" and r["application_name"] in replies)
        return "primary", replies, facts
    except postgres.DRIVER_ERRORS:
        return unread(config), {}, {}
    finally:
        conn.close()


def unread(config):
    """None when the postmaster is gone (pg_ctl status: 3), else "unknown" (it may be a
    primary that still takes writes: its lease runs on)."""
    layout = config["layout"]
    try:
        status = subprocess.run([os.path.join(layout["bindir"], "pg_ctl"), "status", "-D", layout["datadir"]],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=10)
    except subprocess.TimeoutExpired:   # a hung disk: nothing proves the postmaster gone
        return "unknown"
    return None if status.returncode == 3 else "unknown"


def read_fenced_peers(config, timeline, safety):
    """Old primaries the failover that promoted this node proved fenced, recorded for its timeline."""
    try:
        with open(config["fenced_peers_file"]) as handle:
            record = handle.read(4096)
    except OSError:
        return []
    return safety.fenced_peers(record, timeline, config["name"])


def apply_sync_policy(config, postgres, safety, facts, standing, seen):
    """pgha_synchronous_mode_strict: false — no listed standby streamed for a lease (not
    merely the moments after a promotion, before the standbys are repointed) and the lease
    holds without them: replication turns asynchronous; back to synchronous once one streams.
    seen: {"at": monotonic time a listed standby last streamed or this node became primary}."""
    sync = config.get("synchronous")
    if not sync or not facts:
        seen.clear()
        return
    now = time.monotonic()
    streaming = [n for n in facts["streaming"] if n in sync["standbys"]]
    if streaming or "at" not in seen:
        seen["at"] = now
    lease_held = safety.lease_without_standbys(len(config["nodes"]), standing)
    wanted_async = safety.sync_policy(sync["strict"], streaming, "configured", lease_held, now - seen["at"],
                                      config["lease"]["lease_seconds"]) == ""
    if wanted_async == bool(facts["async"]):
        return
    statement = ("ALTER SYSTEM SET synchronous_standby_names = ''" if wanted_async
                 else "ALTER SYSTEM RESET synchronous_standby_names")
    try:
        with closing(postgres.connect(local_params(config))) as conn:
            postgres.query(conn, statement)
            postgres.query(conn, "SELECT pg_reload_conf()")
    except (postgres.PgConnectError,) + postgres.DRIVER_ERRORS as exc:
        log("could not switch replication: %s" % " ".join(str(exc).split()))
        return
    log("no synchronous standby streams and the lease holds without one (fenced: %s): ASYNCHRONOUS replication, "
        "writes no longer wait (pgha_synchronous_mode_strict: false)" % (", ".join(standing) or "none")
        if wanted_async else "%s streams: back to synchronous replication" % ", ".join(streaming))


def paused(config):
    """What pauses the lease: "operation" (maintenance marker, operation lock, expiring),
    "bootstrap" (a new cluster's first primary, before its standbys exist) or None."""
    from ansible_collections.pgha.cluster.plugins.module_utils import markers
    marker, stale = markers.pausing_marker([config["maintenance_file"], config["operation_lock"],
                                            config["site_marker"]],
                                           config.get("marker_max_age", markers.DEFAULT_MAX_AGE))
    for path, age in ([] if marker else stale):
        log("ignoring %s: %d s old, older than %d s (a playbook that died?)" % (
            path, age, config.get("marker_max_age", markers.DEFAULT_MAX_AGE)))
    if marker:
        return "operation"
    return "bootstrap" if os.path.exists(config["bootstrap_file"]) else None


def peers_answering(config, pg_facts, timeout=PAUSE_PROBE_SECONDS):
    """How many peers' hosts answer a TCP probe of their PostgreSQL port (refused counts)."""
    answers = []

    def probe(node):
        if pg_facts.tcp_probe(node["address"], node["port"], timeout)[1]:
            answers.append(node["name"])

    threads = [threading.Thread(target=probe, args=(n,), daemon=True)
               for n in config["nodes"] if n["name"] != config["name"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 0.1)
    return len(answers)


def pause_in_force(config, role, pg_facts, safety):
    """(whether a marker pauses the lease, why not when one exists): it pauses a primary's
    lease only while the node reaches a majority of hosts."""
    marker = paused(config)
    if not marker:
        return False, None
    total = len(config["nodes"])
    # Bootstrap: no standby exists that could be promoted beside the first primary.
    if marker == "bootstrap" or role not in ("primary", "unknown") or not config["enforce"] or \
            not safety.lease_enforced(total):
        return True, None
    answering = peers_answering(config, pg_facts)
    if safety.pause_holds(total, answering):
        return True, None
    return False, ("a planned operation's marker is in force, but only %d of %d peers' hosts answer: the lease "
                   "applies (the others may promote)" % (answering, total - 1))


def clock():
    """Seconds that go on while the machine is suspended (a monotonic clock stops there: a
    primary resumed after a suspend must see its lease as old as it is)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def boot_id():
    """This boot's id: clock() values mean nothing across a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def save_state(config, state, mono):
    """The lease state, so a restarted guard does not grant itself a new lease: when a majority
    last confirmed, the last read and its replies (a WAL sender's row stays after its standby
    was cut away, until wal_sender_timeout: its reply_time must not count as new). Times are
    clock() values with this boot's id: a step of the wall clock does not move them."""
    if state.get("majority_at") is None:
        return
    saved = {"boot_id": boot_id(), "saved_at": mono, "majority_at": state["majority_at"],
             "read_at": state.get("read_at", mono), "replies": state.get("replies", {})}
    try:
        with open(config["state_file"] + ".tmp", "w") as handle:
            json.dump(saved, handle)
        os.replace(config["state_file"] + ".tmp", config["state_file"])
    except OSError as exc:  # the lease decision goes on without it
        log("could not save the lease state: %s" % exc)


def restored_state(config, mono, lease_seconds):
    """The saved lease state, as safety.restored_lease allows it; {} when none can be read."""
    from ansible_collections.pgha.cluster.plugins.module_utils import safety
    try:
        with open(config["state_file"]) as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        return {}
    started = postmaster_started_at((config.get("layout") or {}).get("datadir"))
    return safety.restored_lease(saved, boot_id(), mono, lease_seconds, started)


def postmaster_started_at(datadir):
    """When this node's postmaster started, in clock() seconds (/proc counts from boot); None
    when none runs."""
    try:
        with open(os.path.join(datadir, "postmaster.pid")) as handle:
            pid = int(handle.readline())
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


class Reader:
    """Reads this node's server in a thread of its own, once per interval or, when a read
    takes longer, right after it: a read that hangs (a frozen postmaster, a stalled disk:
    libpq waits at least 2 s to connect, a query for ever) never holds up the beat that must
    find the lease expired. latest(): (when the newest finished read began, its result)."""

    def __init__(self, read, interval):
        self.read, self.interval = read, interval
        self.newest, self.error, self.stopped, self.first = None, None, threading.Event(), threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def wait_first(self, seconds):
        """Wait for the first read (a guard that starts must not take a slow first read for a
        server that does not answer)."""
        self.first.wait(seconds)

    def latest(self):
        if self.error is not None:
            raise self.error
        return self.newest

    def stop(self):
        self.stopped.set()

    def _loop(self):
        while not self.stopped.is_set():
            began = clock()
            try:
                result = self.read()
            except Exception as exc:  # raised again in the guard's own thread
                self.error = exc
                self.first.set()
                return
            if not self.stopped.is_set():
                self.newest = (began, result)
                self.first.set()
            self.stopped.wait(max(0.0, self.interval - (clock() - began)))


def current_read(reader, now, lease):
    """(when the read began, role, replies, facts) from the newest read; "unknown" (the lease
    runs on) when none finished within the lease: the server does not answer its guard."""
    newest = reader.latest()
    if newest is None or now - newest[0] > lease["lease_seconds"]:
        return None, "unknown", {}, {}
    return (newest[0],) + tuple(newest[1])


def run(config):
    from ansible_collections.pgha.cluster.plugins.module_utils import (
        fencing, pg_facts, postgres, promotion, safety, watchdog)
    beating = watchdog.Watchdog()
    beating.alive()
    lease, total = config["lease"], len(config["nodes"])
    state = restored_state(config, clock(), lease["lease_seconds"])
    log("guarding %s: %d nodes, lease %.1f s, enforced %s" % (config["name"], total, lease["lease_seconds"],
                                                              config["enforce"] and safety.lease_enforced(total)))
    last_reason, last_override, sync_seen, unverified = None, None, {}, None
    read = functools.partial(read_local, config, postgres, promotion, safety)
    reader, last_read = Reader(read, lease["guard_interval"]), None
    reader.wait_first(lease["guard_interval"])
    while True:
        beating.alive()
        started = clock()
        observed_at, role, replies, facts = current_read(reader, started, lease)
        fresh, last_read = observed_at is not None and observed_at != last_read, observed_at
        is_paused, overridden = pause_in_force(config, role, pg_facts, safety)
        if overridden and overridden != last_override:
            log(overridden)
        last_override = overridden
        fenced = read_fenced_peers(config, facts.get("timeline"), safety) if role == "primary" else []
        state, action, reason = safety.guard_step(state, role, replies, clock(), total if config["enforce"] else 1,
                                                  lease, is_paused, fenced, observed_at)
        if role in ("primary", "unknown"):
            # also while unread: a restart must find the lease as old as it is
            save_state(config, state, clock())
        if action == "keep" and not is_paused and config["enforce"] and fresh:
            apply_sync_policy(config, postgres, safety, facts, safety.standing_fenced(fenced, replies), sync_seen)
        if unverified and action != "fence":
            # The last fence was not verified: the postmaster may be gone (role None) while
            # its backends still run; try again whatever the server looks like now.
            action, reason = "fence", "%s (trying the fence again)" % unverified
        if action == "fence":
            log("fencing this primary: %s" % reason)
            try:
                with beating.allowing(FENCE_SECONDS):
                    result, out = fencing.fence_locally(config["layout"], config["fence_lock_file"],
                                                        "pgha-guard: %s" % reason, config["port"])
            except (subprocess.SubprocessError, OSError) as exc:  # a crash would restart with a fresh lease
                result, out = None, "the fence did not finish: %s" % exc
            log("fence %s: %s" % ("verified" if result else "NOT verified, trying again", out))
            unverified = None if result else unverified or reason
            if result:
                # a read begun before the fence tells nothing about after it
                reader.stop()
                state, reader = {}, Reader(read, lease["guard_interval"])
                reader.wait_first(lease["guard_interval"])
        elif reason != last_reason and role in ("primary", "unknown"):
            log(reason)
        last_reason = reason
        clear_bootstrap(config, role, replies, safety, total)
        time.sleep(max(0.05, lease["guard_interval"] - (clock() - started)))


def clear_bootstrap(config, role, replies, safety, total):
    """The new cluster's first primary needs no confirmation until its standbys exist."""
    if role == "primary" and os.path.exists(config["bootstrap_file"]) and \
            1 + len(replies) >= safety.majority(total):
        os.remove(config["bootstrap_file"])
        log("standbys stream (%s): bootstrap over, the lease applies" % ", ".join(sorted(replies)))


def local_facts(config, instance):
    from ansible_collections.pgha.cluster.plugins.module_utils import promotion, safety
    datadir = config["layout"]["datadir"]
    lock = None
    if os.path.exists(config["fence_lock_file"]):
        with open(config["fence_lock_file"]) as handle:
            lock = handle.read(300).strip() or "present"
    bindir = config["layout"]["bindir"]
    controldata = os.popen("LC_ALL=C %s/pg_controldata %s 2>/dev/null" % (shlex.quote(bindir), shlex.quote(datadir)))
    timeline = promotion.stopped_timeline(controldata.read(), promotion.wal_names(datadir))
    controldata.close()
    return {"name": config["name"], "standby_signal": os.path.exists(os.path.join(datadir, "standby.signal")),
            "fence_lock": lock, "timeline": timeline, "bootstrap": os.path.exists(config["bootstrap_file"]),
            "forced": start_forced(config), "fenced_peers": read_fenced_peers(config, timeline, safety)}


def start_forced(config):
    """The operator's start.yml -e force=true for this start (its file, at most 10 minutes old)."""
    from ansible_collections.pgha.cluster.plugins.module_utils import markers
    age = markers.marker_age(config.get("start_override_file") or "")
    return age is not None and age <= START_OVERRIDE_SECONDS


def peer_facts(config, pg_facts, postgres):
    names = dict((n["address"], n["name"]) for n in config["nodes"])
    peers = {}
    for node in config["nodes"]:
        if node["name"] == config["name"]:
            continue
        params = dict({"login_host": node["address"], "login_port": node["port"], "login_user": config["admin_user"],
                       "login_db": "postgres", "connect_timeout": 2}, **postgres.verified(config.get("tls_ca")))
        facts = pg_facts.survey_node(params, local=False, probe_timeout=1.0)
        facts["follows"] = names.get(facts.get("primary_conninfo_host"))
        peers[node["name"]] = facts
    return peers


def arbiter_lease(config):
    """Keeper mode: {"lease": the arbiter's lease row, None when it does not answer; "seen": the
    row this node's keeper read last, from its state file}; else None."""
    if not config.get("arbiter"):
        return None
    from ansible_collections.pgha.cluster.plugins.module_utils import arbiter, postgres
    settings = dict(config["arbiter"])
    cluster, seen = settings.pop("cluster"), arbiter.kept_state(settings.pop("keeper_state_file", "")).get("lease_seen")
    try:
        conn = postgres.connect(arbiter.params(dict(settings, **postgres.verified(config.get("tls_ca"))), 2.0))
    except postgres.PgConnectError as exc:
        log("arbiter: %s" % exc)
        return {"lease": None, "seen": seen}
    try:
        return {"lease": arbiter.read_lease(conn, cluster, ensure_schema=True), "seen": seen}
    except postgres.DRIVER_ERRORS as exc:
        log("arbiter: %s" % " ".join(str(exc).split()))
        return {"lease": None, "seen": seen}
    finally:
        conn.close()


def fenced_meanwhile(config, fencing):
    """Marks this start, then looks at the fence lock once more: a fence that wrote the lock
    before the mark is seen here; one that writes it after sees the mark and waits for this
    start's postmaster, which it stops (fencing.start_marker; the unit removes the mark when
    the start ended). True: do not start."""
    marker = fencing.start_marker(config["fence_lock_file"])
    try:
        with open(marker, "w") as handle:
            handle.write("%d\n" % os.getpid())
    except OSError as exc:
        log("cannot mark the start (%s): a fence landing now could not see it" % exc)
        return True
    if not os.path.exists(config["fence_lock_file"]):
        return False
    if os.path.exists(marker):
        os.unlink(marker)
    return True


def start_check(config, instance):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing, pg_facts, postgres, safety
    deadline = time.monotonic() + config.get("start_wait", 40)
    while True:
        local = local_facts(config, instance)
        peers = peer_facts(config, pg_facts, postgres) if not local["standby_signal"] else {}
        lease = arbiter_lease(config) if not local["standby_signal"] else None
        decision = safety.start_decision(local, peers, len(config["nodes"]), arbiter=lease)
        if decision["write_lock"]:
            with open(config["fence_lock_file"], "w") as handle:
                json.dump({"fenced_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "reason": "start refused: %s" % decision["reason"]}, handle)
                handle.write("\n")
        if decision["start"] and not local["standby_signal"] and fenced_meanwhile(config, fencing):
            log("refusing to start %s as a primary: fenced while its start was decided, or its start could not be "
                "marked" % instance)
            return 1
        if decision["start"]:
            log("starting %s: %s" % (instance, decision["reason"]))
            return 0
        if not decision["retry"] or time.monotonic() > deadline:
            log("refusing to start %s as a primary: %s" % (instance, decision["reason"]))
            log("rebuild it as a standby with pgha.cluster.rebuild, or start its peers first")
            return 1
        log("waiting: %s" % decision["reason"])
        time.sleep(2)


def main(argv):
    config = load_config()
    if argv[1:2] == ["run"]:
        run(config)
        return 0
    if argv[1:2] == ["start-check"] and len(argv) == 3:
        return start_check(config, argv[2])
    log("usage: pgha-guard run | start-check INSTANCE")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
