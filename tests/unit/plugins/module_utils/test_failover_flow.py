"""The failover request sequence against a scripted executor (no servers: the flow only
decides; the simulator and the lab tests run it against nodes)."""
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import failover_flow, safety


def standby(lsn, upstream=None):
    return {"reachable": True, "in_recovery": True, "timeline": 1, "received_lsn_bytes": lsn,
            "system_identifier": "1", "upstream": upstream, "upstream_age": None, "replication": []}


DOWN = {"reachable": False, "in_recovery": None}
SILENT = dict(DOWN, host_answers=False)     # powered off or cut away: the TCP probe timed out


class Executor:
    """fence: {name: verified result} an attempt gives; slow: attempts that end only when
    waited for; revoke: True (all), False (none) or the names it stops."""
    def __init__(self, facts, fence=None, revoke=True, slow=False):
        self.facts, self.fence, self.revoke, self.clock, self.requests = facts, fence or {}, revoke, 0.0, []
        self.calls, self.slow = [], slow

    def __call__(self, request):
        self.requests.append(request[0])
        self.calls.append(request)
        kind = request[0]
        if kind == "record":
            self.recorded = request[1:]
        if kind == "now":
            return self.clock
        if kind == "sleep":
            self.clock += request[1]
        if kind == "survey":
            return self.facts
        if kind in ("fence", "fence_background"):
            waited = kind == "fence" or request[2]
            return dict((n, self.fence[n]) for n in request[1] if n in self.fence and (waited or not self.slow))
        if kind == "revoke":
            return request[1] if self.revoke is True else [n for n in request[1] if n in (self.revoke or ())]
        if kind == "promote":
            return True
        return None


def run(executor, total=3, **options):
    steps = failover_flow.failover_steps("a", total, dict(safety.DEFAULT_LEASE), 30.0, **options)
    return failover_flow.drive(steps, executor)


def test_fast_path_fences_then_promotes_the_most_advanced():
    fence = {"a": {"kind": "primary", "timeline": 1}}
    executor = Executor({"a": DOWN, "b": standby(10), "c": standby(20)}, fence=fence)
    result = run(executor)
    assert result["result"] == "promoted" and result["candidate"] == "c"
    assert "sleep" not in executor.requests and "revoke" not in executor.requests
    # the verified fence of the old primary is recorded on the new one, after the promotion
    assert executor.recorded == ("c", ["a"]) and executor.requests.index("record") > executor.requests.index("promote")
    # pgpool may go on right after the promotion: the record, the standbys and the checkpoint
    # come after the detach; the record before the standbys (a repoint may wait for a slow one
    # while the new primary's guard needs the record to count the fenced node)
    after = executor.requests[executor.requests.index("promote") + 1:]
    assert [r for r in after if r != "log"] == ["detach", "record", "repoint", "checkpoint"]


def test_unreachable_primary_waits_out_the_lease():
    executor = Executor({"a": DOWN, "b": standby(10), "c": standby(20)})
    result = run(executor)
    assert result["result"] == "promoted" and result["revoked"] == ["b", "c"]
    assert executor.recorded == ("c", [])   # a lease ran out: nothing proven fenced for good
    assert executor.clock >= safety.revocation_wait(safety.DEFAULT_LEASE)


class GivenBack(Executor):
    """After the first revocation, one survey finds b pointed at the old primary again (another
    hook's undo, an operator) at `at` seconds."""
    def __init__(self, facts, at):
        super().__init__(facts)
        self.at, self.shown, self.revoked_at = at, False, []

    def __call__(self, request):
        if request[0] == "revoke":
            self.revoked_at.append(self.clock)
        if request[0] == "survey" and self.revoked_at and not self.shown and self.clock >= self.at:
            self.shown = True
            return dict(self.facts, b=dict(self.facts["b"], follows="a"))
        return super().__call__(request)


def test_a_revoked_standby_given_back_meanwhile_is_revoked_again_and_the_wait_starts_over():
    executor = GivenBack({"a": DOWN, "b": standby(10), "c": standby(20)}, at=2.0)
    result = run(executor)
    assert result["result"] == "promoted"
    assert len(executor.revoked_at) == 2 and [r[1] for r in executor.calls if r[0] == "revoke"][1] == ["b"]
    assert executor.clock - executor.revoked_at[1] >= safety.revocation_wait(safety.DEFAULT_LEASE)


def steps_of(executor):
    return [r for r in executor.calls if r[0] not in ("now", "log")]


def test_a_silent_old_primary_gets_its_fence_attempt_beside_the_lease_wait():
    """No fence device: ssh to a host that did not answer the probe tells only after its
    timeout: its attempt starts and is not waited for, the standbys are revoked meanwhile;
    the surveys after the revocation do not wait for the silent host again."""
    executor = Executor({"a": SILENT, "b": standby(10), "c": standby(20)})
    result = run(executor)
    assert result["result"] == "promoted" and result["revoked"] == ["b", "c"]
    steps = steps_of(executor)
    assert steps[:3] == [("survey", []), ("fence_background", ["a"], False), ("revoke", ["b", "c"])], steps
    assert not [r for r in steps if r[0] == "fence" or r[0] == "fence_background" and r[2]], \
        "a silent host's fence was waited for"
    assert all(r == ("survey", ["a"]) for r in steps[3:] if r[0] == "survey")
    assert executor.clock >= safety.revocation_wait(safety.DEFAULT_LEASE)


def test_a_silent_old_primary_fenced_while_its_lease_runs_out_is_promoted_over_at_once():
    executor = Executor({"a": SILENT, "b": standby(10), "c": standby(20)}, fence={"a": {"kind": "primary", "timeline": 1}})
    result = run(executor)
    assert result["result"] == "promoted" and result["fenced"] == ["a"] and "sleep" not in executor.requests


POWERED_OFF = {"kind": "primary", "timeline": None, "powered_off": True}


def test_with_a_fence_device_a_silent_host_is_fenced_first_and_its_standbys_revoked_without_a_wait():
    """Powered off, the old primary has no lock: the standbys stop following it before the
    promotion (powered on, its start guard finds none to confirm it), it is read again after
    the revocation (still off), and the new primary does not count it as fenced for good."""
    executor = Executor({"a": SILENT, "b": standby(10), "c": standby(20)}, fence={"a": POWERED_OFF})
    result = run(executor, fence_device=True)
    assert result["result"] == "promoted" and result["revoked"] == ["b", "c"] and "sleep" not in executor.requests
    steps = steps_of(executor)
    assert steps[:4] == [("survey", []), ("fence", ["a"]), ("survey", ["a"]), ("revoke", ["b", "c"])], steps
    assert steps[4] == ("survey", []) and steps[5][0] == "promote", "not read again after the revocation"
    assert executor.recorded == ("c", [])


class PoweredOnAfterTheFence(Executor):
    """The node the fence command powered off answers again once the standbys are revoked;
    a fence over ssh then gives `fence_anew`."""
    def __init__(self, fence_anew):
        Executor.__init__(self, {"a": SILENT, "b": standby(10), "c": standby(20)}, fence={"a": POWERED_OFF})
        self.fence_anew = fence_anew

    def __call__(self, request):
        if request[0] == "revoke":
            self.facts = dict(self.facts, a=dict(DOWN, host_answers=True))
        if request[0] == "fence" and "revoke" in self.requests:
            self.fence = self.fence_anew
        return Executor.__call__(self, request)


def test_a_powered_off_primary_that_answers_again_is_fenced_anew_before_the_promotion():
    executor = PoweredOnAfterTheFence({"a": {"kind": "primary", "timeline": 1}})
    result = run(executor, fence_device=True)
    assert result["result"] == "promoted" and "sleep" not in executor.requests
    assert executor.recorded == ("c", ["a"])      # locked now: fenced for good


def test_a_powered_off_primary_that_answers_again_and_cannot_be_fenced_waits_out_its_lease():
    executor = PoweredOnAfterTheFence({})
    result = run(executor, fence_device=True)
    assert result["result"] == "promoted" and "sleep" in executor.requests
    assert executor.clock >= safety.revocation_wait(safety.DEFAULT_LEASE)


def test_a_forced_failover_still_tries_to_fence_a_silent_old_primary():
    steps = failover_flow.failover_steps("a", 2, dict(safety.DEFAULT_LEASE), 30.0, force=True)
    executor = Executor({"a": SILENT, "b": standby(10)})
    result = failover_flow.drive(steps, executor)
    assert result["result"] == "promoted"
    assert ("fence_background", ["a"], False) in executor.calls
    assert executor.requests.index("fence_background") < executor.requests.index("promote")


@pytest.mark.parametrize("fence, result", [({"a": {"kind": "primary", "timeline": 1}}, "promoted"), ({}, "refused")])
def test_a_refusal_waits_for_the_fence_attempt_still_running(fence, result):
    """Two nodes, no lease: only a verified fence allows the promotion, and the attempt on a
    silent host ends only after ssh's timeout."""
    steps = failover_flow.failover_steps("a", 2, dict(safety.DEFAULT_LEASE), 30.0)
    executor = Executor({"a": SILENT, "b": standby(10)}, fence=fence, slow=True)
    assert failover_flow.drive(steps, executor)["result"] == result
    assert ("fence_background", ["a"], True) in executor.calls


def test_a_fence_that_lands_in_the_background_is_followed_by_a_survey_before_the_promotion():
    """Until the old primary stopped, a standby that is not the candidate may have acknowledged
    commits: the candidate is chosen again on facts read after the fence."""
    class LandsLate(Executor):
        def __call__(self, request):
            if request[0] == "fence_background" and self.requests.count("fence_background") == 1:
                self.fence = {"a": {"kind": "primary", "timeline": 1}}
                self.facts = dict(self.facts, b=standby(30))    # b got the last commits meanwhile
            return Executor.__call__(self, request)

    executor = LandsLate({"a": SILENT, "b": dict(standby(10, "a"), upstream_age=0.5), "c": standby(20)})
    result = run(executor)
    assert result["result"] == "promoted" and result["candidate"] == "b", result
    steps = [r[0] for r in steps_of(executor)]
    landed = len(steps) - 1 - steps[::-1].index("fence_background")
    assert "survey" in steps[landed:steps.index("promote")]


def test_a_partly_failed_revocation_gives_back_the_standbys_it_stopped():
    executor = Executor({"a": DOWN, "b": standby(10), "c": standby(20)}, revoke=["b"])
    result = run(executor)
    assert result["result"] == "refused" and "could not stop c" in result["reason"]
    assert executor.calls[-1] == ("repoint", ["b"], "a")


def test_a_forced_failover_goes_on_when_a_standby_could_not_be_revoked():
    executor = Executor({"a": SILENT, "b": standby(10), "c": standby(20)}, fence={"a": POWERED_OFF}, revoke=["c"])
    result = run(executor, fence_device=True, force=True)
    assert result["result"] == "promoted"
    assert [c for c in executor.calls if c[0] == "log" and "b could not be stopped" in c[1]]
    steps = steps_of(executor)
    assert ("survey", []) in steps[steps.index(("revoke", ["b", "c"])):], "the powered-off node was not read again"


def test_a_forced_failover_revokes_the_standbys_of_a_powered_off_node_it_promotes_past():
    """Two nodes (no lease): the gate refuses, the operator forces; the node powered off has
    no lock, so its standby stops following it first."""
    steps = failover_flow.failover_steps("a", 2, dict(safety.DEFAULT_LEASE), 30.0, force=True, fence_device=True)
    executor = Executor({"a": SILENT, "b": standby(10)}, fence={"a": POWERED_OFF})
    result = failover_flow.drive(steps, executor)
    assert result["result"] == "promoted" and result["revoked"] == ["b"], result


def test_a_none_result_midway_gives_the_standbys_back_to_the_primary_that_runs():
    class BRunsAsPrimary(Executor):
        def __call__(self, request):
            if request[0] == "sleep":
                self.facts = dict(self.facts, b={"reachable": True, "in_recovery": False, "timeline": 2,
                                                 "received_lsn_bytes": 30, "system_identifier": "1"})
            return Executor.__call__(self, request)

    executor = BRunsAsPrimary({"a": SILENT, "b": standby(10), "c": standby(20)})
    result = run(executor)
    assert result["result"] == "none", result
    assert executor.calls[-1] == ("repoint", ["c"], "b")


def test_the_quorum_rule_is_applied_again_when_the_candidate_is_lost_during_the_lease_wait():
    """c, the most advanced standby, may hold the only copy of acknowledged commits: once it
    is gone, b is no longer a safe candidate, and the revoked standbys are given back."""
    class LosesC(Executor):
        def __call__(self, request):
            if request[0] == "sleep":
                self.facts = dict(self.facts, c=SILENT)
            return Executor.__call__(self, request)

    executor = LosesC({"a": SILENT, "b": standby(10), "c": standby(20)})
    result = run(executor, sync_required=1, sync_names=("b", "c"))
    assert result["result"] == "refused" and result["stage"] == "quorum", result
    assert "promote" not in executor.requests
    assert executor.calls[-1] == ("repoint", ["b", "c"], "a")


def test_a_standby_that_still_hears_the_primary_ends_in_a_refusal_and_changes_nothing():
    executor = Executor({"a": DOWN, "b": dict(standby(10, "a"), upstream_age=0.1), "c": standby(20)})
    result = run(executor)
    assert result["result"] == "refused" and "gave up" in result["reason"]
    assert "promote" not in executor.requests and "revoke" not in executor.requests


def test_a_failed_revocation_gives_the_standbys_back():
    executor = Executor({"a": DOWN, "b": standby(10), "c": standby(20)}, revoke=False)
    result = run(executor)
    assert result["result"] == "refused" and "promote" not in executor.requests


def test_quorum_refusal_in_sync_mode():
    """c may hold commits b lacks: refused after the fence showed nothing that lifts it."""
    fence = {"a": {"kind": "primary", "timeline": 1}, "c": {"kind": "primary", "timeline": 1}}
    executor = Executor({"a": DOWN, "b": standby(10), "c": DOWN, "d": standby(5), "e": standby(5)}, fence=fence)
    result = run(executor, total=5, sync_required=1, sync_names=("b", "c"))
    assert result["result"] == "refused" and result["stage"] == "quorum", result
    assert "promote" not in executor.requests


def test_a_failover_no_fence_could_allow_stops_no_node():
    """One standby of three runs (the others boot, or the primary restarts after a crash):
    no new primary could hold a lease, so the primary is not fenced; left alone it comes back."""
    for options in ({}, {"sync_required": 1, "sync_names": ("b", "c")}):
        executor = Executor({"a": DOWN, "b": standby(10), "c": DOWN}, fence={"a": {"kind": "primary", "timeline": 1}})
        result = run(executor, **options)
        assert result["result"] == "refused" and result["stage"] == "gate", result
        assert "only b of 3 servers run" in result["reason"]
        assert "fence" not in executor.requests and "promote" not in executor.requests


def test_without_a_failed_node_the_flow_fails_over_the_node_the_standbys_follow():
    """failover.yml without failed_node: an unreachable standby (a) sorts before the failed
    primary (b); the quorum rule must leave out b, not a, which may hold acknowledged commits."""
    following_b = dict(standby(20), follows="b")
    executor = Executor({"a": DOWN, "b": DOWN, "c": following_b, "d": dict(standby(10), follows="b"),
                         "e": dict(standby(5), follows="b")},
                        fence={"a": {"kind": "standby", "timeline": 1}, "b": {"kind": "primary", "timeline": 1}})
    steps = failover_flow.failover_steps(None, 5, dict(safety.DEFAULT_LEASE), 30.0, sync_required=1,
                                         sync_names=("a", "b", "c", "d"))
    result = failover_flow.drive(steps, executor)
    assert result["result"] == "refused" and result["stage"] == "quorum", result
    assert "ANY 1 of a, c, d" in result["reason"], result["reason"]


def test_a_synchronous_standby_powered_off_by_the_fence_command_still_may_hold_acknowledged_commits():
    """The fence command tells no timeline: a node it powered off is not taken for one that
    never streamed from the failed primary, so the quorum rule still counts it as missing."""
    fence = {"a": {"kind": "primary", "timeline": 1}, "c": {"kind": "primary", "timeline": None}}
    executor = Executor({"a": DOWN, "b": standby(10), "c": DOWN, "d": standby(5), "e": standby(5)}, fence=fence)
    result = run(executor, total=5, sync_required=1, sync_names=("b", "c"))
    assert result["result"] == "refused" and result["stage"] == "quorum", result
    assert "promote" not in executor.requests


def test_an_operator_candidate_is_promoted_when_it_is_as_advanced():
    fence = {"a": {"kind": "primary", "timeline": 1}}
    result = run(Executor({"a": DOWN, "b": standby(20), "c": standby(20)}, fence=fence), candidate="b")
    assert result["result"] == "promoted" and result["candidate"] == "b"


def test_an_operator_candidate_behind_another_standby_is_refused():
    fence = {"a": {"kind": "primary", "timeline": 1}}
    executor = Executor({"a": DOWN, "b": standby(10), "c": standby(20)}, fence=fence)
    result = run(executor, candidate="b")
    assert result["result"] == "refused" and result["stage"] == "plan" and "promote" not in executor.requests


def test_force_overrides_a_refusal_and_says_so():
    executor = Executor({"a": DOWN, "b": standby(10), "c": DOWN}, fence={"a": {"kind": "primary", "timeline": 1}})
    result = run(executor, sync_required=1, sync_names=("b", "c"), force=True)
    assert result["result"] == "promoted" and "promote" in executor.requests
    steps = failover_flow.failover_steps("a", 2, dict(safety.DEFAULT_LEASE), 30.0, force=True)
    result = failover_flow.drive(steps, Executor({"a": DOWN, "b": standby(10)}))
    assert result["result"] == "promoted" and result["reason"].startswith("forced by the operator although")


def test_two_nodes_without_a_verified_fence_are_refused_unless_forced():
    steps = failover_flow.failover_steps("a", 2, dict(safety.DEFAULT_LEASE), 30.0)
    executor = Executor({"a": DOWN, "b": standby(10)})
    result = failover_flow.drive(steps, executor)
    assert result["result"] == "refused" and result["stage"] == "gate" and "promote" not in executor.requests


PRIMARY = {"reachable": True, "in_recovery": False}
STANDBY = {"reachable": True, "in_recovery": True}
STARTING = {"reachable": False, "in_recovery": None, "host_answers": True}


@pytest.mark.parametrize("facts, waited, action", [
    ({"a": DOWN, "b": STANDBY, "c": STANDBY}, 5, "retry"),        # silent: what refused may have passed
    ({"a": DOWN, "b": STANDBY, "c": DOWN}, 5, "retry"),
    ({"a": PRIMARY, "b": STANDBY, "c": STANDBY}, 5, "attach"),    # back (a cut healed): pgpool gets it back
    ({"a": STARTING, "b": STANDBY, "c": STANDBY}, 5, "wait"),     # its host answers: crash recovery, start guard
    ({"a": STANDBY, "b": STANDBY, "c": STANDBY}, 5, "wait"),      # answers, not a primary (yet)
    ({"a": STARTING, "b": STANDBY, "c": STANDBY}, 61, "retry"),   # never came back (its guard fenced it)
    ({"a": DOWN, "b": PRIMARY, "c": STANDBY}, 5, "give up"),      # someone else promoted it
    ({"a": PRIMARY, "b": PRIMARY, "c": STANDBY}, 5, "give up"),
])
def test_after_a_refused_failover_the_hook_attaches_retries_waits_or_gives_up(facts, waited, action):
    assert failover_flow.after_refusal(facts, "a", waited) == action
