"""pgpool-II hooks installed by pgha: failover_command and follow_primary_command.

    pgha-hook failover %d %h %p %D %m %H %M %P %r %R %N %S
    pgha-hook follow   %d %h %p %D %m %H %M %P %r %R %N %S
    pgha-hook reattach NODE_ID          (started by failover in the background)
    pgha-hook fence NODE_NAME REASON    (started by failover in the background)

Failover (the fast path, pgpool waits for it): survey every node, let the decision core
(topology.plan_failover) choose the standby with the most WAL, fence the failed primary
(lock file + immediate stop over ssh, in parallel with the promotion) and promote.
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
import subprocess
import sys
import syslog
import threading
import time

CONFIG = os.environ.get("PGHA_HOOK_CONFIG", "/etc/pgha/hook.json")
FIELDS = ("node_id", "host", "port", "datadir", "new_main_id", "new_main_host", "old_main_id",
          "old_primary_id", "new_main_port", "new_main_datadir", "old_primary_host", "old_primary_port")


def load_config():
    with open(CONFIG) as handle:
        config = json.load(handle)
    sys.path.insert(0, config["lib_dir"])
    return config


def log(message, priority=syslog.LOG_NOTICE):
    syslog.syslog(priority, message)
    sys.stderr.write("pgha-hook: %s\n" % message)
    sys.stderr.flush()


def conn_params(config, node, timeout=1):
    return {"login_host": node["address"], "login_port": node["port"], "login_user": config["admin_user"],
            "login_db": "postgres", "connect_timeout": timeout, "ssl_mode": "prefer"}


def survey(config, pg_facts):
    """Facts of every node, read in parallel (an unreachable node costs one connect timeout)."""
    results = {}

    def read(node):
        results[node["name"]] = pg_facts.survey_node(conn_params(config, node), local=False, probe_timeout=0.5)

    threads = [threading.Thread(target=read, args=(n,)) for n in config["nodes"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run(argv, timeout):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode, (proc.stdout + proc.stderr).strip()
    except subprocess.TimeoutExpired:
        return 124, "timed out after %s s" % timeout


def fence_over_ssh(config, node, reason, connect_timeout):
    """Lock file and immediate stop on a node that may be a primary. True when it answered."""
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    fenced, out = fencing.fence_over_ssh(node["address"], config["pg_version"], config["fence_lock_file"], reason,
                                         connect_timeout)
    if fenced:
        log("fenced %s: %s" % (node["name"], out))
    return fenced, out


class Fencer(threading.Thread):
    """One fence attempt (and the optional fence_command) while the promotion runs."""

    def __init__(self, config, node, reason):
        super().__init__(daemon=True)
        self.config, self.node, self.reason, self.fenced = config, node, reason, False

    def run(self):
        self.fenced, out = fence_over_ssh(self.config, self.node, self.reason, connect_timeout=1)
        if not self.fenced:
            log("could not reach %s to fence it (%s); retrying in the background" % (self.node["name"], out),
                syslog.LOG_WARNING)
        if self.config.get("fence_command"):
            rc, out = run(self.config["fence_command"] + [self.node["name"], self.node["address"]], 30)
            log("fence_command for %s exited %d: %s" % (self.node["name"], rc, out))


def finish_fencing(fencers, deadline):
    """Wait for the fence attempts until deadline; nodes not fenced by then get a background retry."""
    for fencer in fencers:
        fencer.join(max(0.0, deadline - time.time()) if not fencer.config.get("fence_command") else 35)
        if fencer.is_alive() or not fencer.fenced:
            start_background("fence", fencer.node["name"], fencer.reason)


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
            if fence_over_ssh(config, node, reason, connect_timeout=2)[0]:
                return 0
            time.sleep(1)
    log("gave up fencing %s after %d s: do not start it as a primary; rebuild it" % (
        node["name"], config.get("fence_retry_seconds", 900)), syslog.LOG_ERR)
    return 1


def promote(config, postgres, node):
    from ansible_collections.pgha.cluster.plugins.module_utils import promotion
    conn = postgres.connect(conn_params(config, node, timeout=3))
    try:
        return promotion.promote(conn, 30)
    finally:
        conn.close()


def by_name(config):
    return dict((n["name"], n) for n in config["nodes"])


def failover(config, args):
    from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts, postgres, topology
    nodes = config["nodes"]
    failed = nodes[int(args["node_id"])]
    if os.path.exists(config["maintenance_file"]):
        log("maintenance in progress (%s): no automatic failover for %s; the running playbook decides"
            % (config["maintenance_file"], failed["name"]), syslog.LOG_WARNING)
        return 0
    started = time.time()
    facts = survey(config, pg_facts)
    try:
        plan = topology.plan_failover(facts, failed_node=failed["name"])
    except topology.Refusal as exc:
        log("failover refused, nothing changed: %s" % exc, syslog.LOG_ERR)
        if is_live_primary(facts[failed["name"]]):
            log("backend %s still answers as primary: attaching it again in pgpool" % args["node_id"])
            start_background("reattach", args["node_id"])
        return 1
    if plan["action"] == "none":
        # Also when pgpool's idea of the primary is stale: the servers are asked, not pgpool.
        log("backend %s (%s) failed, no failover needed: %s" % (args["node_id"], failed["name"], plan["reason"]))
        return 0
    named = by_name(config)
    log("plan: promote %s (timeline, LSN %s), fence %s, then follow %s" % (
        plan["candidate"], topology.wal_position(facts[plan["candidate"]]), ", ".join(plan["fence"]),
        ", ".join(plan["follow"]) or "nobody"))
    fencers = [Fencer(config, named[n], "failover to %s" % plan["candidate"]) for n in plan["fence"]]
    for thread in fencers:
        thread.start()
    seconds = promote(config, postgres, named[plan["candidate"]])
    log("promoted %s in %.3f s (%.3f s after the hook started)" % (plan["candidate"], seconds, time.time() - started))
    # Repoint the other standbys now, not in follow_primary_command: with synchronous
    # replication the new primary's commits wait until one of them streams again.
    followers = [threading.Thread(target=repoint_quietly, args=(config, postgres, named[n], named[plan["candidate"]]))
                 for n in plan["follow"]]
    for thread in followers:
        thread.start()
    for thread in followers:
        thread.join(10)
    finish_fencing(fencers, deadline=time.time() + 1.0)
    log("failover done in %.3f s" % (time.time() - started))
    return 0


def is_live_primary(facts):
    return facts["reachable"] and facts["in_recovery"] is False


def start_background(command, *args):
    """Run `pgha-hook COMMAND ARGS` detached from pgpool, which must not wait for it."""
    subprocess.Popen([sys.executable, os.path.abspath(__file__), command] + [str(a) for a in args],
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, close_fds=True)


def reattach(config, args, timeout=60):
    """Attach a detached primary that still answers, as long as it stays the only primary."""
    from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts
    node = config["nodes"][int(args["node_id"])]
    pcp = pcp_client(config)
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(1)
        facts = survey(config, pg_facts)
        live = [name for name, f in facts.items() if is_live_primary(f)]
        if live != [node["name"]]:
            log("reattach: %s is not the only primary any more (%s); leaving pgpool as it is"
                % (node["name"], ", ".join(live) or "none"), syslog.LOG_WARNING)
            return 1
        try:
            status = pcp.node_info()[int(args["node_id"])]["status"]
            if status in ("up", "waiting"):
                log("reattach: %s is attached in pgpool (%s)" % (node["name"], status))
                return 0
            pcp.attach(args["node_id"])
        except Exception as exc:  # pgpool may still be busy with its failover: try again
            log("reattach: %s not attached yet (%s)" % (node["name"], exc))
    log("reattach: gave up attaching %s after %d s" % (node["name"], timeout), syslog.LOG_ERR)
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
    conn = postgres.connect(conn_params(config, primary, timeout=3))
    try:
        postgres.query(conn, "SELECT pg_create_physical_replication_slot(%s) WHERE NOT EXISTS "
                             "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (node["slot"], node["slot"]))
    finally:
        conn.close()
    conninfo = "host=%s port=%s user=%s application_name=%s" % (
        primary["address"], primary["port"], config["replication_user"], node["slot"])
    conn = postgres.connect(conn_params(config, node, timeout=3))
    try:
        # ALTER SYSTEM writes postgresql.auto.conf, which wins over every included file.
        postgres.query(conn, "ALTER SYSTEM SET primary_conninfo = %s", (conninfo,))
        postgres.query(conn, "ALTER SYSTEM SET primary_slot_name = %s", (node["slot"],))
        postgres.query(conn, "SELECT pg_reload_conf()")
    finally:
        conn.close()


def streams_from(config, postgres, node, primary, timeout):
    conn = postgres.connect(conn_params(config, node, timeout=3))
    try:
        deadline = time.time() + timeout
        while True:
            row = postgres.query_one(conn, "SELECT status, sender_host FROM pg_stat_wal_receiver")
            if row and row["status"] == "streaming" and row["sender_host"] == primary["address"]:
                return True
            if time.time() >= deadline:
                return False
            time.sleep(0.2)
    finally:
        conn.close()


def follow(config, args):
    from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts, postgres
    nodes = config["nodes"]
    node, primary = nodes[int(args["node_id"])], nodes[int(args["new_main_id"])]
    facts = pg_facts.survey_node(conn_params(config, node, timeout=2), local=False)
    if not facts["reachable"] or not facts["in_recovery"]:
        log("follow: %s is %s; leaving it detached (rebuild it with pgha.cluster.rebuild)"
            % (node["name"], "down" if not facts["reachable"] else "a primary"), syslog.LOG_WARNING)
        return 0
    sender = (facts.get("wal_receiver") or {}).get("sender_host")
    if sender != primary["address"]:
        repoint(config, postgres, node, primary)
    if not streams_from(config, postgres, node, primary, config.get("follow_timeout", 30)):
        log("follow: %s does not stream from %s yet; leaving it detached" % (node["name"], primary["name"]),
            syslog.LOG_WARNING)
        return 1
    pcp_client(config).attach(args["node_id"])
    log("follow: %s streams from %s and is attached again" % (node["name"], primary["name"]))
    return 0


def _run_env(argv, env):
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, **env), timeout=30, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def main(argv):
    syslog.openlog("pgha-hook", syslog.LOG_PID)
    commands = {"failover": failover, "follow": follow, "reattach": reattach, "fence": fence_until_done}
    if len(argv) < 3 or argv[1] not in commands:
        log("usage: pgha-hook failover|follow %d %h %p %D %m %H %M %P %r %R %N %S", syslog.LOG_ERR)
        return 2
    config = load_config()
    if argv[1] == "fence":
        args = {"node": argv[2], "reason": " ".join(argv[3:]) or "failover"}
    else:
        args = dict(zip(FIELDS, argv[2:]))
    # One failover at a time on this node; follow runs per node and may overlap.
    with open(config["lock_path"] + "." + argv[1], "a") as lock:
        if argv[1] == "failover":
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return commands[argv[1]](config, args)
        except Exception as exc:  # a hook must report, never crash silently
            log("%s failed: %s: %s" % (argv[1], type(exc).__name__, exc), syslog.LOG_ERR)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
