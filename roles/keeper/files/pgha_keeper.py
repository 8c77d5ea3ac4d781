"""pgha-keeper: pg_keeper's behaviour for a two-node cluster, next to PostgreSQL on both nodes.

    pgha-keeper [--config FILE] [--check-config]

Every keepalives_time seconds the keeper reads its own server's role and checks the peer:
- on the standby: the primary must answer a query. After keepalives_count failed beats the
  standby promotes itself, unless it is the isolated one (the witness does not answer
  either); it fences the old primary over ssh when it can reach it (lock file + immediate
  stop), switches itself to asynchronous replication (its peer is gone) and runs
  after_command.
- on the primary: the standby must stream. After keepalives_count failed beats the primary
  switches to asynchronous replication (synchronous_standby_names = '' in
  postgresql.auto.conf) so writes stop waiting, but only while the witness answers (an
  isolated primary keeps waiting: no commit is acknowledged that the other side cannot
  see). Once the standby streams again it returns to synchronous replication.
While the maintenance file exists (planned switchover, rebuild) the keeper takes no action.

Settings (pg_keeper's names, optionally prefixed "pg_keeper."): node1_conninfo,
node2_conninfo, keepalives_time, keepalives_count, after_command; pgha's own: node,
witness, pg_version, fence_lock_file, maintenance_file, lib_dir. Passwords come from
~postgres/.pgpass, never from the settings file. Logs go to the journal (stderr).
"""
import os
import subprocess
import sys
import time

DEFAULT_CONFIG = "/etc/pgha/keeper.conf"
ALIASES = {"keepalive_time": "keepalives_time", "keepalive_count": "keepalives_count"}
# name: (parser, default; None = required)
SETTINGS = {
    "node1_conninfo": (str, None),
    "node2_conninfo": (str, None),
    "keepalives_time": (float, 5.0),
    "keepalives_count": (int, 1),
    "after_command": (str, ""),
    "node": (int, None),
    "witness": (str, ""),
    "pg_version": (str, None),
    "fence_lock_file": (str, "/var/lib/pgha/fenced"),
    "maintenance_file": (str, "/var/lib/pgha/maintenance"),
    "lib_dir": (str, "/usr/local/lib/pgha"),
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


class Keeper:
    def __init__(self, config, psycopg2, fencing, pg_facts):
        self.config, self.psycopg2, self.fencing, self.pg_facts = config, psycopg2, fencing, pg_facts
        self.peer = config["node2_conninfo"] if config["node"] == 1 else config["node1_conninfo"]
        self.peer_host = conninfo_value(self.peer, "host")
        self.peer_port = conninfo_value(self.peer, "port", "5432")
        self.failures = 0
        self.timeout = max(1, int(config["keepalives_time"]))

    def query(self, conninfo, sql, timeout=None):
        conn = self.psycopg2.connect(conninfo, connect_timeout=timeout or self.timeout)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchone() if cur.description else None
        finally:
            conn.close()

    def local(self, sql):
        return self.query("host=/var/run/postgresql dbname=postgres", sql, timeout=2)

    def local_role(self):
        try:
            return "standby" if self.local("SELECT pg_is_in_recovery()")[0] else "primary"
        except self.psycopg2.Error:
            return None

    def peer_alive(self, role):
        """The standby asks: does the primary answer? The primary asks: does the standby
        answer and stream? (pg_stat_replication keeps a silent standby listed as streaming
        until wal_sender_timeout, a minute by default.)"""
        # libpq waits at least 2 s for a silent host; one beat must not take that long.
        if self.pg_facts.tcp_refused(self.peer_host, self.peer_port, min(1.0, self.config["keepalives_time"])):
            return False
        try:
            if role == "standby":
                self.query(self.peer + " dbname=postgres", "SELECT 1")
                return True
            row = self.query(self.peer + " dbname=postgres", "SELECT status FROM pg_stat_wal_receiver")
            return bool(row) and row[0] == "streaming"
        except self.psycopg2.Error:
            return False

    def step(self):
        if os.path.exists(self.config["maintenance_file"]):
            self.failures = 0
            return
        role = self.local_role()
        if role is None:
            self.failures = 0  # our own server is down: nothing to guard; never start it here
            return
        if self.peer_alive(role):
            if self.failures:
                log("peer %s answers again" % self.peer_host)
            self.failures = 0
            if role == "primary":
                self.ensure_sync()
            return
        self.failures += 1
        log("%s: peer %s failed beat %d of %d" % (role, self.peer_host, self.failures, self.config["keepalives_count"]))
        if self.failures < self.config["keepalives_count"]:
            return
        if not self.witness_answers():
            log("witness %s does not answer either: this node is the isolated one, no action" % self.config["witness"])
            return
        if role == "standby":
            self.promote()
        else:
            self.ensure_async()

    def witness_answers(self):
        """A TCP connection to HOST:PORT, or an ICMP echo from HOST, within one beat."""
        witness = self.config["witness"]
        if not witness:
            return True
        host, unused_colon, port = witness.partition(":")
        if port:
            return self.pg_facts.tcp_refused(host, port, self.timeout) is None
        return subprocess.run(["ping", "-n", "-q", "-c", "1", "-W", str(self.timeout), host], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False).returncode == 0

    def promote(self):
        log("primary %s is gone: fencing it and promoting this standby" % self.peer_host)
        fenced, out = self.fencing.fence_over_ssh(
            self.peer_host, self.config["pg_version"], self.config["fence_lock_file"], "keeper promoted its peer", 2)
        log("fence %s: %s" % (self.peer_host, out if fenced else "not reachable (%s)" % out))
        started = time.time()
        self.local("SELECT pg_promote(true, 60)")
        log("promoted in %.2f s" % (time.time() - started))
        self.ensure_async()
        self.local("CHECKPOINT")
        self.failures = 0
        if self.config["after_command"]:
            proc = subprocess.run(self.config["after_command"], shell=True, capture_output=True, text=True,
                                  check=False, env=dict(os.environ, PGHA_OLD_PRIMARY=self.peer_host))
            log("after_command exited %d: %s" % (proc.returncode, (proc.stdout + proc.stderr).strip()[:500]))

    def async_override(self):
        return self.local("SELECT count(*) FROM pg_file_settings WHERE name = 'synchronous_standby_names' "
                          "AND sourcefile LIKE '%%postgresql.auto.conf' AND applied")[0] > 0

    def ensure_async(self):
        if not self.async_override():
            self.local("ALTER SYSTEM SET synchronous_standby_names = ''")
            self.local("SELECT pg_reload_conf()")
            log("switched to asynchronous replication: writes no longer wait for %s" % self.peer_host)

    def ensure_sync(self):
        if self.async_override():
            self.local("ALTER SYSTEM RESET synchronous_standby_names")
            self.local("SELECT pg_reload_conf()")
            log("%s streams again: back to synchronous replication" % self.peer_host)

    def run(self):
        log("pgha-keeper: node%d, peer %s, beat every %.1f s, act after %d failed beats, witness %s" % (
            self.config["node"], self.peer_host, self.config["keepalives_time"], self.config["keepalives_count"],
            self.config["witness"] or "none"))
        while True:
            started = time.time()
            try:
                self.step()
            except self.psycopg2.Error as exc:
                log("beat failed: %s" % str(exc).strip().splitlines()[0])
            time.sleep(max(0.0, self.config["keepalives_time"] - (time.time() - started)))


def main(argv):
    path = argv[argv.index("--config") + 1] if "--config" in argv else DEFAULT_CONFIG
    try:
        with open(path) as handle:
            config = parse_config(handle.read())
        conninfo_value(config["node1_conninfo"], "host")
        conninfo_value(config["node2_conninfo"], "host")
    except (OSError, ConfigError) as exc:
        log("pgha-keeper: invalid settings in %s: %s" % (path, exc))
        return 2
    if "--check-config" in argv:
        log("pgha-keeper: %s is valid" % path)
        return 0
    sys.path.insert(0, config["lib_dir"])
    import psycopg2
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing, pg_facts
    Keeper(config, psycopg2, fencing, pg_facts).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
