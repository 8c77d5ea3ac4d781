"""A deterministic simulation of keeper mode: two PostgreSQL nodes, their keepers, the arbiter.

Simulated: each node's server (role, timeline, WAL as unique entries, WAL receiver, the
asynchronous override, fence lock), its keeper's beat (own clock rate and phase), the
arbiter's lease row with compare-and-set and expiry on the arbiter's clock, a network
where any pair of {n1, n2, arbiter, client} can be cut, a client that commits to every
primary it reaches, crashes, power loss, clean stops, restarts, steps of the arbiter's
clock, the arbiter's database restored from an earlier backup (named schedules), a standby whose WAL
receiver breaks while the primary still answers, rebuilds. The real code decides:
keeper.beat_facts and keeper.keeper_step (each beat), safety.start_decision with the
arbiter's lease (each start).

Invariants: never two nodes acknowledging writes in the same moment; never asynchronous
with pgha_synchronous_mode_strict; no acknowledged
commit missing from a promoted node (none at all: a standby that may lack commits never
takes the lease); data directories moved aside, never dropped; once every fault is
repaired, a primary takes writes within LIVENESS seconds.
"""
import random

from ansible_collections.pgha.cluster.plugins.module_utils import keeper, safety
import sim
from sim import Violation, rebuild_refused

TICK = 0.1
BEAT = 1.0             # keepalives_time
COUNT = 3              # keepalives_count
LIVENESS = 60.0
SETTLE = 5.0
ARBITER, CLIENT = "arbiter", "client"


class Policy:
    keeper_step = staticmethod(keeper.keeper_step)
    start_refusal = staticmethod(keeper.start_refusal)


class Node:
    def __init__(self, name, rate, phase):
        self.name, self.rate, self.phase = name, rate, phase
        self.powered = self.running = True
        self.primary = False
        self.timeline = 1
        self.wal = [("init",)]
        self.follows = None
        self.receiver_up = self.receiver_broken = False
        self.async_override = False
        self.fence_lock = False
        self.state = {}
        self.dies_midway = False        # the keeper process dies in the middle of its next decision
        self.moved_aside = []
        self.start_retry_until = None

    def restarted_state(self):
        """A keeper that starts again keeps only what its state file holds: the latest change of
        the lease row it read and a claim it has not finished."""
        return dict((k, v) for k, v in self.state.items() if k in ("lease_seen", "claimed_term"))


class KeeperWorld:
    def __init__(self, seed, policy=None, strict=False):
        self.rng = random.Random(seed)
        self.policy = policy or Policy()
        self.strict = strict            # pgha_synchronous_mode_strict: never asynchronous
        self.t, self.ticks = 0.0, 0
        self.names = ["n1", "n2"]
        self.nodes = dict((n, Node(n, self.rng.uniform(0.96, 1.04), self.rng.randint(0, 9))) for n in self.names)
        self.nodes["n1"].primary = True
        self.nodes["n2"].follows = "n1"
        self.arbiter_up, self.lease = True, None     # lease: holder, term, timeline, expires, synchronous, renewed, version
        self.arbiter_backup = None                   # a copy of the lease row (None: no row yet)
        self.arbiter_offset = 0.0                    # the arbiter's clock: self.t + this
        self.cut = set()
        self.timeline, self.acked, self.next_commit, self.dir_count = [], [], 0, 2

    def log(self, text):
        self.timeline.append("%7.2f %s" % (self.t, text))

    def link(self, a, b):
        online = dict((n, self.nodes[n].powered) for n in self.names)
        online[ARBITER], online[CLIENT] = self.arbiter_up, True
        return online[a] and online[b] and (a == b or frozenset((a, b)) not in self.cut)

    def peer(self, name):
        return [n for n in self.names if n != name][0]

    # --- events ---------------------------------------------------------------------------
    def apply(self, event):
        self.log("EVENT %s" % " ".join(str(e) for e in event))
        getattr(self, "ev_" + event[0])(*event[1:])

    def ev_crash(self, name):
        self.nodes[name].running = False

    def ev_poweroff(self, name):
        node = self.nodes[name]
        node.powered = node.running = node.receiver_up = False
        node.state, node.start_retry_until = node.restarted_state(), None

    def ev_poweron(self, name):
        if not self.nodes[name].powered:
            self.nodes[name].powered = True
            self.request_start(name)

    def ev_start(self, name):
        if self.nodes[name].powered and not self.nodes[name].running:
            self.request_start(name)

    def ev_stop(self, name):
        self.nodes[name].running = False

    def ev_keeper_dies(self, name):
        self.nodes[name].dies_midway = True

    def ev_cut(self, a, b):
        self.cut.add(frozenset((a, b)))

    def ev_isolate(self, name):
        self.cut.update(frozenset((name, o)) for o in self.names + [ARBITER, CLIENT] if o != name)

    def ev_heal(self):
        self.cut.clear()

    def ev_arbiter_down(self):
        self.arbiter_up = False

    def ev_arbiter_up(self):
        self.arbiter_up = True

    def ev_arbiter_backup(self):
        self.arbiter_backup = ("row", dict(self.lease) if self.lease else None)

    def ev_arbiter_restore(self):
        """The arbiter's database restored from the backup (its row goes back in time)."""
        if self.arbiter_backup:
            self.lease = dict(self.arbiter_backup[1]) if self.arbiter_backup[1] else None

    def ev_arbiter_clock(self, seconds):
        """The arbiter's clock steps (NTP, a VM resumed, a move to another host)."""
        self.arbiter_offset += seconds

    def arbiter_clock(self):
        return self.t + self.arbiter_offset

    def ev_break_replication(self, name):
        self.nodes[name].receiver_broken = True

    def ev_fix_replication(self, name):
        self.nodes[name].receiver_broken = False

    def ev_switchover(self, name):
        """switchover.yml to `name`: with the keepers paused, the primary stops cleanly, `name`
        (a streaming standby) is promoted, the old primary is rewound to follow it (atomic here)."""
        old, new = self.nodes[self.peer(name)], self.nodes[name]
        if not (old.running and old.primary and new.running and new.receiver_up and self.link(old.name, name)):
            return
        new.wal = list(old.wal)
        new.primary, new.follows, new.receiver_up, new.async_override = True, None, False, False
        new.timeline += 1
        new.wal.append(("promote", name, new.timeline))
        old.primary, old.follows, old.async_override = False, name, False
        old.wal, old.timeline = list(new.wal), new.timeline - 1
        self.log("switchover: %s promoted (timeline %d), %s follows it" % (name, new.timeline, old.name))

    def ev_rebuild(self, name):
        """rebuild.yml: the old directory moved aside, a fresh standby cloned from the primary."""
        primaries = [n for n in self.names if self.nodes[n].running and self.nodes[n].primary]
        node = self.nodes[name]
        if primaries != [self.peer(name)] or not node.powered or not self.link(name, primaries[0]):
            return
        source = self.nodes[primaries[0]]
        if rebuild_refused(node, source, self.log):
            return
        node.moved_aside.append(node.wal)
        self.dir_count += 1
        if sum(len(self.nodes[n].moved_aside) for n in self.names) + 2 != self.dir_count:
            raise Violation("a data directory was dropped")
        node.wal, node.timeline, node.follows = list(source.wal), source.timeline, source.name
        node.primary = node.fence_lock = node.async_override = node.receiver_broken = False
        node.running, node.receiver_up, node.state = True, False, node.restarted_state()

    # --- the start guard ---------------------------------------------------------------------
    def request_start(self, name):
        self.nodes[name].start_retry_until = self.t + 40.0
        self.try_start(name)

    def try_start(self, name):
        node, peer = self.nodes[name], self.nodes[self.peer(name)]
        local = {"name": name, "standby_signal": not node.primary, "fence_lock": node.fence_lock and "fenced",
                 "timeline": node.timeline}
        peers = {peer.name: {"reachable": False}}
        if peer.running and self.link(name, peer.name):
            peers[peer.name] = {"reachable": True, "in_recovery": not peer.primary, "timeline": peer.timeline,
                                "follows": peer.follows}
        arbiter = {"lease": self.lease_row(name), "seen": node.state.get("lease_seen")}
        decision = safety.start_decision(local, peers, 2, arbiter=arbiter, start_refusal=self.policy.start_refusal)
        if decision["write_lock"]:
            node.fence_lock = True
        if decision["start"]:
            node.running, node.start_retry_until, node.state = True, None, node.restarted_state()
            self.log("%s started (%s)" % (name, decision["reason"]))
        elif not decision["retry"]:
            node.start_retry_until = None
            self.log("%s start refused: %s" % (name, decision["reason"]))

    # --- the arbiter ---------------------------------------------------------------------------
    def lease_row(self, name):
        """What read_lease returns to `name` (None: the arbiter does not answer it)."""
        if not self.link(name, ARBITER):
            return None
        if self.lease is None:
            return {"holder": None}
        row = dict((k, self.lease[k]) for k in ("holder", "term", "timeline", "synchronous"))
        now = self.arbiter_clock()
        return dict(row, expired=self.lease["expires"] < now, age=now - self.lease["renewed"],
                    version=self.lease["version"])

    def lease_change(self, name, kind, timeline, synchronous=False, term=None, takeover=False):
        if not self.link(name, ARBITER):
            return False
        lease, seconds = self.lease, keeper.lease_seconds(BEAT, COUNT)
        if kind == "create":
            if lease is not None:
                return False
            self.lease = {"holder": name, "term": 1, "version": 0}
        elif kind == "renew":
            if lease is None or lease["holder"] != name:
                return False
        elif kind == "claim":
            if lease is None or lease["term"] != term or takeover and not (lease["expires"] < self.arbiter_clock()
                                                                            and lease["synchronous"]):
                return False
            self.lease = {"holder": name, "term": term + 1, "version": lease["version"]}
            synchronous = False
            self.log("%s took the lease (term %d)" % (name, term + 1))
        now = self.arbiter_clock()
        self.lease.update(timeline=timeline, expires=now + seconds, synchronous=synchronous, renewed=now,
                          version=self.lease["version"] + 1)
        return True

    # --- one tick ----------------------------------------------------------------------------------
    def step(self):
        self.ticks += 1
        self.t = round(self.ticks * TICK, 6)
        self.replicate()
        self.commit()
        for name in self.names:
            node = self.nodes[name]
            beat_ticks = int(round(BEAT / node.rate / TICK))
            if node.powered and (self.ticks + node.phase) % beat_ticks == 0:
                self.beat(name)
        if self.ticks % 10 == 0:
            self.retry_starts()

    retry_starts = sim.World.retry_starts     # the same start retries as pgpool mode's world

    def replicate(self):
        for name in self.names:
            node = self.nodes[name]
            up = self.nodes[node.follows] if node.follows else None
            if not node.running or node.primary or up is None or node.receiver_broken or not (
                    up.running and up.primary and self.link(name, up.name)):
                node.receiver_up = False
                continue
            if len(node.wal) > len(up.wal) or node.wal[-1] != up.wal[len(node.wal) - 1]:
                node.receiver_up = False     # diverged: needs a rebuild
                continue
            node.wal.extend(up.wal[len(node.wal):])
            node.timeline, node.receiver_up = up.timeline, True

    def streams_from(self, primary):
        standby = self.nodes[self.peer(primary.name)]
        return standby.receiver_up and standby.follows == primary.name and self.link(standby.name, primary.name)

    def commit(self):
        acked_by = []
        for name in self.names:
            node = self.nodes[name]
            if not (node.running and node.primary and self.link(CLIENT, name)):
                continue
            self.next_commit += 1
            entry = ("c", self.next_commit)
            node.wal.append(entry)
            if not node.async_override:
                if not self.streams_from(node):
                    continue                     # waits for the synchronous standby
                self.nodes[self.peer(name)].wal.append(entry)
            self.acked.append((self.next_commit, name, self.t))
            acked_by.append(name)
        if len(acked_by) > 1:
            raise Violation("two nodes acknowledged writes at the same moment: %s" % ", ".join(acked_by))

    # --- the keeper's beat ------------------------------------------------------------------------
    def survey(self, src, name):
        node = self.nodes[name]
        if not node.running or not self.link(src, name):
            return None
        facts = {"reachable": True, "role": "primary" if node.primary else "standby", "timeline": node.timeline,
                 "current_lsn_bytes": len(node.wal) if node.primary else None,
                 "wal_receiver": {"status": "streaming"} if node.receiver_up else None, "replication": []}
        if node.primary and self.streams_from(node):
            standby = self.nodes[self.peer(name)]
            facts["replication"] = [{"application_name": standby.name, "state": "streaming",
                                     "sync_state": "async" if node.async_override else "sync",
                                     "flush_lsn": "0/%X" % len(standby.wal)}]
        return facts

    def beat(self, name):
        node, peer = self.nodes[name], self.peer(name)
        local = self.survey(name, name)
        remote = self.survey(name, peer) if local else None
        facts = keeper.beat_facts(name, local, remote, peer, node.async_override, self.lease_row(name), False)
        node.state, decision = self.policy.keeper_step(facts, node.state, COUNT, self.strict)
        steps = decision["steps"]
        dies = node.dies_midway and steps
        if dies:  # killed (the watchdog, OOM, a crash) after some of the steps: it starts again
            steps, node.dies_midway = steps[:self.rng.randint(0, len(steps) - 1)], False
        done = []
        for step in steps:
            if not self.carry_out(name, step, facts):
                break
            done.append(step[0])
        if dies:
            node.state = node.restarted_state()
            self.log("%s keeper died after %s of %s; started again" % (
                name, ", ".join(done) or "nothing", ", ".join(s[0] for s in decision["steps"])))
        elif decision["steps"]:
            self.log("%s keeper: %s (done: %s)" % (name, decision["reason"], ", ".join(done) or "nothing"))

    def carry_out(self, name, step, facts):
        node, peer = self.nodes[name], self.nodes[self.peer(name)]
        kind = step[0]
        if kind in ("create", "renew"):
            return self.lease_change(name, kind, node.timeline, synchronous=step[1])
        if kind == "claim":
            return self.lease_change(name, "claim", node.timeline, term=step[1], takeover=step[2])
        if kind == "async" and self.strict:
            raise Violation("%s went asynchronous although pgha_synchronous_mode_strict is on" % name)
        if kind in ("async", "sync"):
            node.async_override = kind == "async"
            return node.running and node.primary
        if kind == "promote":
            if not node.running or node.primary:
                return node.running
            self.check_no_acked_commit_lost(node)
            node.primary, node.follows, node.receiver_up = True, None, False
            node.timeline += 1
            node.wal.append(("promote", name, node.timeline))
            self.log("%s promoted (timeline %d)" % (name, node.timeline))
            return True
        if kind == "fence_peer":
            if peer.powered and self.link(name, peer.name):
                if peer.primary:
                    peer.fence_lock, peer.running = True, False
                    self.log("%s fenced %s" % (name, peer.name))
                else:
                    peer.follows, peer.receiver_up = None, False
            return True
        if kind == "fence_self":
            node.fence_lock, node.running = True, False
            self.log("%s fenced itself" % name)
            return True
        return kind == "after_command"

    # --- invariants and the end ------------------------------------------------------------------
    def check_no_acked_commit_lost(self, node):
        have = set(e[1] for e in node.wal if e[0] == "c")
        lost = [c for c, unused_node, unused_at in self.acked if c not in have]
        if lost:
            raise Violation("acknowledged commits missing on the promoted node: %d on %s (first: %s)" % (
                len(lost), node.name, lost[0]))

    def takes_writes(self):
        return [n for n in self.names if self.nodes[n].running and self.nodes[n].primary and
                (self.nodes[n].async_override or self.streams_from(self.nodes[n]))]

    def state(self):
        return "\n".join("        %s: %s%s tl=%d wal=%d follows=%s receiver=%s lock=%s async=%s" % (
            n, "on " if node.powered else "OFF ", ("primary" if node.primary else "standby") +
            (" running" if node.running else " stopped"), node.timeline, len(node.wal), node.follows,
            node.receiver_up, node.fence_lock, node.async_override) for n, node in sorted(self.nodes.items())) + \
            "\n        lease: %s" % self.lease


KINDS = ["crash", "poweroff", "poweron", "start", "stop", "cut", "isolate", "heal", "arbiter_down", "arbiter_up",
         "break_replication", "fix_replication", "rebuild", "arbiter_clock", "switchover", "keeper_dies"]
WEIGHTS = [3, 2, 3, 3, 1, 4, 2, 3, 2, 2, 2, 2, 2, 1, 1, 2]
# The arbiter restored from a backup runs in named schedules only: a node cut from the arbiter
# while the rows it missed were written cannot tell the restored row from the current one.


def random_schedule(rng, max_events=50):
    names, events, at = ["n1", "n2"], [], 0.0
    for _ in range(rng.randint(1, max_events)):
        at = round(at + rng.uniform(0.1, 4.0), 1)
        kind = rng.choices(KINDS, WEIGHTS)[0]
        if kind in ("heal", "arbiter_down", "arbiter_up"):
            events.append((at, (kind,)))
        elif kind == "arbiter_clock":
            events.append((at, (kind, rng.choice((-300.0, -30.0, 30.0)))))
        elif kind == "cut":
            events.append((at, ("cut",) + tuple(rng.sample(names + [ARBITER, CLIENT], 2))))
        else:
            events.append((at, (kind, rng.choice(names))))
    return events


def run_schedule(seed, max_events=50):
    return random_schedule(random.Random(seed), max_events)


def repair(world):
    return [("heal",), ("arbiter_up",)] + [(k, n) for n in world.names for k in ("fix_replication", "poweron",
                                                                                  "start")]


def run(seed, events=None, max_events=50, policy=None, strict=None):
    """One schedule; returns the world. Raises Violation with the timeline on a broken invariant.
    Every fourth seed runs with pgha_synchronous_mode_strict."""
    world = KeeperWorld(seed, policy, strict=seed % 4 == 3 if strict is None else strict)
    schedule = run_schedule(seed, max_events) if events is None else events
    try:
        sim.drive(world, schedule, SETTLE, 8, repair(world), LIVENESS)
        if not world.takes_writes():
            raise Violation("liveness: no primary takes writes %.0f s after every fault was repaired" % LIVENESS)
    except Violation as exc:
        exc.world, exc.schedule = world, schedule
        raise
    world.schedule = schedule
    return world
