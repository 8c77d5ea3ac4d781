"""The standing ssh links (ssh role): every pgpool node keeps one to every PostgreSQL node, over
which the failover hook fences at once; site.yml drops the links to nodes that left the cluster."""
from cluster_probe import lab_exec
from conftest import outcome

# An address no lab node has (TEST-NET-1): a node that was removed from the inventory.
GONE = "pgha-ssh-link@192.0.2.1"


def link_state(node, unit):
    out = lab_exec(node, "systemctl is-enabled %s; systemctl is-active %s" % (unit, unit)).stdout.split()
    return out[0] if out else "", out[-1] if out else ""


def test_site_stops_the_link_to_a_node_that_left_the_cluster_and_keeps_the_others(ansible, lab, healthy_cluster):
    node = sorted(lab["nodes"])[0]
    assert lab_exec(node, "systemctl enable --now %s" % GONE).returncode == 0
    try:
        run = ansible.playbook("pgha.cluster.site")
        assert run.returncode == 0, outcome(run)
        assert link_state(node, GONE) == ("disabled", "inactive"), "the link to a node that left still runs"
        for name in sorted(lab["nodes"]):
            for address in sorted(lab["nodes"].values()):
                assert link_state(name, "pgha-ssh-link@%s" % address) == ("enabled", "active"), \
                    "%s lost its link to %s" % (name, address)
    finally:
        lab_exec(node, "systemctl disable --now %s" % GONE)
