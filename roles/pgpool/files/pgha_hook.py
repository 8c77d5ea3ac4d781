"""pgpool-II hooks installed by pgha: failover_command and follow_primary_command.

    pgha-hook failover %d %h %p %D %m %H %M %P %r %R %N %S
    pgha-hook follow   %d %h %p %D %m %H %M %P %r %R %N %S
    pgha-hook reattach NODE_ID          (started by failover in the background)
    pgha-hook reattach-standby NODE_ID  (started by failover in the background)
    pgha-hook fence NODE_NAME REASON    (started by failover in the background)
    pgha-hook manual FAILED|- [CANDIDATE|- [force]]   (failover.yml: the same steps, by hand)

Failover (pgpool waits for it): module_utils/failover_flow decides step by step (plan,
fence, synchronous quorum rule, promotion gate) and this hook carries out each request
with a timeout: survey every node, fence over ssh (verified: lock written and postmaster
gone, or the fence_command), and promote only when every node that may be a primary is
proven unable to take writes or, when it cannot be reached, after the standbys were
revoked and its lease ran out (its guard stopped it). See module_utils/safety.py.
pgpool then finds the new primary by itself and runs follow for every other node:
repoint it (ALTER SYSTEM primary_conninfo / primary_slot_name, reload), wait until it
streams from the new primary, and attach it. Nothing is ever deleted; a refused plan
changes nothing; when pgpool reported a primary that still answers (one pgpool's false
alarm: pgha does not ask pgpool for a majority vote), the hook refuses and a background
reattach puts that primary back into pgpool once pgpool's failover is over. Runs as postgres (pgpool's user): passwords come from ~/.pgpass and
~/.pcppass, ssh uses ~/.ssh. Settings: /etc/pgha/hook.json (written by the pgpool role).
"""
import fcntl
import json
import os
import queue
import signal
import subprocess
import sys
import syslog
import threading
import time
from contextlib import closing

CONFIG = os.environ.get("PGHA_HOOK_CONFIG", "/etc/pgha/hook.json")
# The most a detached failover's remaining steps (record, repoint, CHECKPOINT) may hold the
# failover lock, which the next failover on this node waits for.
DETACHED_SECONDS = 60
FIELDS = ("node_id", "host", "port", "datadir", "new_main_id", "new_main_host", "old_main_id",
          "old_primary_id", "new_main_port", "new_main_datadir", "old_primary_host", "old_primary_port")


def load_config():
    with open(CONFIG) as handle:
        config = json.load(handle)
    sys.path.insert(0, config["lib_dir"])
    config["lease"] = dict((k, float(v)) for k, v in config["lease"].items())
    return config


def log(message, priority=syslog.LOG_NOTICE):
    syslog.syslog(priority, message)
    sys.stderr.write("pgha-hook: %s\n" % message)
    sys.stderr.flush()


def conn_params(config, node, timeout=1):
    from ansible_collections.pgha.cluster.plugins.module_utils import postgres
    return dict({"login_host": node["address"], "login_port": node["port"], "login_user": config["admin_user"],
                 "login_db": "postgres", "connect_timeout": timeout, "ssl_mode": "prefer"},
                **postgres.verified(config.get("tls_ca")))


def survey(config, pg_facts, known=None):
    """Facts of every node, read in parallel (an unreachable node costs one connect timeout);
    known: facts of nodes not to read again."""
    results = dict(known or {})

    def read(node):
        results[node["name"]] = pg_facts.survey_node(conn_params(config, node), local=False, probe_timeout=0.5)

    in_parallel([threading.Thread(target=read, args=(n,)) for n in config["nodes"] if n["name"] not in results], 10)
    timed_out = {"reachable": False, "in_recovery": None, "reason": "survey timed out"}
    return dict((n["name"], results.get(n["name"]) or timed_out) for n in config["nodes"])


def run(argv, timeout):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode, (proc.stdout + proc.stderr).strip()
    except subprocess.TimeoutExpired:
        return 124, "timed out after %s s" % timeout


def fence_over_ssh(config, node, reason, connect_timeout, link=False):
    """Lock file and immediate stop on a node that may be a primary; a standby is told to
    follow nobody. link: over the standing ssh connection to the node (pgha-ssh-link@) when
    there is one. Returns (verified {"kind", "timeline"} or None, what the node said)."""
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    link_path = os.path.join(config["ssh_link_dir"], node["address"]) if link and config.get("ssh_link_dir") else None
    result, out = fencing.fence_over_ssh(node["address"], config["layout"], config["fence_lock_file"], reason,
                                         connect_timeout, node["port"], link=link_path)
    log("fence %s: %s (%s)" % (node["name"], "verified %s" % result if result else "NOT verified", out[-300:]))
    return result, out


# After the fence_command said a node is off, its host must not answer this fast (on a LAN
# a live host refuses or accepts a TCP connection within milliseconds).
OFF_PROBE_SECONDS = 0.2


def stonith(config, node):
    """The configured fence_command (power off, cloud API): exit 0 means the node is off,
    provided its host no longer answers (a command that lied, or moved an address only,
    does not count)."""
    from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts
    if not config.get("fence_command"):
        return False
    rc, out = run(config["fence_command"] + [node["name"], node["address"]], 30)
    log("fence_command for %s exited %d: %s" % (node["name"], rc, out))
    if rc != 0:
        return False
    if pg_facts.tcp_probe(node["address"], node["port"], OFF_PROBE_SECONDS)[1]:
        log("fence_command for %s exited 0 but its host still answers: not counted as fenced" % node["name"],
            syslog.LOG_ERR)
        return False
    return True


POWERED_OFF = {"kind": "primary", "timeline": None, "powered_off": True}


def fence_node(config, node, reason, plan):
    """A verified fence of one node, or None, as fencing.fence_plan says: over ssh (the
    standing link or anew), with the fence_command at once beside it or only if it fails."""
    def over_ssh():
        return fence_over_ssh(config, node, reason, connect_timeout=1, link=plan["link"])[0]

    def powered_off():
        return dict(POWERED_OFF) if stonith(config, node) else None

    if plan["power_at_once"]:
        # No deadline (each attempt has its own): a fence_command left running could power
        # the node off after the failover gave up on it.
        return first_verified([over_ssh, powered_off], None)
    return over_ssh() or powered_off()


def first_verified(attempts, timeout):
    """Run the attempts at once; the first result that is not None (None if there is none);
    timeout: seconds in all, None for no deadline."""
    results = queue.Queue()

    def attempt_into(attempt):
        result = None
        try:
            result = attempt()
        except Exception as exc:  # reported, and it counts as not verified
            log("fence attempt failed: %s: %s" % (type(exc).__name__, exc), syslog.LOG_ERR)
        results.put(result)

    in_parallel([threading.Thread(target=attempt_into, args=(a,)) for a in attempts], 0)
    deadline = None if timeout is None else time.monotonic() + timeout
    for _attempt in attempts:
        try:
            result = results.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if result:
            return result
    return None


class FenceAttempt(threading.Thread):
    """One node's fence, in the background, as fencing.fence_plan says from the survey's
    facts of it; result: the verified fence (a fence_command success counts) or None."""

    def __init__(self, config, node, facts):
        super().__init__(daemon=True)
        self.config, self.node, self.facts, self.result = config, node, facts, None
        self.start()

    def run(self):
        from ansible_collections.pgha.cluster.plugins.module_utils import fencing
        plan = fencing.fence_plan(self.facts, bool(self.config.get("fence_command")))
        try:
            self.result = fence_node(self.config, self.node, "pgha failover", plan)
        except Exception as exc:  # reported, and it counts as not verified
            log("fence of %s failed: %s: %s" % (self.node["name"], type(exc).__name__, exc), syslog.LOG_ERR)


def in_parallel(threads, timeout):
    for thread in threads:
        thread.daemon = True
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def fence_until_done(config, args):
    """Background: keep trying to fence a node that did not answer (power-off, cut link) until
    it answers, so an old primary that comes back is stopped within seconds."""
    node, reason = by_name(config)[args["node"]], args["reason"]
    with open("%s.fence.%s" % (config["lock_path"], node["name"]), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another retry for this node is running
        deadline = time.time() + config.get("fence_retry_seconds", 900)
        while time.time() < deadline:
            if streams_as_standby(config, node):
                # Rebuilt meanwhile: no primary to stop, and a fence would tell the new standby
                # to follow nobody. (A diverged old primary given a standby.signal by hand
                # cannot stream: it is fenced.)
                log("%s streams as a standby: nothing left to fence" % node["name"])
                return 0
            result = fence_over_ssh(config, node, reason, connect_timeout=2)[0]
            if result:
                if result.get("kind") == "primary":
                    record_on_the_primary(config, node)
                return 0
            time.sleep(1)
    log("gave up fencing %s after %d s: its start guard keeps it from starting as a primary; rebuild it" % (
        node["name"], config.get("fence_retry_seconds", 900)), syslog.LOG_ERR)
    return 1


def streams_as_standby(config, node):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing, pg_facts
    return fencing.streams_as_standby(pg_facts.read_node(conn_params(config, node, timeout=2), probe_timeout=0.5))


def promote(config, postgres, node):
    """True when node runs as a primary after pg_promote (its CHECKPOINT comes after the detach)."""
    from ansible_collections.pgha.cluster.plugins.module_utils import promotion
    try:
        conn = postgres.connect(conn_params(config, node, timeout=3))
    except postgres.PgConnectError as exc:
        log("cannot promote %s: %s" % (node["name"], exc), syslog.LOG_ERR)
        return False
    try:
        seconds = promotion.promote(conn, 30)
        log("promoted %s in %.3f s" % (node["name"], seconds))
        return True
    except (RuntimeError,) + postgres.DRIVER_ERRORS as exc:
        log("promotion of %s failed: %s" % (node["name"], exc), syslog.LOG_ERR)
        return False
    finally:
        conn.close()


def record(config, postgres, primary, fenced):
    """Tell the new primary's guard which old primaries are fenced (they count towards its
    majority until they are rebuilt). Best effort: without it the guard needs live standbys."""
    from ansible_collections.pgha.cluster.plugins.module_utils import promotion
    try:
        with closing(postgres.connect(conn_params(config, primary, timeout=2))) as conn:
            timeline = promotion.record_fenced(conn, config["fenced_peers_file"], fenced)
        log("recorded on %s (timeline %s): fenced %s" % (primary["name"], timeline, ", ".join(fenced) or "none"))
    except (postgres.PgConnectError,) + postgres.DRIVER_ERRORS as exc:
        log("could not record the fenced nodes on %s: %s" % (primary["name"], " ".join(str(exc).split())),
            syslog.LOG_WARNING)


def record_on_the_primary(config, node):
    """An old primary fenced after the failover counts for the new primary's guard like one
    fenced during it: a second fault then leaves the last node its lease."""
    from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts, postgres
    facts = survey(config, pg_facts)
    live = [n for n in config["nodes"] if n["name"] != node["name"] and is_live_primary(facts[n["name"]])]
    if len(live) != 1:
        log("fenced %s, not recorded: %d primaries answer" % (node["name"], len(live)), syslog.LOG_WARNING)
        return
    record(config, postgres, live[0], [node["slot"]])


def revoke(config, postgres, node):
    """The standby follows nobody (primary_conninfo emptied) and its WAL receiver is gone."""
    try:
        conn = postgres.connect(conn_params(config, node, timeout=2))
    except postgres.PgConnectError:
        return False
    try:
        postgres.query(conn, "ALTER SYSTEM SET primary_conninfo = ''")
        postgres.query(conn, "SELECT pg_reload_conf()")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if not postgres.query_one(conn, "SELECT pid FROM pg_stat_wal_receiver WHERE pid IS NOT NULL"):
                return True
            time.sleep(0.05)
        return False
    except postgres.DRIVER_ERRORS:
        return False
    finally:
        conn.close()


def by_name(config):
    return dict((n["name"], n) for n in config["nodes"])


class Executor:
    """Carries out failover_flow's requests against the servers, every call bounded."""

    def __init__(self, config, started, detach=False):
        from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts, postgres, safety
        self.config, self.pg_facts, self.postgres, self.safety = config, pg_facts, postgres, safety
        self.named, self.started, self.detach = by_name(config), started, detach
        self.attempts = {}  # name: its last FenceAttempt
        self.facts = {}  # the last survey's
        self.powered_off = set()

    def __call__(self, request):
        result = getattr(self, "do_" + request[0])(*request[1:])
        if request[0] in ("survey", "fence", "fence_background", "revoke", "promote", "repoint"):
            # Each step's end on one clock: the bench lines them up with pgpool's log and the writer.
            log("step %s%s done: %s (%.3f s)" % (request[0], "" if request[0] == "survey" else " " + str(request[1]),
                                                 self.summary(request[0], result), time.monotonic() - self.started))
        return result

    @staticmethod
    def summary(kind, result):
        if kind == "survey":
            return ", ".join("%s %s" % (n, f.get("role") if f.get("reachable") else "unreachable")
                             for n, f in sorted(result.items()))
        if kind in ("fence", "fence_background"):
            return "verified %s" % (", ".join(sorted(result)) or "none")
        return str(result)

    def do_now(self):
        return time.monotonic()

    def do_log(self, message):
        log("%s (%.3f s)" % (message, time.monotonic() - self.started))

    def do_sleep(self, seconds):
        time.sleep(seconds)

    def do_survey(self, standing):
        known = dict((n, self.facts[n]) for n in standing if n in self.facts)
        self.facts = self.safety.annotate(survey(self.config, self.pg_facts, known),
                                          dict((n["address"], n["name"]) for n in self.config["nodes"]))
        return self.facts

    def do_fence(self, names):
        self.start_attempts([n for n in names if n not in self.attempts or not self.attempts[n].is_alive()])
        return self.fence_results(names, wait=True)

    def do_fence_background(self, names, wait):
        self.start_attempts([n for n in names if n not in self.attempts])
        return self.fence_results(names, wait)

    def start_attempts(self, names):
        for name in names:
            self.attempts[name] = FenceAttempt(self.config, self.named[name], self.facts.get(name) or {})

    def fence_results(self, names, wait):
        if wait:
            # No deadline: each attempt has its own (ssh's timeouts, the fence_command's 30 s),
            # and one still running after a refusal could stop the primary it gives back.
            for name in names:
                self.attempts[name].join()
        results = dict((n, self.attempts[n].result) for n in names
                       if not self.attempts[n].is_alive() and self.attempts[n].result)
        self.powered_off |= set(n for n, result in results.items() if result.get("powered_off"))
        return results

    def do_revoke(self, names):
        done = []
        in_parallel([threading.Thread(target=lambda n=n: revoke(self.config, self.postgres, self.named[n])
                                      and done.append(n)) for n in names], 10)
        return done

    def do_promote(self, name):
        return promote(self.config, self.postgres, self.named[name])

    def do_detach(self, name):
        """The candidate is promoted. An old primary that did not answer, or that the
        fence_command powered off, may come back: keep trying to fence it (in the background).
        pgpool waits for this process before it looks for the new primary: let it go on and
        finish the remaining steps in a child, which keeps the failover lock until it is done,
        at most DETACHED_SECONDS."""
        # One the fence_command powered off has no lock: it gets one once it is back.
        unverified = set(n for n, attempt in self.attempts.items() if not attempt.result)
        for node in sorted(unverified | self.powered_off):
            start_background("fence", node, "pgha failover")
        if not self.detach:
            return
        if threading.active_count() > 1:
            # A fence attempt that lost the race still runs: a fork now could leave the child
            # waiting for a lock that thread held. pgpool waits for the remaining steps instead.
            log("not detached: %d fence attempt(s) still running (%.3f s)" % (
                threading.active_count() - 1, time.monotonic() - self.started))
            return
        log("detached: pgpool goes on with %s as the primary (%.3f s)" % (name, time.monotonic() - self.started))
        if os.fork():
            os._exit(0)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # The next failover waits for the lock this child holds: never for ever.
        signal.alarm(DETACHED_SECONDS)

    def do_checkpoint(self, name):
        from ansible_collections.pgha.cluster.plugins.module_utils import promotion
        try:
            with closing(self.postgres.connect(conn_params(self.config, self.named[name], timeout=3))) as conn:
                promotion.checkpoint_now(conn)
        except self.postgres.DRIVER_ERRORS + (self.postgres.PgConnectError,) as exc:
            log("CHECKPOINT on %s failed: %s (the next one carries the new timeline)" % (name, exc),
                syslog.LOG_WARNING)

    def do_record(self, name, fenced):
        record(self.config, self.postgres, self.named[name], [self.named[n]["slot"] for n in fenced])

    def do_repoint(self, names, primary):
        in_parallel([threading.Thread(target=repoint_quietly, args=(self.config, self.postgres, self.named[n],
                                                                    self.named[primary])) for n in names], 10)


def pausing_marker(config):
    """The planned operation's marker that pauses automatic failover, if any (stale ones logged)."""
    from ansible_collections.pgha.cluster.plugins.module_utils import markers
    marker, stale = markers.pausing_marker([config["maintenance_file"], config.get("operation_lock", ""),
                                            config.get("site_marker", "")],
                                           config.get("marker_max_age", markers.DEFAULT_MAX_AGE))
    if marker:
        return marker
    for path, age in stale:
        log("ignoring %s: %d s old (a playbook that died?)" % (path, age), syslog.LOG_WARNING)
    return None


def failover(config, args):
    nodes = config["nodes"]
    failed = nodes[int(args["node_id"])]
    marker = pausing_marker(config)
    if marker:
        log("a planned operation holds %s: no automatic failover for %s; the running playbook decides"
            % (marker, failed["name"]), syslog.LOG_WARNING)
        # A standby that pgpool detaches meanwhile (a rolling restart) is attached again once
        # it streams; that never promotes anything, so the pause does not hold it back.
        start_background("reattach-standby", args["node_id"])
        return 0
    result = run_failover(config, failed["name"], detach=True)
    if result["result"] == "refused":
        # Nothing was promoted: the failed node is still the cluster's primary. Attach it again
        # once it answers here (at once, or when a partial cut heals; pgpool has no primary
        # meanwhile), or fail it over once what refused it has passed: pgpool asks only once.
        log("backend %s stays the primary: attaching it again in pgpool once it answers here, trying the "
            "failover again while it does not" % args["node_id"])
        # Only pgpool's primary is failed over again (a standby's refusal must not fence it).
        start_background("retry" if args.get("old_primary_id") == args["node_id"] else "reattach", args["node_id"])
        return 1
    if result["result"] == "none":
        # Not a primary's failure: pgpool detaches the standby; attach it again once it
        # streams from the primary (after a cut heals or the node restarts).
        start_background("reattach-standby", args["node_id"])
    return 0


def run_failover(config, failed, candidate=None, force=False, detach=False):
    """failover_flow's steps carried out on the servers; the result (logged). detach: pgpool's
    failover goes on once the candidate is promoted (this process forks there)."""
    from ansible_collections.pgha.cluster.plugins.module_utils import failover_flow
    started = time.monotonic()
    sync_names = config.get("sync_names") or []
    steps = failover_flow.failover_steps(failed, len(config["nodes"]), config["lease"], config.get("hook_seconds", 40),
                                         sync_required=config.get("sync_required", 0),
                                         sync_names=sync_names, force=force, candidate=candidate,
                                         fence_device=bool(config.get("fence_command")))
    executor = Executor(config, started, detach)
    result = failover_flow.drive(steps, executor)
    log("failover of %s: %s: %s (%.3f s)"
        % (failed or "the primary", result["result"], result["reason"], time.monotonic() - started),
        syslog.LOG_ERR if result["result"] == "refused" else syslog.LOG_NOTICE)
    return result


def manual(config, args):
    """failover.yml's fence, gate and promotion: the same steps as pgpool's failover, asked by an
    operator who holds the cluster lock (so no marker pauses it). Prints the result as JSON."""
    result = run_failover(config, args["failed"] or None, args["candidate"] or None, args["force"])
    print(json.dumps(result))
    return 1 if result["result"] == "refused" else 0


def is_live_primary(facts):
    return facts["reachable"] and facts["in_recovery"] is False


def start_background(command, *args):
    """Run `pgha-hook COMMAND ARGS` detached from pgpool, which must not wait for it."""
    subprocess.Popen([sys.executable, os.path.abspath(__file__), command] + [str(a) for a in args],
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, close_fds=True)


def attached(config, node, node_id):
    """Attach the backend in pgpool unless it is up already; False while pgpool is busy."""
    try:
        pcp = pcp_client(config)
        if pcp.node_info()[int(node_id)]["status"] not in ("up", "waiting"):
            pcp.attach(node_id)
            return False  # seen attached on the next round
        return True
    except Exception as exc:  # pgpool may still be busy with its failover: try again
        log("reattach: %s not attached yet (%s)" % (node["name"], exc))
        return False


def reattach(config, args, timeout=600, retry=False):
    """After a refused failover (failover_flow.after_refusal): attach the primary again once
    it answers here as the only primary; give up when another node runs as primary. retry:
    while it does not come back, try its failover again now and then (one such process per
    node), for a day unless another node runs as primary (RETRY_FOR): pgpool has no primary
    meanwhile, and nothing else would give it one back."""
    from ansible_collections.pgha.cluster.plugins.module_utils import failover_flow, pg_facts
    node = config["nodes"][int(args["node_id"])]
    with open("%s.retry.%s" % (config["lock_path"], node["name"]), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another process already looks after this node
        started, waits = time.monotonic(), list(failover_flow.RETRY_SECONDS)
        retry_at = started + waits[0]
        while time.monotonic() < started + timeout:
            time.sleep(1)
            action = failover_flow.after_refusal(survey(config, pg_facts), node["name"], time.monotonic() - started)
            if action == "give up":
                log("reattach: %s is not the only primary any more; leaving pgpool as it is" % node["name"],
                    syslog.LOG_WARNING)
                return 1
            if action == "attach" and attached(config, node, args["node_id"]):
                log("reattach: %s is attached in pgpool" % node["name"])
                return 0
            if retry and action == "retry" and time.monotonic() >= retry_at:
                if failed_over_again(config, node):
                    return 0
                waits = waits[1:] or waits
                retry_at = time.monotonic() + waits[0]
    log("reattach: gave up attaching %s after %d s" % (node["name"], timeout), syslog.LOG_ERR)
    return 1


# How long a refused failover of pgpool's primary is retried: a cut that lasts hours leaves
# pgpool without a primary all that time, and nothing else would give it one back.
RETRY_FOR = 86400


def retry(config, args):
    return reattach(config, args, timeout=RETRY_FOR, retry=True)


def failed_over_again(config, node):
    """pgpool's failover of its primary that still does not answer, once more and as pgpool's
    hook runs it (one at a time, paused by a planned operation), then pgpool told."""
    with open(config["lock_path"] + ".failover", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Looked at once the lock is held: a playbook may have started while this waited.
        marker = pausing_marker(config)
        if marker:
            log("a planned operation holds %s: no retry of the failover of %s" % (marker, node["name"]))
            return False
        result = run_failover(config, node["name"])
    if result["result"] != "promoted":
        return False
    pgpool_takes_primary(config, result["candidate"])
    return True


def pgpool_takes_primary(config, name, timeout=20):
    """pgpool looks for a new primary only on its own failover events: make it take `name`
    (attached first when pgpool has it down; pcp_promote_node without switchover marks the
    other nodes down and runs follow_primary_command for them, which attaches them). pcp
    answers before pgpool acted, and pgpool drops a promotion it cannot make: read back."""
    node_id = [n["name"] for n in config["nodes"]].index(name)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            pcp = pcp_client(config)
            info = pcp.node_info()[node_id]
            if info.get("role") == "primary" and info.get("status") in ("up", "waiting"):
                log("pgpool treats %s as the primary" % name)
                return True
            if info.get("status") not in ("up", "waiting"):
                pcp.attach(str(node_id))
            else:
                pcp.promote(str(node_id))
        except Exception as exc:  # pgpool busy with the previous request: ask again
            log("pgpool does not treat %s as the primary yet: %s" % (name, exc))
        time.sleep(1)
    log("pgpool does not treat %s as the primary after %d s; run pgha.cluster.failover" % (name, timeout),
        syslog.LOG_ERR)
    return False


def reattach_standby(config, args, timeout=600):
    """Attach a detached standby once it streams from the only primary (topology.rebuild_need)."""
    from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts, topology
    node = config["nodes"][int(args["node_id"])]
    addresses = by_name(config)
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(2)
        facts = survey(config, pg_facts)
        live = topology.primaries(facts)
        if len(live) != 1 or live == [node["name"]]:
            continue
        ready = not topology.rebuild_need(facts[node["name"]], facts[live[0]], addresses[live[0]]["address"])["needed"]
        if ready and attached(config, node, args["node_id"]):
            log("reattach: standby %s streams from %s and is attached" % (node["name"], live[0]))
            return 0
    log("reattach: standby %s did not stream from a primary within %d s; left detached" % (node["name"], timeout),
        syslog.LOG_WARNING)
    return 1


def pcp_client(config):
    from ansible_collections.pgha.cluster.plugins.module_utils.pgpool import Pcp
    return Pcp(_run_env, "localhost", config["pcp_port"], config["pcp_user"], passfile=os.path.expanduser("~/.pcppass"))


def repoint_quietly(config, postgres, node, primary):
    try:
        repoint(config, postgres, node, primary)
        log("repointed %s to %s" % (node["name"], primary["name"]))
    except Exception as exc:  # follow_primary_command retries it
        log("could not repoint %s yet (%s); follow will retry" % (node["name"], exc), syslog.LOG_WARNING)


def repoint(config, postgres, node, primary):
    """Make a standby stream from the new primary: a slot there, primary_conninfo here, reload."""
    from ansible_collections.pgha.cluster.plugins.module_utils import replication
    with closing(postgres.connect(conn_params(config, primary, timeout=3))) as conn:
        replication.ensure_slot(conn, node["slot"])
    conninfo = replication.primary_conninfo(primary["address"], primary["port"], config["replication_user"], node["slot"],
                                            config.get("conninfo_options", ""))
    with closing(postgres.connect(conn_params(config, node, timeout=3))) as conn:
        replication.repoint(conn, conninfo, node["slot"])


def streams_from(config, postgres, node, primary, timeout):
    from ansible_collections.pgha.cluster.plugins.module_utils import replication
    with closing(postgres.connect(conn_params(config, node, timeout=3))) as conn:
        return replication.wait_streaming(conn, primary["address"], timeout)


def follows(config, postgres, node, primary, facts):
    """Repoint the standby when it streams from elsewhere; True once it streams from the primary."""
    try:
        if (facts.get("wal_receiver") or {}).get("sender_host") != primary["address"]:
            repoint(config, postgres, node, primary)
        return streams_from(config, postgres, node, primary, config.get("follow_timeout", 30))
    except Exception as exc:  # it went down meanwhile: the caller hands it to reattach-standby
        log("follow: %s: %s" % (node["name"], exc), syslog.LOG_WARNING)
        return False


def follow(config, args):
    from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts, postgres
    nodes = config["nodes"]
    node, primary = nodes[int(args["node_id"])], nodes[int(args["new_main_id"])]
    if args["node_id"] == args["old_primary_id"]:
        log("follow: %s is the old primary; leaving it detached (rebuild it with pgha.cluster.rebuild)"
            % node["name"], syslog.LOG_WARNING)
        return 0
    facts = pg_facts.survey_node(conn_params(config, node, timeout=2), local=False)
    if facts["reachable"] and not facts["in_recovery"]:
        log("follow: %s is a primary; leaving it detached (rebuild it with pgha.cluster.rebuild)" % node["name"],
            syslog.LOG_WARNING)
        return 0
    if not facts["reachable"] or not follows(config, postgres, node, primary, facts):
        # A standby that died during the failover (pgpool detached it with the others and
        # sends no failover for it): attached once it runs again and streams from the primary.
        log("follow: %s does not stream from %s yet; attached once it does" % (node["name"], primary["name"]),
            syslog.LOG_WARNING)
        start_background("reattach-standby", args["node_id"])
        return 0
    pcp_client(config).attach(args["node_id"])
    log("follow: %s streams from %s and is attached again" % (node["name"], primary["name"]))
    return 0


def _run_env(argv, env):
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **env), timeout=30, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def main(argv):
    syslog.openlog("pgha-hook", syslog.LOG_PID)
    commands = {"failover": failover, "follow": follow, "reattach": reattach, "retry": retry,
                "reattach-standby": reattach_standby,
                "fence": fence_until_done, "manual": manual}
    if len(argv) < 3 or argv[1] not in commands:
        log("usage: pgha-hook failover|follow %d %h %p %D %m %H %M %P %r %R %N %S", syslog.LOG_ERR)
        return 2
    config = load_config()
    if argv[1] == "fence":
        args = {"node": argv[2], "reason": " ".join(argv[3:]) or "failover"}
    elif argv[1] == "manual":
        args = {"failed": argv[2].strip("-"), "candidate": (argv[3:4] or [""])[0].strip("-"),
                "force": argv[4:5] == ["force"]}
    else:
        args = dict(zip(FIELDS, argv[2:]))
    # One failover at a time on this node; follow runs per node and may overlap.
    with open(config["lock_path"] + "." + ("failover" if argv[1] == "manual" else argv[1]), "a") as lock:
        if argv[1] in ("failover", "manual"):
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return commands[argv[1]](config, args)
        except Exception as exc:  # a hook must report, never crash silently
            log("%s failed: %s: %s" % (argv[1], type(exc).__name__, exc), syslog.LOG_ERR)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
