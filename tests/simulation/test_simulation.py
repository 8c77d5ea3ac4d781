"""The decision core under simulated faults: thousands of seeded schedules, named shapes,
regression seeds, and proof that the simulator finds the split brains of the old code."""
import os

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import keeper, safety

import keeper_sim
import legacy
import runner
import sim

SCHEDULES = int(os.environ.get("PGHA_SIM_SCHEDULES", "10000"))
KEEPER_SCHEDULES = int(os.environ.get("PGHA_SIM_KEEPER_SCHEDULES", "5000"))
# Seeds that once broke an invariant (found by the simulator while the core was built);
# they must keep passing. seed: what it found.
REGRESSIONS = {
    1: "liveness judged while only one server could run (fenced primaries, lagging standby)",
    3: "old code: promotion with the acknowledging standby gone lost sync commits",
    33496: "a primary powered off by the fence command (no lock) counted as fenced for good by the new one; "
           "powered on, a standby not yet repointed confirmed it: two primaries",
    51932: "the same, the old primary powered on during the failover while the new one was cut from its peers",
    121009: "the candidate, the one standby with the acknowledged commits, lost during the lease wait: the "
            "next one was promoted without the quorum rule being applied again",
    139545: "the same in another schedule (5 nodes)",
    268901: "a node powered off by the fence command, powered on and started at once, before the standbys were "
            "revoked (a machine boots first: the simulator's BOOT)",
}


def test_random_schedules_keep_every_invariant():
    count, failures, seconds = runner.run_many(SCHEDULES, workers=2)
    detail = ""
    if failures:
        seed = failures[0][0]
        detail = runner.report(seed, runner.shrink(seed, sim.run_schedule(seed)))
    assert not failures, "%d of %d schedules broke an invariant; first, shrunk:\n%s" % (
        len(failures), count, detail)
    print("%d schedules in %.1f s (%.0f/s)" % (count, seconds, count / seconds))


@pytest.mark.parametrize("seed", sorted(REGRESSIONS))
def test_regression_seeds(seed):
    assert runner.outcome(seed) is None


def primary_of(world):
    found = [n for n in world.names if world.nodes[n].running and world.nodes[n].primary]
    assert len(found) <= 1
    return found[0] if found else None


@pytest.mark.parametrize("sync", [True, False])
def test_primary_cut_from_its_peers_fences_itself_before_the_promotion(sync):
    """The partition of issue 16: the client still reaches the old primary."""
    world = sim.run(11, events=[(1.0, ("isolate_from_peers", "n1")), (40.0, ("heal",))], sync=sync, strict=False)
    promoted = [line for line in world.timeline if "promoted" in line]
    fenced = [line for line in world.timeline if "n1 guard fenced itself" in line]
    assert fenced and promoted, "\n".join(world.timeline)
    assert float(fenced[0].split()[0]) < float(promoted[0].split()[0])
    assert primary_of(world) in ("n2", "n3")


def test_only_the_leaders_view_of_the_primary_cut_changes_nothing():
    world = sim.run(12, events=[(1.0, ("cut", "n2", "n1")), (20.0, ("heal",))], sync=True, strict=False)
    assert primary_of(world) == "n1", "\n".join(world.timeline)
    assert not [line for line in world.timeline if "promoted" in line]


def test_returning_primary_stays_down():
    """Power-off, failover, power-on: the old primary never runs as a primary again."""
    world = sim.run(13, events=[(1.0, ("poweroff", "n1")), (20.0, ("poweron", "n1"))], sync=True, strict=False)
    starts = [line for line in world.timeline if line.split()[1:3] == ["n1", "start"]]
    assert starts and "refused" in starts[0], "\n".join(world.timeline)
    assert primary_of(world) in ("n2", "n3")


# Two nodes, the primary powered off by pgpool_fence_command (no fence lock written), the link
# between the nodes cut, the old primary powered on (found by the simulator, seed 8 shrunk).
POWER_FENCED_THEN_CUT = [(11.9, ("poweroff", "n1")), (15.4, ("cut", "n1", "n2")), (40.7, ("poweron", "n1"))]


class TwoNodeStartWithoutConfirmation(sim.Policy):
    """The start rule before this fix: with two nodes, start when no other primary answers."""
    @staticmethod
    def start_decision(local, peers, total):
        if total == 2 and not local.get("standby_signal") and not local.get("fence_lock") and not any(
                p.get("reachable") for p in peers.values()):
            return {"start": True, "write_lock": False, "retry": False, "reason": "no other primary answers"}
        return safety.start_decision(local, peers, total)


def test_two_nodes_a_power_fenced_primary_powered_on_while_cut_away_does_not_start():
    world = sim.run(8, events=POWER_FENCED_THEN_CUT, nodes=2, sync=False, strict=True, power_fence=True)
    lines = "\n".join(world.timeline)
    assert "n1 powered off by the fence command" in lines and "n2 promoted" in lines, lines
    refused_at = [line for line in world.timeline if "n1 start" in line or "n1 started" in line]
    assert refused_at and "n1 started" not in refused_at[0], lines
    assert primary_of(world) == "n2", lines
    with pytest.raises(sim.Violation, match="two running primaries"):
        sim.run(8, events=POWER_FENCED_THEN_CUT, nodes=2, sync=False, strict=True, power_fence=True,
                policy=TwoNodeStartWithoutConfirmation())


def test_primary_and_its_last_acknowledging_standby_gone_is_refused():
    world = sim.run(14, events=[(1.0, ("crash", "n3")), (3.0, ("crash", "n1")), (15.0, ("poweroff", "n2"))],
                    sync=True, strict=True)
    # Refused before the fence (one standby of three runs: no new primary could hold a lease),
    # so the old primary is not stopped for nothing: it starts again once a peer confirms it.
    assert [line for line in world.timeline if "'stage': 'gate'" in line], "\n".join(world.timeline)
    assert not [line for line in world.timeline if "'result': 'promoted'" in line], "\n".join(world.timeline)
    assert [line for line in world.timeline if "n1 started (confirmed by" in line], "\n".join(world.timeline)


def double_fault(first, strict, seed=21):
    """The primary fails (`first`: crash — its fence is verified — or power-off), a failover
    promotes a standby, then the last other standby crashes. Returns (world, new primary,
    when the second fault struck)."""
    world = sim.World(seed, nodes=3, sync=True, strict=strict)
    sim.drive(world, [(1.0, (first, "n1"))], sim.SETTLE, 10.0, [])
    new = primary_of(world)
    assert new in ("n2", "n3"), "\n".join(world.timeline)
    world.apply(("crash", "n3" if new == "n2" else "n2"))
    second = world.t
    while world.t < second + 15.0:
        world.step()
    return world, new, second


def test_double_fault_in_sync_mode_not_strict_writes_go_on_on_the_last_node():
    """The old primary's verified fence counts towards the new primary's majority: it keeps
    its lease alone and turns asynchronous, so writes resume within 10 s of the second fault."""
    world, new, second = double_fault("crash", strict=False)
    assert world.takes_writes() == [new], "\n".join(world.timeline)
    after = [at for unused, node, at, degraded in world.acked if at > second and node == new]
    assert after and after[0] - second < 10.0, "\n".join(world.timeline)
    assert all(degraded for unused, node, at, degraded in world.acked if at > second)


def test_double_fault_in_sync_mode_strict_writes_wait_on_a_primary_that_keeps_its_lease():
    world, new, second = double_fault("crash", strict=True)
    assert primary_of(world) == new and world.takes_writes() == [], "\n".join(world.timeline)
    assert not [at for unused, node, at, degraded in world.acked if at > second + 1.0]


def test_double_fault_without_a_verified_fence_the_last_node_stops_itself():
    """Powered off, the old primary was never proven fenced (the lease ran out instead): it
    confirms nobody, so the last node has no majority and stops itself rather than go on alone."""
    world, new, second = double_fault("poweroff", strict=False)
    assert primary_of(world) is None, "\n".join(world.timeline)
    assert [line for line in world.timeline if "%s guard fenced itself" % new in line]


def old_code_violations(shape):
    found = {}
    for seed in range(400):
        message = runner.outcome(seed, policy=legacy)
        if message and shape in message:
            found[seed] = message
        if len(found) >= 1:
            break
    return found


@pytest.mark.parametrize("shape", ["two running primaries", "acknowledged commits missing"])
def test_the_simulator_finds_the_old_codes_bugs(shape):
    found = old_code_violations(shape)
    assert found, "the simulator no longer finds %r in the old decisions" % shape
    seed = sorted(found)[0]
    short = runner.shrink(seed, sim.run_schedule(seed), policy=legacy)
    assert shape in (runner.outcome(seed, short, policy=legacy) or "")
    print(runner.report(seed, short, policy=legacy))


def test_old_code_split_brain_shapes():
    """Both named shapes of issue 16 appear among the old code's shrunk failures: a partition
    during the fence and a returning primary."""
    shapes = set()
    for seed in range(400):
        message = runner.outcome(seed, policy=legacy)
        if not message or "two running primaries" not in message:
            continue
        short = runner.shrink(seed, sim.run_schedule(seed), policy=legacy)
        try:
            sim.run(seed, events=short, policy=legacy)
        except sim.Violation as exc:
            last = exc.world.timeline[-1]
        if " started " in last:
            shapes.add("returning primary")
        elif any(e[0].startswith("isolate") or e[0] == "cut" for _, e in short):
            shapes.add("partition")
        if len(shapes) == 2:
            break
    assert shapes == {"returning primary", "partition"}, shapes


# --- keeper mode: two nodes and the arbiter ------------------------------------------------------

def test_random_keeper_schedules_keep_every_invariant():
    count, failures, seconds = runner.run_many(KEEPER_SCHEDULES, workers=2, mode="keeper")
    detail = ""
    if failures:
        seed = failures[0][0]
        short = runner.shrink(seed, keeper_sim.run_schedule(seed), model=keeper_sim)
        detail = runner.report(seed, short, model=keeper_sim)
    assert not failures, "%d of %d keeper schedules broke an invariant; first, shrunk:\n%s" % (
        len(failures), count, detail)
    print("%d keeper schedules in %.1f s (%.0f/s)" % (count, seconds, count / seconds))


def keeper_primaries(world):
    return [n for n in world.names if world.nodes[n].running and world.nodes[n].primary]


def promotions(world):
    return [line for line in world.timeline if "promoted" in line]


def test_keeper_link_cut_with_both_nodes_reaching_the_arbiter_promotes_nothing():
    """Issue 18's split brain: the old keeper promoted the standby and both acknowledged writes."""
    events = [(1.0, ("cut", "n1", "n2")), (20.0, ("heal",))]
    with pytest.raises(sim.Violation, match="two nodes acknowledged writes"):
        keeper_sim.run(1, events=events, policy=legacy.Keeper())
    world = keeper_sim.run(1, events=events)
    assert not promotions(world) and keeper_primaries(world) == ["n1"], "\n".join(world.timeline)
    assert any("asynchronous replication" in line for line in world.timeline)


def test_keeper_kill_primary_promotes_within_the_keepalive_budget():
    world = keeper_sim.run(2, events=[(1.0, ("crash", "n1"))])
    promoted = promotions(world)
    assert promoted and keeper_primaries(world) == ["n2"], "\n".join(world.timeline)
    budget = keeper_sim.BEAT * keeper_sim.COUNT + keeper_sim.BEAT * 1.1
    assert float(promoted[0].split()[0]) - (keeper_sim.SETTLE + 1.0) <= budget


def test_keeper_old_primary_named_in_the_lease_after_a_switchover_promotes_only_as_any_standby():
    """After a switchover the lease still names the old primary until the new one renews it;
    cut from it for one beat, the old primary once promoted at once, without the failure count."""
    cut_at = 4.0
    events = [(0.5, ("cut", "n2", keeper_sim.ARBITER)), (1.0, ("switchover", "n2")), (cut_at, ("cut", "n1", "n2"))]
    world = keeper_sim.run(1, events=events)
    promoted = [line for line in promotions(world) if "n1" in line.split("promoted")[0]]
    earliest = keeper_sim.SETTLE + cut_at + keeper_sim.BEAT * (keeper_sim.COUNT - 1)
    assert all(float(line.split()[0]) >= earliest for line in promoted), "\n".join(world.timeline)


@pytest.mark.parametrize("first", [("arbiter_down",), ("break_replication", "n2")])
def test_keeper_standby_does_not_promote_without_the_arbiter_or_when_not_synchronous(first):
    world = keeper_sim.run(3, events=[(1.0, first), (8.0, ("crash", "n1")), (25.0, ("heal",))], strict=False)
    assert not [line for line in promotions(world) if float(line.split()[0]) < keeper_sim.SETTLE + 25.0], \
        "\n".join(world.timeline)


def test_keeper_strict_mode_waits_for_the_standby_so_it_may_take_over():
    """With pgha_synchronous_mode_strict the primary never goes asynchronous: commits wait
    for the broken standby, which therefore lacks none and may take over."""
    world = keeper_sim.run(3, events=[(1.0, ("break_replication", "n2")), (8.0, ("crash", "n1")),
                                      (25.0, ("heal",))], strict=True)
    assert not [line for line in world.timeline if "asynchronous replication" in line], "\n".join(world.timeline)
    assert [line for line in promotions(world) if " n2 " in line], "\n".join(world.timeline)


def test_keeper_switchover_leaves_the_new_primary_in_place():
    """Found on the lab: after a switchover the old primary, now a standby, still held the lease
    and 'finished its promotion' (fencing the new primary) before the new one took the lease."""
    for seed in range(30):        # the keepers' clock rates and phases differ per seed
        world = keeper_sim.run(seed, events=[(1.0, ("switchover", "n2")), (15.0, ("heal",))])
        assert keeper_primaries(world) == ["n2"], "\n".join(world.timeline)
        assert not [line for line in world.timeline if " n1 promoted" in line or "fenced n2" in line]
        assert world.lease["holder"] == "n2"


def test_keeper_returning_old_primary_stays_down():
    """Power-off of the primary, failover, power-on with its peer unreachable at first."""
    world = keeper_sim.run(4, events=[(1.0, ("poweroff", "n1")), (15.0, ("cut", "n1", "n2")), (15.5, ("poweron", "n1")),
                                      (30.0, ("heal",))])
    starts = [line for line in world.timeline if line.split()[1:3] == ["n1", "start"]]
    assert starts and "refused" in starts[0] and "arbiter's lease belongs to n2" in starts[0], \
        "\n".join(world.timeline)


def test_a_stopped_new_primary_is_not_rebuilt_from_the_old_primary_that_came_back():
    """Found by the keeper simulator (seed 9552): the old primary, isolated while the standby
    took over, ran on after the heal with the arbiter down; rebuild.yml of the stopped new
    primary would have cloned the old one and dropped the new timeline's acknowledged commits."""
    events = [(9.6, ("isolate", "n1")), (17.1, ("arbiter_down",)), (25.7, ("stop", "n2")), (26.2, ("heal",)),
              (45.3, ("rebuild", "n2")), (53.0, ("arbiter_up",))]
    world = keeper_sim.run(9552, events=events, strict=False)
    assert [line for line in world.timeline if "rebuild of n2 refused" in line], "\n".join(world.timeline)


def test_a_keeper_killed_between_its_claim_and_its_promotion_finishes_it_when_it_starts_again(monkeypatch):
    """The standby's keeper dies (the watchdog, a crash) right after its CLAIM took the lease:
    the claimed term is on disk (state file) before the CLAIM is sent, so the keeper that starts
    again promotes. One that forgot it would leave the lease naming a standby nobody promotes."""
    events = [(1.0, ("keeper_dies", "n2")), (2.0, ("crash", "n1"))]
    world = keeper_sim.run(2, events=events)
    assert [line for line in world.timeline if "n2 keeper died after claim of claim, promote" in line], \
        "\n".join(world.timeline)
    assert keeper_primaries(world) == ["n2"], "\n".join(world.timeline)
    monkeypatch.setattr(keeper_sim.Node, "restarted_state",
                        lambda node: dict((k, v) for k, v in node.state.items() if k == "lease_seen"))
    with pytest.raises(sim.Violation, match="liveness"):
        keeper_sim.run(2, events=events)


class ForgetfulKeeper(keeper_sim.Policy):
    """The keeper before it remembered the lease row it read (an older row was taken as true)."""

    @staticmethod
    def keeper_step(facts, state, count, strict=False):
        lease = facts.get("lease") and dict((k, v) for k, v in facts["lease"].items() if k != "version")
        return keeper.keeper_step(dict(facts, lease=lease), state, count, strict)


def test_keeper_standby_does_not_take_over_on_a_restored_arbiter():
    """The arbiter restored from a backup taken before the primary went asynchronous: its row
    says the standby was synchronous again. The standby read the newer row: it does not
    promote (the old keeper did, and lost the commits acknowledged asynchronously); once
    every fault is repaired the old primary starts on the row it remembers and renews it."""
    events = [(1.0, ("arbiter_backup",)), (3.0, ("break_replication", "n2")), (12.0, ("crash", "n1")),
              (12.5, ("arbiter_restore",)), (30.0, ("fix_replication", "n2"))]
    with pytest.raises(sim.Violation, match="acknowledged commits missing"):
        keeper_sim.run(5, events=events, policy=ForgetfulKeeper(), strict=False)
    world = keeper_sim.run(5, events=events, strict=False)
    assert any("asynchronous replication" in line for line in world.timeline), "\n".join(world.timeline)
    assert not promotions(world) and keeper_primaries(world) == ["n1"], "\n".join(world.timeline)


def test_keeper_old_primary_named_by_a_restored_arbiter_fences_itself():
    """The arbiter restored to a row naming the old primary (before the standby took over);
    both nodes power on together and start on the rows they remember: the old primary sees
    its peer on a newer timeline and fences itself (it used to fence the new primary)."""
    events = [(1.0, ("arbiter_backup",)), (2.0, ("poweroff", "n1")), (8.0, ("poweroff", "n2")),
              (10.0, ("arbiter_restore",)), (20.0, ("poweron", "n1")), (20.0, ("poweron", "n2"))]
    for seed in range(20):        # which keeper beats first differs per seed
        world = keeper_sim.run(seed, events=events, strict=True)
        assert [line for line in world.timeline if "n1 fenced itself" in line], "\n".join(world.timeline)
        assert not [line for line in world.timeline if "fenced n2" in line], "\n".join(world.timeline)
        assert keeper_primaries(world) == ["n2"] and world.lease["holder"] == "n2", "\n".join(world.timeline)


@pytest.mark.parametrize("step", [-30.0, -300.0])
def test_keeper_failover_after_the_arbiter_clock_stepped_back(step):
    """Found in review of a first version that compared the arbiter's time of each change: once
    the arbiter's clock stepped back, every renewal looked older than the row the standby
    remembered, and a primary that died then was never replaced. Rows carry a version now."""
    world = keeper_sim.run(7, events=[(1.0, ("arbiter_clock", step)), (4.0, ("crash", "n1"))], strict=False)
    promoted = promotions(world)
    assert promoted and keeper_primaries(world) == ["n2"], "\n".join(world.timeline)
    budget = keeper_sim.BEAT * keeper_sim.COUNT + keeper_sim.BEAT * 1.1
    assert float(promoted[0].split()[0]) - (keeper_sim.SETTLE + 4.0) <= budget, "\n".join(world.timeline)
