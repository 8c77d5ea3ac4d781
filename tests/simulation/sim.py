"""A deterministic simulation of a pgha cluster in pgpool mode.

Simulated: PostgreSQL nodes (role, timeline, WAL as a list of unique entries, WAL receiver,
fence lock, pg_control state, standby.signal), each node's clock (its own rate), the
network (any pair of endpoints cut, the client being one), pgpool's watchdog leader with
its health check, a client that commits to every primary it can reach, power loss,
crashes, restarts and rebuilds. Not simulated: the decisions. The real code decides:
failover_flow.failover_steps (the pgpool hook, run request by request against the
simulated world), safety.guard_step (each node's guard), safety.start_decision (the start
guard), safety.sync_policy, topology.plan_failover.

Invariants, checked as the run goes: never two running primaries; in synchronous mode no
acknowledged commit missing from a new primary (commits acknowledged while the primary had
dropped to asynchronous replication by the non-strict policy excepted: that is the
policy); the promoted standby has the most WAL of those the hook saw; data directories are
moved aside, never dropped; and liveness: once every fault is repaired, a primary takes
writes again within LIVENESS seconds.
"""
import random

from ansible_collections.pgha.cluster.plugins.module_utils import failover_flow, safety, topology

TICK = 0.1
DETECT = 2.0          # pgpool: health check period + retries until it calls the hook
LIVENESS = 60.0       # seconds after the last repair within which a primary must take writes
HOOK_LIMIT = 30.0     # the hook's own bound
SETTLE = 3.0          # seconds of a healthy cluster before the first event
BOOT = 2.0            # power-on to the start guard's first look: the fastest machine, a container
COSTS = {"survey": 0.3, "fence": 0.2, "revoke": 0.2, "promote": 0.3, "record": 0.05, "repoint": 0.2,
         "detach": 0.0, "checkpoint": 0.05}
UNREACHABLE_COST = {"survey": 0.5, "fence": 1.0}
CLIENT = "client"


class Violation(AssertionError):
    pass


class Policy:
    """The real decision functions (tests may pass a module with the same names)."""
    failover_steps = staticmethod(failover_flow.failover_steps)
    guard_step = staticmethod(safety.guard_step)
    start_decision = staticmethod(safety.start_decision)


class Node:
    def __init__(self, name, rate):
        self.name, self.rate = name, rate
        self.powered = self.running = True
        self.primary = False
        self.timeline = 1
        self.wal = [("init",)]
        self.follows = None
        self.receiver_up = False
        self.last_msg = 0.0
        self.replies = {}
        self.fence_lock = False
        self.fenced_record = None      # the failover's record of fenced old primaries (safety.fenced_peers)
        self.in_production = False     # pg_control: a primary that did not stop cleanly
        self.sync_configured = ()
        self.sync_effective = ()
        self.guard = {}
        self.moved_aside = []
        self.start_retry_until = None
        self.network_at = 0.0
        self.booted_at = 0.0

    def clock(self, t):
        return t * self.rate

    def online(self, t):
        """Powered, and its network is up (for a few seconds after boot it is not)."""
        return self.powered and t >= self.network_at


class World:
    def __init__(self, seed, nodes=3, sync=True, strict=False, lease=None, policy=None, power_fence=False):
        rng = random.Random(seed)
        # pgpool_fence_command: a power switch the hook reaches whatever the network does.
        self.power_fence = power_fence
        # The decisions under test: the real ones unless a test passes another policy.
        self.policy = policy or Policy()
        self.rng, self.t, self.ticks, self.seed = rng, 0.0, 0, seed
        self.sync, self.strict = sync, strict
        self.lease = dict(lease or safety.DEFAULT_LEASE)
        self.guard_ticks = int(round(self.lease["guard_interval"] / TICK))
        self.topology_version, self.leader_cache = 0, (None, None)
        self.links_version, self.links, self.booting = None, set(), 0
        self.names = ["n%d" % i for i in range(1, nodes + 1)]
        self.nodes = dict((n, Node(n, rng.uniform(0.96, 1.04))) for n in self.names)
        self.cut = set()
        self.timeline = []
        self.acked = []              # (commit id, node, time, degraded)
        self.next_commit = 0
        self.pool_primary = self.names[0]
        self.health_failed_for = 0.0
        self.hook = None
        self.fences_running = []     # the hook's fence attempts: they act when they end
        self.last_hook_stage = None
        self.dir_count = len(self.names)
        first = self.nodes[self.names[0]]
        first.primary, first.in_production = True, True
        for name in self.names[1:]:
            node = self.nodes[name]
            node.follows = first.name
        first.sync_configured = tuple(self.names[1:]) if sync else ()
        first.sync_effective = first.sync_configured

    # --- network -----------------------------------------------------------------------
    def link(self, a, b):
        if self.links_version != self.topology_version:
            self.links = self.compute_links()
            self.links_version = self.topology_version
        return (a, b) in self.links

    def compute_links(self):
        online = [e for e in self.names if self.nodes[e].online(self.t)] + [CLIENT]
        return set((a, b) for a in online for b in online if a == b or frozenset((a, b)) not in self.cut)

    def pg_answers(self, src, name):
        node = self.nodes[name]
        return node.running and (src == name or self.link(src, name))

    def log(self, text):
        self.timeline.append("%7.2f %s" % (self.t, text))

    # --- faults and repairs (schedule events) --------------------------------------------
    def apply(self, event):
        kind, args = event[0], event[1:]
        self.topology_version += 1
        self.log("EVENT %s %s" % (kind, " ".join(str(a) for a in args)))
        getattr(self, "ev_" + kind)(*args)

    def ev_crash(self, name):
        self.nodes[name].running = False

    def ev_poweroff(self, name):
        node = self.nodes[name]
        node.powered = node.running = False
        node.receiver_up, node.guard, node.start_retry_until = False, {}, None

    def ev_poweron(self, name):
        node = self.nodes[name]
        if not node.powered:
            node.powered = True
            # A machine boots before PostgreSQL may start (a power fence's node powered on at once
            # is not back before the standbys were revoked); systemd starts PostgreSQL before the
            # network is up (issue 16: no peer answered).
            node.booted_at = self.t + BOOT
            node.network_at = node.booted_at + self.rng.choice([0.0, 0.0, 1.0, 2.5])
            self.booting += 1
            self.request_start(name)

    def ev_start(self, name):
        if self.nodes[name].powered and not self.nodes[name].running:
            self.request_start(name)

    def ev_stop(self, name):
        node = self.nodes[name]
        if node.running:
            node.running, node.in_production = False, False

    def ev_isolate(self, name):
        self.cut.update(frozenset((name, other)) for other in self.names + [CLIENT] if other != name)

    def ev_isolate_from_peers(self, name):
        self.cut.update(frozenset((name, other)) for other in self.names if other != name)

    def ev_cut(self, a, b):
        self.cut.add(frozenset((a, b)))

    def ev_heal(self):
        self.cut.clear()

    def ev_rebuild(self, name):
        """The operator's rebuild.yml: the old directory moved aside, a fresh standby cloned."""
        primaries = [n for n in self.names if self.nodes[n].running and self.nodes[n].primary]
        node = self.nodes[name]
        if len(primaries) != 1 or name in primaries or not node.powered or not self.link(name, primaries[0]):
            return
        if self.hook is not None:
            # A rebuild takes seconds; the hook's steps after a promotion (its record of the
            # fenced nodes among them) take milliseconds: they are done before it ends.
            return
        source = self.nodes[primaries[0]]
        if rebuild_refused(node, source, self.log):
            return
        if source.fenced_record:
            source.fenced_record = "\n".join(line for line in source.fenced_record.split("\n") if line != name)
        node.fenced_record = None
        node.moved_aside.append(node.wal)
        self.dir_count += 1
        if sum(len(self.nodes[n].moved_aside) for n in self.names) + len(self.names) != self.dir_count:
            raise Violation("a data directory was dropped")
        node.wal = list(source.wal)
        node.primary, node.timeline, node.follows = False, source.timeline, source.name
        node.fence_lock = node.in_production = False
        node.running, node.receiver_up = True, False

    # --- the start guard ------------------------------------------------------------------
    def request_start(self, name):
        self.nodes[name].start_retry_until = self.t + 60.0
        self.try_start(name)

    def try_start(self, name):
        node = self.nodes[name]
        if self.t < node.booted_at:
            return      # still booting: the start guard runs later (retry_starts)
        local = {"name": name, "standby_signal": not node.primary, "fence_lock": node.fence_lock and "fenced",
                 "crashed": node.in_production, "timeline": node.timeline,
                 "fenced_peers": safety.fenced_peers(node.fenced_record, node.timeline, name)}
        peers = dict((n, self.peer_facts(name, n)) for n in self.names if n != name)
        decision = self.policy.start_decision(local, peers, len(self.names))
        if decision["write_lock"]:
            node.fence_lock = True
        if decision["start"]:
            node.running, node.start_retry_until = True, None
            node.in_production = node.primary
            node.guard = {}
            self.log("%s started (%s)" % (name, decision["reason"]))
        elif not decision["retry"]:
            node.start_retry_until = None
            self.log("%s start refused: %s" % (name, decision["reason"]))

    def peer_facts(self, src, name):
        node = self.nodes[name]
        if not self.pg_answers(src, name):
            return {"reachable": False}
        return {"reachable": True, "in_recovery": not node.primary, "timeline": node.timeline, "follows": node.follows}

    # --- one tick ---------------------------------------------------------------------------
    def step(self):
        self.ticks += 1
        self.t = round(self.ticks * TICK, 6)
        if self.booting:
            for node in self.nodes.values():
                if node.network_at and node.network_at <= self.t:
                    node.network_at = 0.0
                    self.booting -= 1
                    self.topology_version += 1
        self.replicate()
        self.commit()
        if self.ticks % self.guard_ticks == 0:
            self.guards()
        if self.ticks % 10 == 0:
            self.retry_starts()
        self.end_fences()
        self.pgpool()
        self.check_safety()

    def retry_starts(self):
        for name in self.names:
            node = self.nodes[name]
            if node.start_retry_until is not None and node.powered and not node.running:
                if self.t > node.start_retry_until:
                    node.start_retry_until = None
                else:
                    self.try_start(name)

    def replicate(self):
        for name in self.names:
            node = self.nodes[name]
            if not node.running or node.primary or node.follows is None:
                node.receiver_up = False
                continue
            up = self.nodes[node.follows]
            if up.running and up.primary and self.link(name, up.name):
                if node.wal[-1] != up.wal[len(node.wal) - 1] if len(node.wal) <= len(up.wal) else True:
                    node.receiver_up = False     # diverged: needs a rewind or a clone
                    continue
                node.wal.extend(up.wal[len(node.wal):])
                node.timeline = up.timeline
                node.receiver_up, node.last_msg = True, self.t
                up.replies[name] = self.t
            elif up.powered and not self.link(name, up.name) or not up.powered:
                if self.t - node.last_msg > self.lease["receiver_timeout"]:
                    node.receiver_up = False
            else:
                node.receiver_up = False

    def streaming(self, primary):
        return [n for n in self.names if n != primary.name and self.nodes[n].receiver_up
                and self.nodes[n].follows == primary.name and self.link(n, primary.name)]

    def commit(self):
        for name in self.names:
            node = self.nodes[name]
            if not (node.running and node.primary and self.link(CLIENT, name)):
                continue
            self.next_commit += 1
            entry = ("c", self.next_commit)
            node.wal.append(entry)
            synced = [n for n in self.streaming(node) if n in node.sync_effective]
            if node.sync_effective and not synced:
                continue                         # waits for a synchronous standby: not acknowledged
            for other in synced:
                self.nodes[other].wal.append(entry)
            degraded = bool(node.sync_configured) and not node.sync_effective
            self.acked.append((self.next_commit, name, self.t, degraded))

    def guards(self):
        total = len(self.names)
        for name in self.names:
            node = self.nodes[name]
            if not node.powered:
                continue
            role = "primary" if node.running and node.primary else ("standby" if node.running else None)
            replies = dict((n, node.replies.get(n)) for n in self.names
                           if n != name and self.nodes[n].follows == name and n in node.replies)
            fenced = safety.fenced_peers(node.fenced_record, node.timeline, name) if role == "primary" else []
            node.guard, action, reason = self.policy.guard_step(node.guard, role, replies, node.clock(self.t), total,
                                                                self.lease, False, fenced)
            if action == "fence":
                node.running, node.fence_lock = False, True
                self.log("%s guard fenced itself: %s" % (name, reason))
            elif role == "primary":
                standing = safety.standing_fenced(fenced, replies)
                node.sync_effective = tuple(safety.sync_policy(self.strict, self.streaming(node), node.sync_configured,
                                                               safety.lease_without_standbys(total, standing)))

    # --- pgpool and its hook ------------------------------------------------------------------
    def leader(self):
        """The watchdog leader: the first powered node that sees a majority (cached per topology)."""
        if self.leader_cache[0] != self.topology_version:
            self.leader_cache = (self.topology_version, self.elect())
        return self.leader_cache[1]

    def elect(self):
        # Two pgpools: a lone one leads without quorum and fails over (failover_when_quorum_exists
        # off; it holds no virtual IP). Cut from each other, both lead: the first one's hook runs here.
        need = safety.majority(len(self.names)) if len(self.names) > 2 else 1
        for name in self.names:
            if self.nodes[name].powered and 1 + sum(self.link(name, o) for o in self.names if o != name) >= need:
                return name
        return None

    def pgpool(self):
        leader = self.leader()
        if self.hook is not None:
            if self.hook["leader"] != leader:
                self.log("hook on %s lost (leader now %s)" % (self.hook["leader"], leader))
                self.hook = None
            else:
                self.run_hook()
                return
        if leader is None:
            return
        if self.pg_answers(leader, self.pool_primary) and self.nodes[self.pool_primary].primary:
            self.health_failed_for = 0.0
            return
        self.health_failed_for += TICK
        if self.health_failed_for >= DETECT:
            self.health_failed_for = 0.0
            self.start_hook(leader, self.pool_primary)

    def start_hook(self, leader, failed):
        self.log("pgpool on %s: backend %s failed, calling the hook" % (leader, failed))
        sync_names = self.nodes[failed].sync_configured or tuple(n for n in self.names if n != failed and self.sync)
        steps = self.policy.failover_steps(failed, len(self.names), self.lease, HOOK_LIMIT,
                                             sync_required=1 if self.sync else 0, sync_names=sync_names,
                                             fence_device=self.power_fence)
        self.hook = {"leader": leader, "steps": steps, "wake": self.t, "result": None, "started": True}

    def run_hook(self):
        hook = self.hook
        while self.hook is hook and self.t >= hook["wake"]:
            if "read" in hook:
                hook["result"] = hook.pop("read")()
            try:
                request = next(hook["steps"]) if hook.pop("started", False) else hook["steps"].send(hook["result"])
            except StopIteration as stop:
                self.hook_done(stop.value)
                return
            hook["result"], cost = self.execute(hook["leader"], request)
            if callable(hook["result"]):
                # read when the request ends (fence attempts act when they end)
                hook["read"], hook["result"] = hook["result"], None
            hook["wake"] = self.t + cost

    def hook_done(self, result):
        self.log("hook: %s" % result)
        self.hook = None
        self.last_hook_stage = result.get("stage")
        if result["result"] == "promoted":
            self.pool_primary = result["candidate"]
        elif result["result"] == "none":
            primaries = [n for n in self.names if self.nodes[n].running and self.nodes[n].primary]
            if primaries:
                self.pool_primary = primaries[0]

    def execute(self, leader, request):
        kind = request[0]
        if kind == "now":
            return self.nodes[leader].clock(self.t), 0.0
        if kind == "log":
            self.log("hook: %s" % request[1])
            return None, 0.0
        if kind == "sleep":
            return None, request[1]
        if kind == "fence":
            return self.fence_attempts(leader, request[1], wait=True, fresh=True)
        if kind == "fence_background":
            return self.fence_attempts(leader, request[1], wait=request[2], fresh=False)
        cost = COSTS[kind]
        if kind == "survey":
            standing = request[1] if len(request) > 1 else []
            facts = dict((n, self.hook["seen"][n] if n in standing else self.survey_facts(leader, n))
                         for n in self.names)
            slow = any(not f["reachable"] for n, f in facts.items() if n not in standing)
            self.hook["seen"] = facts
            return facts, cost + (UNREACHABLE_COST["survey"] if slow else 0.0)
        if kind == "revoke":
            return [n for n in request[1] if self.revoke(leader, n)], cost
        if kind == "promote":
            return self.promote(leader, request[1]), cost
        if kind == "detach":
            self.pool_primary = request[1]   # pgpool's failover ends; the hook goes on alone
            return None, cost
        if kind == "checkpoint":
            return None, cost
        if kind == "record":
            node = self.nodes[request[1]]
            if self.pg_answers(leader, request[1]) and node.primary:
                node.fenced_record = "\n".join([str(node.timeline)] + list(request[2]))
            return None, cost
        if kind == "repoint":
            for name in request[1]:
                if self.nodes[name].powered and self.link(leader, name) and not self.nodes[name].primary:
                    self.nodes[name].follows = request[2]
            return None, cost
        raise ValueError(request)

    def fence_attempts(self, leader, names, wait, fresh):
        """The hook's fence attempts (fresh: a new one for each node with none running, else
        only for a node never tried): each acts when it ends, COSTS["fence"] after it started
        (plus ssh's timeout for a node silent then, unless the power fence reaches it), on the
        state of that moment. Returns a reader of the verified ones, called when the request
        ends (wait: once the attempts ended), and the request's cost."""
        attempts = self.hook.setdefault("attempts", {})
        for name in names:
            current = attempts.get(name)
            if current is None or (fresh and current["done"]):
                answers = self.nodes[name].powered and self.link(leader, name)
                slow = 0.0 if answers or self.power_fence else UNREACHABLE_COST["fence"]
                attempts[name] = {"leader": leader, "name": name, "answers": answers, "done": False, "result": None,
                                  "end": self.t + COSTS["fence"] + slow}
                self.fences_running.append(attempts[name])
        ends = [attempts[n]["end"] - self.t for n in names if not attempts[n]["done"]]
        cost = max(ends + [0.0]) if wait else 0.0
        return (lambda: dict((n, attempts[n]["result"]) for n in names
                             if attempts[n]["done"] and attempts[n]["result"])), cost

    def end_fences(self):
        """Fence attempts that end now act (an ssh whose pgpool node lost power dies with it)."""
        for attempt in [a for a in self.fences_running if a["end"] <= self.t]:
            self.fences_running.remove(attempt)
            if self.nodes[attempt["leader"]].powered and (attempt["answers"] or self.power_fence):
                attempt["result"] = self.fence(attempt["leader"], attempt["name"])
            attempt["done"] = True

    def survey_facts(self, src, name):
        node = self.nodes[name]
        if not self.pg_answers(src, name):
            # A host that runs and is linked refuses the port; one off or cut away is silent.
            return {"reachable": False, "in_recovery": None, "host_answers": node.powered and self.link(src, name)}
        facts = {"reachable": True, "in_recovery": not node.primary, "timeline": node.timeline,
                 "received_lsn_bytes": len(node.wal), "system_identifier": "1",
                 "follows": node.follows, "upstream": node.follows if node.receiver_up else None,
                 "upstream_age": (self.t - node.last_msg) if node.receiver_up else None, "replication": []}
        if node.primary:
            facts["replication"] = [{"application_name": n, "sync_state": "quorum"} for n in self.streaming(node)
                                    if n in node.sync_effective]
        return facts

    def fence(self, src, name):
        """The hook's ssh fence: lock + immediate stop (a standby: stop following, stop); else
        the power fence when there is one: the node off, no lock written, no timeline told."""
        node = self.nodes[name]
        if not (node.powered and self.link(src, name)):
            if not self.power_fence:
                return None
            self.ev_poweroff(name)
            self.log("hook: %s powered off by the fence command" % name)
            return {"kind": "primary", "timeline": None, "powered_off": True}
        if node.primary:
            node.fence_lock, node.running = True, False
        node.follows, node.receiver_up = None, False
        return {"kind": "primary" if node.primary else "standby", "timeline": node.timeline}

    def revoke(self, src, name):
        node = self.nodes[name]
        if not self.pg_answers(src, name) or node.primary:
            return False
        node.follows, node.receiver_up = None, False
        return True

    def promote(self, src, name):
        node = self.nodes[name]
        if not self.pg_answers(src, name) or node.primary:
            return False
        seen = self.hook["seen"]
        best = max((f["timeline"], f["received_lsn_bytes"], n) for n, f in seen.items()
                   if f["reachable"] and f["in_recovery"])
        if best[:2] > (seen[name]["timeline"], seen[name]["received_lsn_bytes"]):
            raise Violation("promoted %s although %s had more WAL in the hook's last survey" % (name, best[1]))
        node.primary, node.follows, node.receiver_up = True, None, False
        node.timeline += 1
        node.wal.append(("promote", name, node.timeline))
        node.in_production, node.guard = True, {}
        node.sync_configured = tuple(n for n in self.names if n != name) if self.sync else ()
        node.sync_effective = node.sync_configured
        self.log("%s promoted (timeline %d)" % (name, node.timeline))
        self.check_no_acked_commit_lost(node)
        return True

    # --- invariants ---------------------------------------------------------------------------
    def check_safety(self):
        running = 0
        for node in self.nodes.values():
            running += node.running and node.primary
        if running > 1:
            raise Violation("two running primaries: %s" % ", ".join(
                n for n in self.names if self.nodes[n].running and self.nodes[n].primary))

    def check_no_acked_commit_lost(self, primary):
        if not self.sync:
            return
        have = set(e[1] for e in primary.wal if e[0] == "c")
        lost = [c for c, node, at, degraded in self.acked if not degraded and c not in have]
        if lost:
            raise Violation("%d acknowledged commits missing on the new primary %s (first: %s)"
                            % (len(lost), primary.name, lost[0]))

    def state(self):
        return "\n".join(
            "        %s: %s%s tl=%d wal=%d follows=%s receiver=%s lock=%s sync=%s" % (
                n, "on " if node.powered else "OFF ", ("primary" if node.primary else "standby") +
                (" running" if node.running else " stopped"), node.timeline, len(node.wal), node.follows,
                node.receiver_up, node.fence_lock, ",".join(node.sync_effective))
            for n, node in sorted(self.nodes.items()))

    def takes_writes(self):
        return [n for n in self.names if self.nodes[n].running and self.nodes[n].primary and self.link(CLIENT, n)
                and (not self.nodes[n].sync_effective or
                     set(self.streaming(self.nodes[n])) & set(self.nodes[n].sync_effective))]


def random_schedule(rng, names, max_events=50):
    """Up to max_events faults and repairs, 0.1 to 2 s apart."""
    kinds = ["crash", "poweroff", "poweron", "start", "stop", "isolate", "isolate_from_peers", "cut", "heal",
             "rebuild"]
    weights = [3, 2, 3, 3, 1, 3, 3, 2, 3, 2]
    events, at = [], 0.0
    for _ in range(rng.randint(1, max_events)):
        at = round(at + rng.uniform(0.1, 2.0), 1)
        kind = rng.choices(kinds, weights)[0]
        if kind == "heal":
            events.append((at, ("heal",)))
        elif kind == "cut":
            a, b = rng.sample(names + [CLIENT], 2)
            events.append((at, ("cut", a, b)))
        else:
            events.append((at, (kind, rng.choice(names))))
    return events


def repair(names):
    """What the operator does in the end: heal, power on, start every server."""
    return [("heal",)] + [("poweron", n) for n in names] + [("start", n) for n in names]


def draw_cluster(rng):
    """(nodes, sync, strict) of a seeded run: mostly 3 nodes, some 5 and some 2."""
    nodes = rng.choices([3, 5, 2], [7, 2, 1])[0]
    return nodes, rng.random() < 0.6, rng.random() < 0.3


def run_schedule(seed, max_events=50):
    """The schedule run(seed) draws (to shrink it)."""
    rng = random.Random(seed)
    nodes = draw_cluster(rng)[0]
    return random_schedule(rng, ["n%d" % i for i in range(1, nodes + 1)], max_events)


def rebuild_refused(node, source, log):
    """rebuild.yml's refusal (topology.rebuild_need) of a node on a newer timeline than the primary."""
    facts = {"reachable": True, "timeline": node.timeline} if node.running else \
        {"reachable": False, "stopped_timeline": node.timeline}
    refusal = topology.rebuild_refusal(facts, {"timeline": source.timeline})
    if refusal:
        log("rebuild of %s refused: %s" % (node.name, refusal))
    return bool(refusal)


def drive(world, schedule, settle, tail, repairs, liveness=LIVENESS):
    """Let the cluster settle, apply the schedule's events at their times, run `tail` seconds
    more, repair, then run until a primary takes writes or `liveness` seconds passed; 20 s
    after the repair a node left fenced or diverged is rebuilt (the operator's rebuild.yml)."""
    while world.t < settle:
        world.step()
    for at, event in schedule:
        while world.t < settle + at:
            world.step()
        world.apply(event)
    end = world.t + tail
    while world.t < end:
        world.step()
    for event in repairs:
        world.apply(event)
    repaired = world.t
    while world.t < repaired + liveness and not world.takes_writes():
        world.step()
        if abs(world.t - repaired - 20) < TICK / 2:
            for name in world.names:
                node = world.nodes[name]
                if not node.running or not node.primary and not node.receiver_up:
                    world.apply(("rebuild", name))


def run(seed, events=None, nodes=None, sync=None, strict=None, max_events=50, policy=None, power_fence=None):
    """One schedule; returns the world. Raises Violation with the timeline on a broken invariant."""
    rng = random.Random(seed)
    drawn = draw_cluster(rng)
    nodes = drawn[0] if nodes is None else nodes
    sync = drawn[1] if sync is None else sync
    strict = drawn[2] if strict is None else strict
    schedule = random_schedule(rng, ["n%d" % i for i in range(1, nodes + 1)], max_events)
    schedule = schedule if events is None else events
    # Drawn after the schedule, so that a seed's schedule stays what run_schedule gives.
    power_fence = rng.random() < 0.4 if power_fence is None else power_fence
    world = World(seed, nodes=nodes, sync=sync, strict=strict, policy=policy, power_fence=power_fence)
    try:
        drive(world, schedule, SETTLE, 5, repair(world.names))
        # A quorum refusal waits for the operator's force=true by design: not a liveness bug.
        world.liveness_applies = (sum(world.nodes[n].running for n in world.names) >= safety.majority(nodes)
                                  and world.last_hook_stage != "quorum")
        if world.liveness_applies and not world.takes_writes():
            raise Violation("liveness: a majority of servers runs, yet no primary takes writes %.0f s after every "
                            "fault was repaired" % LIVENESS)
    except Violation as exc:
        exc.world, exc.schedule = world, schedule
        raise
    world.schedule = schedule
    return world
