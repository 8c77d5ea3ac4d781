"""WAL archive cleanup (PG-REX parity): archived WAL older than every node's last
checkpoint is removed, newer WAL and timeline history files stay, check mode lists only."""
from cluster_probe import lab_exec, node_sql, primaries, survey, wait_for
from conftest import outcome

ARCHIVE = "/var/lib/pgha/wal_archive"


def archived(node):
    return sorted(lab_exec(node, "ls %s" % ARCHIVE).stdout.split())


def segments(names):
    return [n for n in names if len(n) == 24]


def redo_segment(node):
    out = lab_exec(node, "LC_ALL=C /usr/lib/postgresql/*/bin/pg_controldata /var/lib/postgresql/*/main").stdout
    return out.split("REDO WAL file:")[1].split()[0][8:]


def test_archive_cleanup_keeps_what_a_node_needs(lab, ansible):
    primary = primaries(survey(lab))[0]
    node_sql(lab, primary, "CREATE TABLE IF NOT EXISTS pgha_archive_probe (at timestamptz DEFAULT now())")
    for _ in range(3):
        node_sql(lab, primary, "INSERT INTO pgha_archive_probe DEFAULT VALUES")
        last = node_sql(lab, primary, "SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    assert wait_for(lambda: last in archived(primary), 20), "the primary did not archive %s" % last
    # A checkpoint on the primary, then a restartpoint on each standby once it replayed it,
    # moves every node's REDO point past the switched WAL files.
    node_sql(lab, primary, "CHECKPOINT")
    end = node_sql(lab, primary, "SELECT pg_current_wal_lsn()::text")[0][0]
    for node in lab["nodes"]:
        if node != primary:
            assert wait_for(lambda: node_sql(lab, node, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (end,))[0][0],
                            20), "%s did not replay the checkpoint" % node
            node_sql(lab, node, "CHECKPOINT")
    before = archived(primary)
    keep_from = min(redo_segment(node) for node in lab["nodes"])
    older = [n for n in segments(before) if n[8:] < keep_from]
    assert older, "nothing older than %s in the archive: %s" % (keep_from, before)

    checked = ansible.playbook("pgha.cluster.archive_cleanup", "--check")
    assert checked.returncode == 0, outcome(checked)
    assert "would remove %d archived WAL files" % len(older) in checked.stdout
    assert archived(primary) == before

    cleaned = ansible.playbook("pgha.cluster.archive_cleanup")
    assert cleaned.returncode == 0, outcome(cleaned)
    after = archived(primary)
    assert not set(older) & set(after), "still archived: %s" % sorted(set(older) & set(after))
    assert set(before) - set(older) <= set(after), "removed files a node may need"
    assert [n for n in after if n.endswith(".history")] == [n for n in before if n.endswith(".history")]

    again = ansible.playbook("pgha.cluster.archive_cleanup")
    assert again.returncode == 0 and "removed 0 archived WAL files" in again.stdout
    recap = [line for line in again.stdout.split("PLAY RECAP")[1].splitlines() if "ok=" in line]
    assert recap and all("changed=0" in line for line in recap), recap
