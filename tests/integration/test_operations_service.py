"""Cluster stop and start in a safe order (PG-REX parity): stop.yml stops pgpool, the
primary, then the standbys; start.yml brings back the same primary, the standbys streaming
and every node attached; it refuses (starting nothing) when the only would-be primary is
fenced."""
import time

from cluster_probe import (followers_ok, lab_exec, node_sql, params, pool_attached, pool_connect, primaries, survey,
                           wait_for)
from conftest import outcome, report
from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import survey_node

FENCE_LOCK = "/var/lib/pgha/fenced"


def all_down(lab):
    return not any(f["reachable"] for f in survey(lab).values())


def pgpool_down(lab):
    return all(lab_exec(n, "systemctl is-active pgpool2").stdout.strip() != "active" for n in lab["nodes"])


def insert_marker(lab):
    conn = pool_connect(lab)
    conn.autocommit = True
    marker = int(time.time() * 1000) * 1000
    with conn.cursor() as cur:
        cur.execute("INSERT INTO pgha_chaos (id) VALUES (%s)", (marker,))
    conn.close()
    return marker


def marker_present(lab, primary, marker):
    return node_sql(lab, primary, "SELECT count(*) FROM pgha_chaos WHERE id = %s", (marker,))[0][0] == 1


def test_stop_then_start_keeps_the_primary(lab, ansible, healthy_cluster):
    primary = healthy_cluster
    marker = insert_marker(lab)
    started = time.time()
    result = ansible.playbook("pgha.cluster.stop")
    assert result.returncode == 0, outcome(result)
    stop_seconds = time.time() - started
    assert "had the shutdown checkpoint" in result.stdout, outcome(result, 2000)
    assert all_down(lab) and pgpool_down(lab), "stop.yml left a server or pgpool running"

    # The only node that may start as primary is fenced: start refuses and starts nothing.
    lab_exec(primary, "echo '{\"reason\": \"test\"}' > %s" % FENCE_LOCK)
    try:
        refused = ansible.playbook("pgha.cluster.start")
        assert refused.returncode != 0
        assert "refused, nothing changed: no node may start as primary" in refused.stdout, outcome(refused, 2000)
        assert all_down(lab) and pgpool_down(lab), "a refused start started something"
    finally:
        lab_exec(primary, "rm -f %s" % FENCE_LOCK)

    started = time.time()
    result = ansible.playbook("pgha.cluster.start")
    assert result.returncode == 0, outcome(result)
    start_seconds = time.time() - started
    assert primaries(survey(lab)) == [primary]
    assert wait_for(lambda: followers_ok(lab, primary), 20)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool did not attach every node"
    assert marker_present(lab, primary, marker), "a row committed before the stop is missing"
    assert survey_node(params(lab, lab["vip"], port=9999), local=False)["reachable"], "no session through the VIP"
    report("chaos.txt", "stop.yml %.1f s, start.yml %.1f s (primary %s kept; start refused while it was fenced)"
           % (stop_seconds, start_seconds, primary))


def test_a_node_guard_stopped_by_hand_comes_back_while_postgresql_runs(lab, healthy_cluster):
    """The failover side's lease wait counts on a cut-off primary's guard to stop it: a guard
    an operator stopped would leave that primary writable beside the new one."""
    primary = healthy_cluster
    stopped = lab_exec(primary, "systemctl stop pgha-guard")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_for(lambda: lab_exec(primary, "systemctl is-active pgha-guard").stdout.strip() == "active", 15), \
        "the node guard stayed stopped beside a running PostgreSQL"
