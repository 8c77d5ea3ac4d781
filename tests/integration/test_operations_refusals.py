"""Unsafe requests are refused with a clear message and change nothing."""
from cluster_probe import survey


def roles(lab):
    return dict((name, (node["role"], node.get("timeline"))) for name, node in survey(lab).items())


def primary_of(state):
    return [name for name, (role, _) in state.items() if role == "primary"][0]


def assert_refused(result, text):
    assert result.returncode != 0, "expected a refusal, the playbook succeeded"
    assert text in result.stdout, result.stdout[-2500:]


def test_failover_refused_while_primary_is_healthy(ansible, lab):
    before = roles(lab)
    result = ansible.playbook("pgha.cluster.failover", "-e", "failed_node=%s" % primary_of(before))
    assert_refused(result, "still a reachable, healthy primary")
    assert roles(lab) == before


def test_failover_refuses_unknown_failed_node(ansible, lab):
    before = roles(lab)
    assert_refused(ansible.playbook("pgha.cluster.failover", "-e", "failed_node=pg9"), "unknown failed_node 'pg9'")
    assert roles(lab) == before


def test_failover_without_failure_changes_nothing(ansible, lab):
    before = roles(lab)
    result = ansible.playbook("pgha.cluster.failover")
    assert result.returncode == 0, result.stdout[-2500:]
    assert "Nothing to do" in result.stdout
    assert roles(lab) == before


def test_rebuild_of_the_primary_is_refused(ansible, lab):
    before = roles(lab)
    assert_refused(ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % primary_of(before)),
                   "it is the current primary")
    assert roles(lab) == before


def test_rebuild_needs_a_known_target(ansible, lab):
    assert_refused(ansible.playbook("pgha.cluster.rebuild", "-e", "target=nope"), "pass -e target=NODE")


def test_follow_primary_on_a_healthy_cluster_is_idempotent(ansible, lab):
    before = roles(lab)
    result = ansible.playbook("pgha.cluster.follow_primary")
    assert result.returncode == 0, result.stdout[-2500:]
    assert "OK: one primary" in result.stdout
    assert roles(lab) == before
