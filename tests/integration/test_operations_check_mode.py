"""--check is a dry run for every operation playbook: rc 0 where the plan is possible, the
plan printed, no lock or marker left behind and no server changed."""
import pytest

from cluster_probe import lab_exec, primaries, survey
from conftest import outcome

MARKERS = "/var/lib/pgha/operation.lock /var/lib/pgha/maintenance /var/lib/pgha/maintenance.site /var/lib/pgha/fenced"


def roles(lab):
    return dict((name, (node["role"], node.get("timeline"))) for name, node in survey(lab).items())


def standby_of(lab):
    return sorted(n for n in lab["nodes"] if n not in primaries(survey(lab)))[0]


@pytest.mark.parametrize("playbook, extra", [
    ("failover", []),
    ("follow_primary", []),
    ("rebuild", ["-e", "target={standby}"]),
    ("rebuild", ["-e", "target={standby}", "-e", "force=true"]),
    ("switchover", ["-e", "candidate={standby}"]),
    ("start", []),
    ("stop", []),
    ("archive_cleanup", []),
    ("status", []),
], ids=lambda v: v if isinstance(v, str) else " ".join(v).replace("-e ", ""))
def test_check_mode_changes_nothing(ansible, lab, healthy_cluster, playbook, extra):
    before = roles(lab)
    standby = standby_of(lab)
    result = ansible.playbook("pgha.cluster.%s" % playbook, "--check", *[arg.format(standby=standby) for arg in extra])
    assert result.returncode == 0, outcome(result)
    assert roles(lab) == before, "a --check run changed a server"
    for node in lab["nodes"]:
        left = lab_exec(node, "ls -d %s 2>/dev/null" % MARKERS).stdout.split()
        assert left == [], "%s: --check left %s" % (node, left)
    for node in lab["nodes"]:
        assert lab_exec(node, "systemctl is-active pgpool2").stdout.strip() == "active", "pgpool stopped on %s" % node
