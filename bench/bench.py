#!/usr/bin/env python3
"""pgha bench: pgha side by side with plain pgpool-II (the baseline) on the same lab.

Run by bin/bench, which brings up a fresh lab first. Measures deploy and status times,
unplanned failover (kill -9 of the primary's postmaster under a fast writer through the
virtual IP) for both systems, power-off and link cut of the primary's node with the
watchdog leader on that node and elsewhere, where one failover of each spends its time;
by flag the health-check detection paths, the switchover write pause, rebuild times by
pg_rewind and pg_basebackup and keeper mode. Writes bench/results/latest.{json,md,png}
and the table into the README.
"""
import argparse
import json
import os
import platform
import re
import sys
import threading
import time
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from conftest import Ansible, lab_vars  # noqa: E402  (first: it puts the built collection on sys.path)
import cluster_probe as probe  # noqa: E402  (the chaos tests' probes, shared)

RESULTS = REPO / "bench" / "results"
CONFIGURE = str(REPO / "bench" / "baseline" / "configure.yml")
# Reads through pgpool count as stale when they miss a row acknowledged this long before
# the read began: normal replay lag (milliseconds) is not staleness, an orphaned standby is.
STALE_AFTER = 1.0
# A failover is settled when every standby follows and reads were fresh this long.
SETTLED = 3.0
DETECTION = {
    # failover_on_backend_error on: the pgpool child serving the writer sees the backend die.
    "backend error": {"failover_on_backend_error": "on"},
    # Only health checks notice (period / timeout / max retries / retry delay).
    "health check 1/1/1/1": {"failover_on_backend_error": "off", "health_check_period": 1,
                             "health_check_timeout": 1, "health_check_max_retries": 1,
                             "health_check_retry_delay": 1},
    "health check 5/30/3/1 (sample)": {"failover_on_backend_error": "off", "health_check_period": 5,
                                       "health_check_timeout": 30, "health_check_max_retries": 3,
                                       "health_check_retry_delay": 1},
}
# Whole-node faults: the primary's node with the watchdog leader on it, and elsewhere.
NODE_FAULTS = (probe.PowerOff(), probe.CutLink())
PLACEMENTS = ("leader", "not leader")
# After a node fault the standbys are watched this long after the first write (the goal is
# 3 s; the baseline has no follow_primary_command and never gets there: a short look shows it).
FOLLOW_WATCH = 10.0
FOLLOW_WATCH_BASELINE = 3.0
# A baseline kill -9 cycle never settles (its standbys keep following the dead primary): it is
# watched this long, not the whole --observe window (its first write comes within a second).
OBSERVE_BASELINE = 6.0
# Seconds a lone pgpool takes to lead once the others stopped (heartbeat deadtime 3 s, wd_interval 1 s).
LEADER_ALONE_SECONDS = 5


def follow_watch(system):
    return FOLLOW_WATCH_BASELINE if system == "baseline" else FOLLOW_WATCH


# One failover's steps, each the first journal line after the fault that matches, on any
# node: pgpool's own log (stderr, in the pgpool2 unit's journal), the pgha hook's syslog
# and the baseline script's logger lines.
PGPOOL_SEES_FAILURE = (r"pgpool\[\d+\]: .*(degenerate backend request|health check failed|failover request|"
                       r"failed to read kind from backend)")
PGPOOL_SEES_PRIMARY = r"pgpool\[\d+\]: .*(find_primary_node: primary node is|failover done)"
COMMAND_STARTS = "failover command starts"
BREAKDOWN = {
    "pgha": (
        ("pgpool sees the backend fail", PGPOOL_SEES_FAILURE),
        (COMMAND_STARTS, r"pgha-hook\[\d+\]: step survey done"),  # less its own "(N s)" since the start
        ("survey done", r"pgha-hook\[\d+\]: step survey done"),
        ("fence done", r"pgha-hook\[\d+\]: step fence .* done"),
        ("promote done", r"pgha-hook\[\d+\]: step promote .* done"),
        ("pgpool sees the new primary", PGPOOL_SEES_PRIMARY),
        # after the detach: in sync mode the first commit waits for a repointed standby
        ("standbys repointed", r"pgha-hook\[\d+\]: step repoint .* done"),
    ),
    "baseline": (
        ("pgpool sees the backend fail", PGPOOL_SEES_FAILURE),
        (COMMAND_STARTS, r"baseline-failover(\[\d+\])?: failed node"),
        ("promote done", r"baseline-failover(\[\d+\])?: promote of"),
        ("pgpool sees the new primary", PGPOOL_SEES_PRIMARY),
    ),
}
# The kill -9 cycle whose failover is broken down, per system (side by side in the report).
BREAKDOWN_CYCLES = (("pgha", "sync", 1), ("baseline", "async", 1))
# Keeper mode: heartbeat every second, act after three misses (the lease at the arbiter,
# the lab's third container, lasts as long).
KEEPER_BEAT = (1, 3)
KEEPER_SETTINGS = {"keeper_keepalives_time": KEEPER_BEAT[0], "keeper_keepalives_count": KEEPER_BEAT[1]}
PGHA_DETECTION = {"failover_on_backend_error": "on", "health_check_period": 1, "health_check_timeout": 1,
                  "health_check_max_retries": 0, "health_check_retry_delay": 1}


def say(text):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), text), flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.ansible = Ansible()
        self.lab = None
        self.results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "failover": [], "node_faults": [],
                        "switchover": [], "rebuild": [], "operations": {}}

    # -- plumbing -------------------------------------------------------------------
    def playbook(self, *args):
        result = self.ansible.playbook(*args)
        if result.returncode != 0:
            raise SystemExit("bench: ansible-playbook %s failed:\n%s" % (" ".join(args), result.stdout[-3000:]))
        return result

    def playbook_with_retry(self, *args):
        """A repair between cycles: tried again once after 10 s (a watchdog still settling)."""
        if self.ansible.playbook(*args).returncode != 0:
            say("  ansible-playbook %s failed; trying again in 10 s" % " ".join(args))
            time.sleep(10)
            self.playbook(*args)

    def timed_playbook(self, *args):
        started = time.time()
        self.playbook(*args)
        return time.time() - started

    def healthy(self):
        """One primary, every standby streaming from it, every backend attached in pgpool."""
        found = probe.wait_for(lambda: probe.primaries(probe.survey(self.lab)), 60)
        if len(found) != 1:
            raise SystemExit("bench: expected one primary, found %s" % found)
        if not probe.wait_for(lambda: probe.followers_ok(self.lab, found[0]), 60):
            self.playbook("pgha.cluster.follow_primary")
        if not probe.wait_for(self.all_attached, 90, 1):
            raise SystemExit("bench: pgpool has not attached every node")
        return found[0]

    def all_attached(self):
        try:
            return probe.pool_attached(self.lab, list(self.lab["nodes"]))
        except psycopg2.Error:  # pgpool restarting, the VIP moving
            return False

    def configure_pgpool(self, failover, detection):
        say("pgpool: %s failover path, detection by %s" % (failover, detection))
        settings = dict(PGHA_DETECTION, **DETECTION[detection])
        self.playbook(CONFIGURE, "-e", json.dumps({"bench_failover": failover, "bench_pgpool_settings": settings}))
        self.healthy()

    def with_fence_device(self):
        """The lab's power fence as pgpool_fence_command (bin/lab fence-device); the next
        pgha.cluster.site run (set_synchronous) takes it away again."""
        command = probe.lab_cli("fence-device").strip()
        say("pgha.cluster.site with pgpool_fence_command=%s (the lab's power fence)" % command)
        self.playbook("pgha.cluster.site", "-e", json.dumps({"pgpool_fence_command": json.loads(command)}))
        self.healthy()

    def set_synchronous(self, mode):
        say("pgha.cluster.site with pgha_synchronous_mode=%s" % mode)
        self.playbook("pgha.cluster.site", "-e", "pgha_synchronous_mode=%s" % mode)
        self.healthy()

    # -- stages ---------------------------------------------------------------------
    def deploy(self):
        say("fresh lab: bin/lab down, bin/lab up (3 nodes)")
        probe.lab_cli("down")
        probe.lab_cli("up", "--distro", self.args.distro)
        self.lab = lab_vars()
        ops = self.results["operations"]
        say("deploying 3 bare nodes with pgha.cluster.site")
        ops["deploy (3 bare nodes)"] = self.timed_playbook("pgha.cluster.site")
        say("pgha.cluster.status")
        ops["status.yml"] = self.timed_playbook("pgha.cluster.status")
        for name, seconds in ops.items():
            say("  %s: %.1f s" % (name, seconds))

    def prepare_table(self, primary=None):
        """The writer's table, created through pgpool (or on the given primary)."""
        conn = probe.node_connect(self.lab, primary) if primary else probe.pool_connect(self.lab)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS pgha_chaos (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        conn.close()

    def failover_series(self, system, replication, detection, cycles):
        say("%s, %s replication, detection by %s: %d kill -9 cycles" % (system, replication, detection, cycles))
        runs = []
        for cycle in range(1, cycles + 1):
            run = self.kill_cycle(system, breakdown=(system, replication, cycle) in BREAKDOWN_CYCLES)
            say("  cycle %d: %s -> %s, fault->write %s (per-connection writer %s), lost %d, all following %s, "
                "stale reads until %s, %d commits/s; cycle %.0f s (repair %.0f s)" % (
                    cycle, run["old_primary"], run["new_primary"], seconds(run["to_write"]),
                    seconds(run["to_write_fresh"]), run["lost"], seconds(run["following"]),
                    seconds(run["stale_until"]), run["rate"], run["cycle_seconds"], run["repair_seconds"]))
            runs.append(run)
        self.results["failover"].append({"system": system, "replication": replication, "detection": detection,
                                         "runs": runs})

    def kill_cycle(self, system, breakdown=False):
        started = time.time()
        observe = min(self.args.observe, OBSERVE_BASELINE) if system == "baseline" else self.args.observe
        old = self.healthy()
        old_address = self.lab["nodes"][old]
        writer = probe.Writer(self.lab, pause=0)
        # What most applications see after an error: a new connection for every commit (10/s).
        fresh = probe.FreshWriter(self.lab, pause=0.1)
        reader = StaleReader(self.lab, writer)
        writer.start()
        fresh.start()
        reader.start()
        probe.wait_for(lambda: len(writer.acked) > 100, 20)
        time.sleep(1)
        rate = rate_of(writer.acked)
        fault_at = probe.KillPostmaster().inject(old)
        first = probe.wait_for(lambda: [t for _, t, srv in writer.acked if t > fault_at and srv != old_address],
                               observe, 0.02)
        first_fresh = probe.wait_for(lambda: sorted(t for _, t, srv in fresh.acked
                                                    if t > fault_at and srv != old_address),
                                     max(1.0, fault_at + observe - time.time()), 0.02)
        new = probe.wait_for(lambda: [n for n in probe.primaries(probe.survey(self.lab)) if n != old], 10)
        following = None
        if new and probe.wait_for(lambda: probe.followers_ok(self.lab, new[0]), fault_at + observe - time.time()):
            following = time.time() - fault_at
        # Watch the whole window unless every standby follows and reads have been fresh for
        # SETTLED seconds since (a system that never gets there is watched to the end).
        if following is not None:
            probe.wait_for(lambda: reader.fresh_for(SETTLED, fault_at + following),
                           fault_at + observe - time.time(), 0.2)
        else:
            time.sleep(max(0.0, fault_at + observe - time.time()))
        reader.ended_at = time.time()
        for thread in (writer, fresh, reader):
            thread.stop.set()
        for thread in (writer, fresh, reader):
            thread.join(10)
        now_primaries = probe.primaries(probe.survey(self.lab))
        if len(now_primaries) != 1:
            raise SystemExit("bench: %s left %d primaries: %s" % (system, len(now_primaries), now_primaries))
        run = {"old_primary": old, "new_primary": now_primaries[0], "rate": rate,
               "to_write": (first[0] - fault_at) if first else None, "following": following,
               "to_write_fresh": (first_fresh[0] - fault_at) if first_fresh else None,
               "lost": probe.missing_acked_rows(self.lab, now_primaries[0], writer.acked + fresh.acked),
               "stale_until": reader.stale_until(fault_at)}
        if breakdown:
            self.results.setdefault("breakdowns", {})[system] = self.failover_breakdown(system, fault_at, first,
                                                                                        first_fresh)
        return self.repaired(run, system, old, started)

    def failover_breakdown(self, system, fault_at, first, first_fresh):
        """When each step of the failover ended, in seconds after the fault, from the journals."""
        lines = []
        for node in self.lab["nodes"]:
            out = probe.lab_exec(node, "journalctl -o short-unix --no-pager --since @%d" % int(fault_at - 1)).stdout
            lines += [(float(line.split()[0]), node, line) for line in out.splitlines() if line[:1].isdigit()]
        lines.sort()
        steps = [("fault (kill -9 of the postmaster)", 0.0, "")]
        for label, pattern in BREAKDOWN[system]:
            found = next(((t, node, line) for t, node, line in lines if t >= fault_at and re.search(pattern, line)),
                         None)
            if found and (system, label) == ("pgha", COMMAND_STARTS):
                since_start = re.search(r"\(([\d.]+) s\)\s*$", found[2])
                found = (found[0] - float(since_start.group(1)), found[1], found[2]) if since_start else None
            steps.append((label, (found[0] - fault_at) if found else None, found[1] if found else ""))
        steps.append(("first write, persistent session", (first[0] - fault_at) if first else None, ""))
        steps.append(("first write, new connection", (first_fresh[0] - fault_at) if first_fresh else None, ""))
        for label, at, node in steps:
            say("  breakdown (%s): %-34s %s %s" % (system, label, seconds(at), node))
        return [{"step": label, "seconds": at, "node": node} for label, at, node in steps]

    # -- whole-node faults ------------------------------------------------------------
    def node_fault_series(self, system, replication, cycles):
        """Each fault's cycles, with the watchdog leader on the primary's node and elsewhere.
        Each cycle takes the placement the last one left when that series still needs cycles:
        moving the leader (a pgpool restart on two nodes and a new election) is the slowest
        part of a cycle."""
        for fault in NODE_FAULTS:
            say("%s, %s replication: %s of the primary's node, watchdog leader %s: %d cycles each" % (
                system, replication, fault.name, " / ".join(
                    "on it" if p == "leader" else "elsewhere" for p in self.args.placements), cycles))
            runs = {placement: [] for placement in self.args.placements}
            while any(len(done) < cycles for done in runs.values()):
                placement = self.placement_now(runs, cycles)
                run = self.node_cycle(system, fault, placement)
                runs[placement].append(run)
                say("  cycle %d, leader %s: %s -> %s, fault->write %s (per-connection writer %s), standbys "
                    "follow %s after it, lost %d; cycle %.0f s (repair %.0f s)" % (
                        len(runs[placement]), "on it" if placement == "leader" else "elsewhere",
                        run["old_primary"], run["new_primary"], seconds(run["to_write"]),
                        seconds(run["to_write_fresh"]), seconds(run["following_after_write"]), run["lost"],
                        run["cycle_seconds"], run["repair_seconds"]))
            for placement in self.args.placements:
                self.results["node_faults"].append({"system": system, "replication": replication,
                                                    "fault": fault.name, "placement": placement,
                                                    "runs": runs[placement]})

    def placement_now(self, runs, cycles):
        """The placement to run next: the one the lab has now if its series needs cycles."""
        holders = probe.vip_holders(self.lab)
        primaries = probe.primaries(probe.survey(self.lab))
        if len(holders) == 1 and len(primaries) == 1:
            now = "leader" if holders == primaries else "not leader"
            if now in runs and len(runs[now]) < cycles:
                return now
        return next(p for p in self.args.placements if len(runs[p]) < cycles)

    def place_leader(self, primary, on_primary):
        """Make the watchdog leader the primary's node, or another one: stop pgpool on every
        other node (the target, alone, leads), then start them again (they join the leader;
        a joining pgpool never takes the lead over, whatever its wd_priority)."""
        target = primary if on_primary else sorted(n for n in self.lab["nodes"] if n != primary)[0]
        for _ in range(3):
            holders = probe.wait_for(lambda: probe.vip_holders(self.lab), 30)
            if len(holders) == 1 and (holders[0] == primary) == on_primary:
                return holders[0]
            others = [n for n in self.lab["nodes"] if n != target]
            for node in others:
                probe.lab_exec(node, "systemctl stop pgpool2")
            time.sleep(LEADER_ALONE_SECONDS)
            for node in others:
                probe.lab_exec(node, "systemctl start pgpool2")
            if not probe.wait_for(lambda: probe.healthy_watchdog(self.ansible, self.lab, len(self.lab["nodes"])), 90, 1):
                raise SystemExit("bench: the watchdog did not settle after moving its leader")
            self.healthy()
        raise SystemExit("bench: could not place the watchdog leader %s %s" % ("on" if on_primary else "off", primary))

    def node_cycle(self, system, fault, placement):
        started = time.time()
        old = self.healthy()
        leader = self.place_leader(old, placement == "leader")
        old_address = self.lab["nodes"][old]
        writer = probe.Writer(self.lab, pause=0.01)
        fresh = probe.FreshWriter(self.lab, pause=0.1)
        writer.start()
        fresh.start()
        probe.wait_for(lambda: len(writer.acked) > 50 and fresh.acked, 20)
        fault_at = fault.inject(old)
        try:
            first_fresh = probe.wait_for(lambda: sorted(t for _, t, srv in fresh.acked
                                                        if t > fault_at and srv != old_address),
                                         self.args.node_observe, 0.05)
            first = probe.wait_for(lambda: [t for _, t, srv in writer.acked if t > fault_at and srv != old_address],
                                   max(1.0, fault_at + self.args.node_observe - time.time()), 0.05)
            new = probe.wait_for(lambda: [n for n in probe.primaries(probe.survey(self.lab)) if n != old], 10)
            following = None
            watch = (first_fresh[0] if first_fresh else time.time()) + follow_watch(system) - time.time()
            if new and probe.wait_for(lambda: probe.followers_ok(self.lab, new[0]), max(1.0, watch)):
                following = time.time() - fault_at
            time.sleep(1)
        finally:
            for thread in (writer, fresh):
                thread.stop.set()
            for thread in (writer, fresh):
                thread.join(10)
            restore(fault, old)
        # A baseline that promoted beside a cut-off primary has two once the link heals.
        primaries_after_heal = len(probe.wait_for(lambda: probe.primaries(probe.survey(self.lab)), 10))
        if not new:
            raise SystemExit("bench: %s: no new primary after the %s of %s" % (system, fault.name, old))
        to_fresh = (first_fresh[0] - fault_at) if first_fresh else None
        run = {"old_primary": old, "new_primary": new[0], "leader": leader, "rate": rate_of(writer.acked),
               "to_write": (first[0] - fault_at) if first else None, "to_write_fresh": to_fresh,
               "following_after_write": (following - to_fresh) if following and to_fresh else None,
               "primaries_after_heal": primaries_after_heal,
               "lost": probe.missing_acked_rows(self.lab, new[0], writer.acked + fresh.acked)}
        return self.repaired(run, system, old, started)

    def repaired(self, run, system, old, started):
        """The run, once the old primary is a standby again, with the cycle's and the repair's times."""
        repair_started = time.time()
        self.repair(system, old)
        return dict(run, cycle_seconds=round(time.time() - started, 1),
                    repair_seconds=round(time.time() - repair_started, 1))

    def repair(self, system, old):
        if system == "baseline":
            # The sample setup leaves the other standby on the old timeline, and a cut-off old
            # primary running beside the new one after the heal: pgha repairs both, once the
            # watchdog settled (its pgpools cancel a failback while they disagree on the leader).
            probe.lab_exec(old, "systemctl stop 'postgresql@*'")
            probe.wait_for(lambda: probe.healthy_watchdog(self.ansible, self.lab, len(self.lab["nodes"])), 90, 1)
            self.playbook_with_retry("pgha.cluster.follow_primary")
        self.playbook_with_retry("pgha.cluster.rebuild", "-e", "target=%s" % old)

    def switchovers(self, cycles):
        say("pgha.cluster.switchover: %d cycles under the writer" % cycles)
        for cycle in range(1, cycles + 1):
            old = self.healthy()
            target = sorted(n for n in self.lab["nodes"] if n != old)[0]
            writer = probe.Writer(self.lab, pause=0)
            writer.start()
            probe.wait_for(lambda: len(writer.acked) > 100, 20)
            started = time.time()
            self.playbook("pgha.cluster.switchover", "-e", "candidate=%s" % target)
            playbook = time.time() - started
            time.sleep(1)
            writer.stop.set()
            writer.join(10)
            during = [t for _, t, _ in writer.acked if t >= started]
            pause = max(b - a for a, b in zip(during, during[1:])) if len(during) > 1 else playbook
            run = {"from": old, "to": target, "pause": pause, "playbook": playbook,
                   "lost": probe.missing_acked_rows(self.lab, target, writer.acked)}
            say("  cycle %d: %s -> %s, write pause %.2f s, playbook %.1f s, lost %d" % (
                cycle, old, target, pause, playbook, run["lost"]))
            self.results["switchover"].append(run)

    def rebuilds(self, sizes_mb):
        for size in sizes_mb:
            primary = self.healthy()
            say("filling the database to %d MB" % size)
            fill_database(self.lab, primary, size)
            for method, extra in (("pg_rewind", []), ("pg_basebackup", ["-e", "basebackup=true"])):
                old = self.healthy()
                probe.KillPostmaster().inject(old)
                probe.wait_for(lambda: [n for n in probe.primaries(probe.survey(self.lab)) if n != old], 30)
                started = time.time()
                output = self.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old, *extra).stdout
                took = time.time() - started
                used, copy = re.search(r"rebuilt by (\S+) \(data copy ([\d.]+) s\)", output).groups()
                if used != method:
                    raise SystemExit("bench: rebuild of %s used %s, not %s" % (old, used, method))
                say("  %d MB: rebuild of the old primary %s by %s: %.1f s (data copy %s s)" % (
                    size, old, method, took, copy))
                self.results["rebuild"].append({"size_mb": size, "method": method, "seconds": took,
                                                "copy_seconds": float(copy), "database_mb": database_mb(self.lab)})
        drop_fill(self.lab, self.healthy())

    def run(self):
        started = time.time()
        if self.args.reuse_lab:
            self.lab = lab_vars()
        else:
            self.deploy()
        self.prepare_table()
        cycles, other = self.args.cycles, self.args.other_cycles
        # The inventory's synchronous mode first (pgha's own settings), then asynchronous
        # for the side by side series: the baseline runs as the sample sets it up (a promoted
        # node with the old synchronous_standby_names and no follower would never commit).
        self.configure_pgpool("pgha", "backend error")
        self.failover_series("pgha", "sync", "backend error", cycles)
        self.switchovers(other)
        self.rebuilds(self.args.sizes)
        self.node_fault_series("pgha", "sync", self.args.node_cycles)
        if self.args.fence_cycles:
            self.with_fence_device()
            self.node_fault_series("pgha + fence device", "sync", self.args.fence_cycles)
        self.set_synchronous("off")
        self.configure_pgpool("baseline", "backend error")
        self.failover_series("baseline", "async", "backend error", cycles)
        self.node_fault_series("baseline", "async", self.args.node_cycles)
        self.configure_pgpool("pgha", "backend error")
        self.failover_series("pgha", "async", "backend error", cycles)
        for detection in list(DETECTION)[1:] if self.args.detection_cycles else ():
            for system in ("pgha", "baseline"):
                self.configure_pgpool(system, detection)
                self.failover_series(system, "async", detection, self.args.detection_cycles)
        if self.args.keeper_cycles:
            self.keeper_series(self.args.keeper_cycles)
        self.results["bench_seconds"] = time.time() - started
        self.results.setdefault("settings", settings_of(self.args, self.lab))
        write_results(self.results)

    # -- keeper mode --------------------------------------------------------------------
    def keeper_series(self, cycles):
        """Two nodes guarded by the keeper: kill -9 of the primary, the standby promotes
        itself after keepalives_time x keepalives_count; a writer with both addresses and
        target_session_attrs=read-write finds it."""
        say("keeper mode: fresh 2-node lab (bin/lab up --mode keeper), keepalives %d s x %d" % KEEPER_BEAT)
        self.results["settings"] = settings_of(self.args, self.lab)  # the pgpool lab's versions
        probe.lab_cli("down")
        probe.lab_cli("up", "--distro", self.args.distro, "--mode", "keeper")
        self.lab = lab_vars()
        started = time.time()
        self.playbook("pgha.cluster.site", "-e", json.dumps(KEEPER_SETTINGS))
        self.results["operations"]["deploy (2 bare nodes, keeper mode)"] = time.time() - started
        self.prepare_table(self.keeper_healthy())
        runs = []
        for cycle in range(1, cycles + 1):
            run = self.keeper_cycle()
            say("  cycle %d: %s -> %s, fault->write %s, lost %d" % (
                cycle, run["old_primary"], run["new_primary"], seconds(run["to_write"]), run["lost"]))
            runs.append(run)
        self.results["keeper"] = {"budget": KEEPER_BEAT[0] * KEEPER_BEAT[1], "runs": runs}
    def keeper_healthy(self):
        found = probe.wait_for(lambda: probe.primaries(probe.survey(self.lab)), 60)
        if len(found) != 1 or not probe.wait_for(lambda: probe.followers_ok(self.lab, found[0]), 60):
            raise SystemExit("bench: keeper mode: expected one primary and a streaming standby, found %s" % found)
        return found[0]

    def keeper_cycle(self):
        old = self.keeper_healthy()
        old_address = self.lab["nodes"][old]
        writer = probe.Writer(self.lab, host=",".join(self.lab["nodes"].values()), port=5432, pause=0,
                              target_session_attrs="read-write")
        writer.start()
        probe.wait_for(lambda: len(writer.acked) > 100, 20)
        rate = rate_of(writer.acked)
        fault_at = probe.KillPostmaster().inject(old)
        first = probe.wait_for(lambda: [t for _, t, srv in writer.acked if t > fault_at and srv != old_address],
                               self.args.observe, 0.02)
        time.sleep(1)
        writer.stop.set()
        writer.join(10)
        now_primaries = probe.primaries(probe.survey(self.lab))
        if len(now_primaries) != 1:
            raise SystemExit("bench: keeper mode left %d primaries: %s" % (len(now_primaries), now_primaries))
        run = {"old_primary": old, "new_primary": now_primaries[0], "rate": rate,
               "to_write": (first[0] - fault_at) if first else None,
               "lost": probe.missing_acked_rows(self.lab, now_primaries[0], writer.acked)}
        self.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old)
        return run


def restore(fault, node):
    """End the fault; a node that a fence device powered off is powered on instead."""
    state = [line.split()[2] for line in probe.lab_cli("status").splitlines() if line.split()[:1] == [node]]
    if state and state[0] != "running":
        probe.lab_cli("poweron", node)
    else:
        fault.restore(node)


class StaleReader(threading.Thread):
    """New sessions through pgpool (load balancing picks a backend per session), each
    reading max(id): records when a read missed a row acknowledged before it began."""

    def __init__(self, lab, writer):
        super().__init__(daemon=True)
        self.lab, self.writer, self.stop, self.samples = lab, writer, threading.Event(), []
        self.ended_at = float("inf")  # when the observation ended (set by the cycle)

    def run(self):
        while not self.stop.is_set():
            started = time.time()
            wanted = [i for i, t, _ in self.writer.acked[-2000:] if t < started - STALE_AFTER]
            try:
                conn = psycopg2.connect(host=self.lab["vip"], port=9999, user="pgha_admin", dbname="postgres",
                                        password=self.lab["pgha_admin_password"], connect_timeout=2)
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT max(id) FROM pgha_chaos")
                        seen = cur.fetchone()[0] or 0
                finally:
                    conn.close()
            except psycopg2.Error:
                time.sleep(0.05)
                continue
            if wanted:
                self.samples.append((started, seen < wanted[-1]))
            time.sleep(0.05)

    def fresh_for(self, seconds, after):
        """Every read of the last `seconds`, all begun after `after`, was fresh (and there were some)."""
        since = time.time() - seconds
        recent = [is_stale for t, is_stale in self.samples if t >= since]
        return since >= after and bool(recent) and not any(recent)

    def stale_until(self, fault_at):
        """Seconds from the fault to the last stale read; "never" when reads were still
        stale during the last SETTLED seconds of the observation."""
        stale = [t for t, is_stale in self.samples if is_stale and fault_at < t <= self.ended_at]
        if not stale:
            return 0.0
        if stale[-1] > self.ended_at - SETTLED:
            return "never"
        return stale[-1] - fault_at


def rate_of(acked):
    recent = [t for _, t, _ in acked[-500:]]
    return int(len(recent) / (recent[-1] - recent[0])) if len(recent) > 1 and recent[-1] > recent[0] else 0


def database_mb(lab):
    primary = probe.primaries(probe.survey(lab))[0]
    return int(probe.node_sql(lab, primary, "SELECT pg_database_size('postgres') / 1048576")[0][0])


def fill_database(lab, primary, size_mb):
    conn = probe.node_connect(lab, primary)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_fill (id bigserial PRIMARY KEY, payload text)")
        while True:
            cur.execute("SELECT pg_database_size('postgres') / 1048576")
            if cur.fetchone()[0] >= size_mb:
                break
            cur.execute("INSERT INTO bench_fill (payload) SELECT repeat(md5(g::text), 6) "
                        "FROM generate_series(1, 100000) g")
        cur.execute("CHECKPOINT")
    conn.close()


def drop_fill(lab, primary):
    """The failover series after the rebuilds run on a small database again."""
    probe.node_sql(lab, primary, "DROP TABLE IF EXISTS bench_fill")
    probe.node_sql(lab, primary, "CHECKPOINT")


def seconds(value):
    if value is None:
        return "never"
    return value if isinstance(value, str) else "%.2f s" % value


def settings_of(args, lab):
    versions = probe.lab_exec("pg1", "psql --version | head -1; dpkg-query -W -f '${Version}' pgpool2").stdout
    return {"machine": "%s, %d cores, %s" % (platform.node(), os.cpu_count(), platform.platform()),
            "versions": " / ".join(line.strip() for line in versions.splitlines() if line.strip()),
            "distro": args.distro, "cycles": args.cycles, "other_cycles": args.other_cycles,
            "detection_cycles": args.detection_cycles,
            "node_cycles": args.node_cycles, "fence_cycles": args.fence_cycles,
            "observe_s": args.observe, "nodes": len(lab["nodes"])}


def write_results(results):
    import report
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    report.write_all(results, RESULTS, REPO / "README.md")
    say("results: %s" % RESULTS)


def parse(argv):
    parser = argparse.ArgumentParser(prog="bin/bench", description=__doc__.splitlines()[0])
    # The defaults are what the speed issue asks for in one run (kill -9, power-off and link cut
    # side by side, 5 cycles each) on a fresh lab, within its 45 minutes; switchover, rebuild and
    # the older series are asked for by name.
    parser.add_argument("--cycles", type=int, default=5, help="kill -9 cycles per backend-error series")
    parser.add_argument("--other-cycles", type=int, default=0, help="switchover cycles (0: none)")
    parser.add_argument("--detection-cycles", type=int, default=0,
                        help="cycles per health-check detection series, each system (0: none)")
    parser.add_argument("--keeper-cycles", type=int, default=0, help="kill -9 cycles in keeper mode (0: none)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="rebuild sizes in MB (none by default)")
    parser.add_argument("--node-cycles", type=int, default=5,
                        help="cycles per power-off and link-cut series (leader and not leader, each system)")
    parser.add_argument("--fence-cycles", type=int, default=0,
                        help="cycles per node-fault series with the lab's power fence as fence_command (0: none)")
    parser.add_argument("--observe", type=float, default=15.0, help="seconds each kill -9 failover is watched")
    parser.add_argument("--node-observe", type=float, default=60.0, help="seconds each node fault is watched")
    parser.add_argument("--distro", default="bookworm", choices=("bookworm", "trixie"))
    parser.add_argument("--reuse-lab", action="store_true", help="use the deployed lab as it is (no deploy times)")
    parser.add_argument("--quick", action="store_true",
                        help="a quick look on the deployed lab: kill -9 twice per series, each node fault once "
                             "with the watchdog leader elsewhere, with the power fence too if --fence-cycles is "
                             "given (under 10 minutes without it)")
    args = parser.parse_args(argv)
    args.placements = PLACEMENTS
    if args.quick:
        args.reuse_lab, args.cycles, args.other_cycles, args.sizes = True, 2, 0, []
        args.node_cycles, args.keeper_cycles, args.detection_cycles = 1, 0, 0
        args.fence_cycles = min(args.fence_cycles, 1)
        args.placements = ("not leader",)
    return args


def main(argv):
    bench = Bench(parse(argv))
    try:
        bench.run()
    except BaseException:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "partial.json").write_text(json.dumps(bench.results, indent=1, sort_keys=True) + "\n")
        say("stopped early; what was measured is in %s" % (RESULTS / "partial.json"))
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
