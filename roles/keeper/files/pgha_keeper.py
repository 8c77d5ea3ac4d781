"""pgha-keeper: pg_keeper's behaviour for a two-node cluster, made safe by an arbiter.

    pgha-keeper [--config FILE] [--check-config]

Every keepalives_time seconds the keeper reads its own server, its peer and the lease row
on the arbiter (a PostgreSQL database on a third host), and carries out what
module_utils/keeper.keeper_step decides:
- on the primary: renew the lease; after keepalives_count beats without a streaming
  standby, record in the lease that the standby may lack commits, then switch to
  asynchronous replication (synchronous_standby_names = '' in postgresql.auto.conf) so
  writes stop waiting; back to synchronous replication once the standby streams again.
- on the standby: after keepalives_count beats without an answering primary, take the lease
  (only from a lease that expired while this standby was synchronous), promote, fence the
  old primary over ssh when it answers, and run after_command (with a timeout).
- two primaries: the one without the lease fences itself, the holder fences the other.
A node that cannot reach the arbiter never promotes itself and never goes asynchronous.
While the maintenance file or a playbook's operation lock exists the keeper takes no
action. Its last decision is kept in state_file (status.yml shows it).

Settings (pg_keeper's names, optionally prefixed "pg_keeper."): node1_conninfo,
node2_conninfo, keepalives_time, keepalives_count, after_command; pgha's own: node,
node1_name, node2_name (the names in the lease and the start guard), arbiter_conninfo,
cluster, after_command_timeout, pg_version, pg_cluster, bindir, datadir, fence_lock_file,
maintenance_file, operation_lock, state_file, bootstrap_file, lib_dir. Passwords come from
~postgres/.pgpass, never from the settings file. Logs go to the journal (stderr).
"""
import json
import os
import subprocess
import sys
import time

DEFAULT_CONFIG = "/etc/pgha/keeper.conf"
ALIASES = {"keepalive_time": "keepalives_time", "keepalive_count": "keepalives_count"}
# The watchdog's deadline while the keeper carries out a decision: a promotion (pg_promote
# waits up to 60 s, then a checkpoint), a fence over ssh (about 15 s), plus after_command
# for as long as after_command_timeout lets it run.
ACTION_SECONDS = 300


def boolean(value):
    words = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
    if value.lower() not in words:
        raise ValueError("not a boolean: %r" % value)
    return words[value.lower()]


# name: (parser, default; None = required)
SETTINGS = {
    "node1_conninfo": (str, None),
    "node2_conninfo": (str, None),
    "keepalives_time": (float, 5.0),
    "keepalives_count": (int, 1),
    "after_command": (str, ""),
    "after_command_timeout": (float, 30.0),
    "node": (int, None),
    "node1_name": (str, "node1"),
    "node2_name": (str, "node2"),
    "arbiter_conninfo": (str, None),
    "cluster": (str, "pgha"),
    "pg_version": (str, None),
    "pg_cluster": (str, "main"),
    "bindir": (str, None),
    "datadir": (str, None),
    "fence_lock_file": (str, "/var/lib/pgha/fenced"),
    "maintenance_file": (str, "/var/lib/pgha/maintenance"),
    "operation_lock": (str, "/var/lib/pgha/operation.lock"),
    "state_file": (str, "/var/lib/pgha/keeper.json"),
    "bootstrap_file": (str, "/var/lib/pgha/bootstrap"),
    "lib_dir": (str, "/usr/local/lib/pgha"),
    "synchronous_mode_strict": (boolean, False),
}


class ConfigError(Exception):
    pass


def split_value(rest):
    """The value of `name = value  # comment`: a quoted string ('' escapes ') or a bare word."""
    rest = rest.strip()
    if not rest.startswith("'"):
        return rest.split("#", 1)[0].strip()
    value, i = [], 1
    while i < len(rest):
        if rest[i] == "'":
            if rest[i + 1:i + 2] == "'":
                value.append("'")
                i += 2
                continue
            tail = rest[i + 1:].strip()
            if tail and not tail.startswith("#"):
                raise ValueError("text after the closing quote: %r" % tail)
            return "".join(value)
        value.append(rest[i])
        i += 1
    raise ValueError("missing closing quote")


def parse_config(text):
    """Settings from postgresql.conf-style lines (name = 'value'); unknown names are errors."""
    found = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, rest = line.partition("=")
        name = name.strip()
        name = name[len("pg_keeper."):] if name.startswith("pg_keeper.") else name
        name = ALIASES.get(name, name)
        if not equals:
            raise ConfigError("line %d: expected name = value, got %r" % (number, line))
        if name not in SETTINGS:
            raise ConfigError("line %d: unknown setting %r (known: %s)" % (number, name, ", ".join(sorted(SETTINGS))))
        try:
            found[name] = SETTINGS[name][0](split_value(rest))
        except ValueError as exc:
            raise ConfigError("line %d: invalid value for %s (%s): %s" % (number, name, SETTINGS[name][0].__name__, exc))
    return complete(found)


def complete(found):
    config = {}
    for name, (unused_parser, default) in SETTINGS.items():
        if name not in found and default is None:
            raise ConfigError("missing setting %s" % name)
        config[name] = found.get(name, default)
    if config["keepalives_time"] <= 0 or config["keepalives_count"] < 1:
        raise ConfigError("keepalives_time must be > 0 and keepalives_count >= 1")
    if config["node"] not in (1, 2):
        raise ConfigError("node must be 1 or 2 (which of node1_conninfo / node2_conninfo is this server)")
    return config


def log(message):
    sys.stderr.write("%s\n" % message)
    sys.stderr.flush()


def conninfo_value(conninfo, key, default=None):
    for item in conninfo.split():
        if item.startswith(key + "="):
            return item[len(key) + 1:]
    if default is None:
        raise ConfigError("no %s= in conninfo %r" % (key, conninfo))
    return default


def conninfo_params(conninfo):
    """libpq keywords of a 'key=value ...' conninfo, as module_utils.postgres takes them."""
    pairs = dict(item.split("=", 1) for item in conninfo.split() if "=" in item)
    names = {"host": "login_host", "port": "login_port", "user": "login_user", "dbname": "login_db",
             "sslmode": "ssl_mode", "sslrootcert": "ca_cert", "channel_binding": "channel_binding"}
    return dict((names[k], v) for k, v in pairs.items() if k in names)


class Keeper:
    """The keeper's I/O: reads facts, asks keeper.keeper_step, carries out its steps."""

    def __init__(self, config, modules, beating=None):
        """beating: watchdog.Watchdog of the unit this keeper runs under (none: no watchdog)."""
        if beating is None:
            from ansible_collections.pgha.cluster.plugins.module_utils import watchdog
            beating = watchdog.Watchdog({})
        self.config, self.beating = config, beating
        self.postgres, self.pg_facts, self.fencing, self.arbiter, self.core, self.markers = modules
        mine, peer = "node%d_conninfo" % config["node"], "node%d_conninfo" % (3 - config["node"])
        self.name = config["node%d_name" % config["node"]]
        self.peer_name = config["node%d_name" % (3 - config["node"])]
        self.peer = dict(conninfo_params(config[peer]), login_db="postgres")
        self.local = dict(conninfo_params(config[mine]), login_unix_socket="/var/run/postgresql", login_host="",
                          login_user="postgres", login_db="postgres", connect_timeout=2, ssl_mode="", ca_cert="",
                          channel_binding="")
        self.port = int(self.local.get("login_port", 5432))
        self.timeout = max(1.0, config["keepalives_time"])
        self.lease_seconds = self.core.lease_seconds(config["keepalives_time"], config["keepalives_count"])
        # A restarted keeper keeps the lease row it read last (keeper.lease_behind) and a claim
        # whose promotion it has not finished.
        self.state = self.arbiter.kept_state(config["state_file"])
        self.last, self.schema_ready = None, False

    # --- facts ---------------------------------------------------------------------------
    def read_local(self):
        """(facts, async override) of this node's server; (None, False) when it does not answer."""
        try:
            conn = self.postgres.connect(self.local)
        except self.postgres.PgConnectError:
            return None, False
        try:
            facts = self.pg_facts.read_facts(conn)
            override = self.postgres.query_one(
                conn, "SELECT count(*) > 0 AS o FROM pg_file_settings WHERE name = 'synchronous_standby_names' "
                      "AND sourcefile LIKE '%%postgresql.auto.conf' AND applied AND setting = ''")["o"]
            return facts, override
        except self.postgres.DRIVER_ERRORS:
            return None, False
        finally:
            conn.close()

    def read_peer(self):
        # libpq waits at least 2 s for a silent host; one beat must not take that long.
        return self.pg_facts.read_node(dict(self.peer, connect_timeout=int(self.timeout)),
                                       min(1.0, self.config["keepalives_time"]))

    def arbiter_conn(self):
        params = self.arbiter.params(conninfo_params(self.config["arbiter_conninfo"]), self.timeout)
        if self.pg_facts.tcp_probe(params["login_host"], params.get("login_port", 5432), self.timeout)[0]:
            return None
        try:
            return self.postgres.connect(params)
        except self.postgres.PgConnectError as exc:
            self.note("arbiter: %s" % exc)
            return None

    def read_lease(self, conn):
        if conn is None:
            return None
        try:
            lease = self.arbiter.read_lease(conn, self.config["cluster"], ensure_schema=not self.schema_ready)
            self.schema_ready = True
            return lease
        except self.postgres.DRIVER_ERRORS as exc:
            self.note("arbiter: %s" % " ".join(str(exc).split()))
            return None

    def paused(self):
        marker, unused_stale = self.markers.pausing_marker([self.config["maintenance_file"],
                                                            self.config["operation_lock"]])
        return bool(marker)

    # --- one beat ----------------------------------------------------------------------------
    def step(self):
        paused = self.paused()
        local, override = self.read_local()
        peer = self.read_peer() if local and not paused else None
        conn = self.arbiter_conn() if local and not paused else None
        try:
            lease = self.read_lease(conn)
            facts = self.core.beat_facts(self.name, local, peer, self.peer_name, override, lease, paused)
            self.state, decision = self.core.keeper_step(facts, self.state, self.config["keepalives_count"],
                                                         self.config["synchronous_mode_strict"])
            with self.beating.allowing(ACTION_SECONDS + self.config["after_command_timeout"]):
                done = self.carry_out(decision["steps"], facts, conn)
        finally:
            if conn is not None:
                conn.close()
        self.report(facts, decision, done)
        if facts["role"] == "primary" and ("renew" in done or "create" in done):
            self.end_bootstrap()

    def end_bootstrap(self):
        """A new cluster's first primary starts without the arbiter (its lease does not exist
        yet); once it holds the lease the start guard asks the arbiter again."""
        try:
            os.remove(self.config["bootstrap_file"])
            log("holds the arbiter's lease: bootstrap over, the start guard asks the arbiter")
        except OSError:
            pass

    def carry_out(self, steps, facts, conn):
        """Run the steps in order; stop at the first that fails. Returns what was done."""
        done = []
        for step in steps:
            ok = getattr(self, "do_" + step[0])(facts, conn, *step[1:])
            if not ok:
                log("step %s failed: the rest (%s) is not done" % (
                    step[0], ", ".join(s[0] for s in steps[len(done) + 1:]) or "nothing"))
                break
            done.append(step[0])
        return done

    def lease_change(self, conn, statement, **values):
        if conn is None:
            return False
        values = dict(values, cluster=self.config["cluster"], name=self.name, seconds=self.lease_seconds)
        try:
            return self.arbiter.change(conn, statement, **values) is not None
        except self.postgres.DRIVER_ERRORS as exc:
            self.note("arbiter: %s" % " ".join(str(exc).split()))
            return False

    def do_create(self, facts, conn, synchronous):
        return self.lease_change(conn, self.arbiter.CREATE, timeline=facts["timeline"], synchronous=synchronous)

    def do_renew(self, facts, conn, synchronous):
        timeline = self.local_timeline() or facts["timeline"]
        return self.lease_change(conn, self.arbiter.RENEW, timeline=timeline, synchronous=synchronous)

    def do_claim(self, facts, conn, term, standby_takeover):
        # On disk before the arbiter has it: a keeper that dies between the claim and the
        # promotion finishes it when it starts again (keeper.keeper_step's claimed_term).
        if standby_takeover and not self.write_state(self.record(facts, "claiming the lease", False, [])):
            log("lease NOT claimed: the claim could not be recorded in %s first" % self.config["state_file"])
            return False
        ok = self.lease_change(conn, self.arbiter.CLAIM, timeline=facts["timeline"], term=term,
                               standby_takeover=standby_takeover)
        log("lease %s (term %s)" % ("taken" if ok else "NOT taken: the arbiter refused", term))
        return ok

    def do_async(self, facts, conn):
        self.local_sql("ALTER SYSTEM SET synchronous_standby_names = ''", "SELECT pg_reload_conf()")
        log("switched to asynchronous replication: writes no longer wait for %s" % self.peer_name)
        return True

    def do_sync(self, facts, conn):
        self.local_sql("ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")
        log("%s streams again: back to synchronous replication" % self.peer_name)
        return True

    def do_promote(self, facts, conn):
        started = time.monotonic()
        promoted = self.local_sql("SELECT pg_promote(true, 60) AS promoted")
        if not promoted or not promoted["promoted"]:
            log("pg_promote did not finish within 60 s")
            return False
        self.local_sql("CHECKPOINT")
        log("promoted in %.2f s" % (time.monotonic() - started))
        return True

    def layout(self):
        return {"version": self.config["pg_version"], "cluster": self.config["pg_cluster"],
                "bindir": self.config["bindir"], "datadir": self.config["datadir"]}

    def do_fence_peer(self, facts, conn):
        host = self.peer["login_host"]
        result, out = self.fencing.fence_over_ssh(host, self.layout(), self.config["fence_lock_file"],
                                                  "keeper on %s fenced its peer" % self.name, 2,
                                                  int(self.peer.get("login_port", 5432)))
        log("fence %s: %s" % (host, ("verified (%s)" % out) if result else "not verified (%s)" % out))
        return True     # the lease already decides; the fence only keeps the old primary from returning

    def do_fence_self(self, facts, conn):
        result, out = self.fencing.fence_locally(self.layout(), self.config["fence_lock_file"],
                                                 "keeper: this primary lost the arbiter's lease", self.port)
        log("fenced this node: %s" % (out if result else "NOT verified: %s" % out))
        return bool(result)

    def do_after_command(self, facts, conn):
        if not self.config["after_command"]:
            return True
        env = dict(os.environ, PGHA_OLD_PRIMARY=self.peer["login_host"])
        try:
            proc = subprocess.run(self.config["after_command"], shell=True, capture_output=True, text=True,
                                  check=False, env=env, timeout=self.config["after_command_timeout"])
            log("after_command exited %d: %s" % (proc.returncode, (proc.stdout + proc.stderr).strip()[:500]))
        except subprocess.TimeoutExpired:
            log("after_command killed after %.0f s" % self.config["after_command_timeout"])
        return True

    def local_sql(self, *statements):
        conn = self.postgres.connect(self.local)
        try:
            row = None
            for sql in statements:
                row = self.postgres.query_one(conn, sql)
            return row
        finally:
            conn.close()

    def local_timeline(self):
        """The timeline right now (a promotion in this beat changed it)."""
        try:
            return self.pg_facts.read_node(self.local, None).get("timeline")
        except self.postgres.DRIVER_ERRORS:
            return None

    # --- what the operator sees --------------------------------------------------------------
    def note(self, message):
        if message != self.last:
            log(message)
            self.last = message

    def report(self, facts, decision, done):
        reason = decision["reason"]
        if decision["steps"] or decision["warn"]:
            self.note("%s: %s%s" % (facts["role"] or "down", reason,
                                    " (done: %s)" % ", ".join(done) if decision["steps"] else ""))
        else:
            self.last = None
        self.write_state(self.record(facts, reason, decision["warn"], done))

    def record(self, facts, reason, warn, done):
        """The keeper's last decision, as status.yml shows it."""
        lease = facts.get("lease")
        return {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "node": self.name, "role": facts["role"],
                "reason": reason, "warn": warn, "done": done, "lease_holder": lease.get("holder") if lease else None,
                "arbiter": "answers" if lease is not None else "does not answer", "synchronous": self.state.get("synced")}

    def write_state(self, record):
        """The state file with what a restarted keeper keeps (the lease row read last, a claim
        not finished); False when it could not be written."""
        record = dict(record, lease_seen=self.state.get("lease_seen"), claimed_term=self.state.get("claimed_term"))
        try:
            with open(self.config["state_file"] + ".tmp", "w") as handle:
                json.dump(record, handle)
            os.replace(self.config["state_file"] + ".tmp", self.config["state_file"])
        except OSError as exc:
            self.note("cannot write %s: %s" % (self.config["state_file"], exc))
            return False
        return True

    def run(self):
        log("pgha-keeper: %s, peer %s, beat every %.1f s, act after %d failed beats, lease %.1f s at the arbiter "
            "%s" % (self.name, self.peer["login_host"], self.config["keepalives_time"],
                    self.config["keepalives_count"], self.lease_seconds,
                    conninfo_params(self.config["arbiter_conninfo"]).get("login_host")))
        while True:
            self.beating.alive()
            started = time.monotonic()
            try:
                self.step()
            except (self.postgres.DRIVER_ERRORS + (self.postgres.PgConnectError,)) as exc:
                log("beat failed: %s" % " ".join(str(exc).split()))
            time.sleep(max(0.0, self.config["keepalives_time"] - (time.monotonic() - started)))


def main(argv):
    path = argv[argv.index("--config") + 1] if "--config" in argv else DEFAULT_CONFIG
    try:
        with open(path) as handle:
            config = parse_config(handle.read())
        for name in ("node1_conninfo", "node2_conninfo", "arbiter_conninfo"):
            conninfo_value(config[name], "host")
    except (OSError, ConfigError) as exc:
        log("pgha-keeper: invalid settings in %s: %s" % (path, exc))
        return 2
    if "--check-config" in argv:
        log("pgha-keeper: %s is valid" % path)
        return 0
    sys.path.insert(0, config["lib_dir"])
    from ansible_collections.pgha.cluster.plugins.module_utils import (
        arbiter, fencing, keeper, markers, pg_facts, postgres, watchdog)
    beating = watchdog.Watchdog()
    beating.alive()
    Keeper(config, (postgres, pg_facts, fencing, arbiter, keeper, markers), beating).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
