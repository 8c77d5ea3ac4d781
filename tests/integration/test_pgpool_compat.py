"""pgpool-II 4.3.5's streaming-replication check sends pg_current_wal_lsn() to a standby while
a failover is under way, and then holds the lock that pgpool's search for the new primary
waits for (roles/postgresql/tasks/users.yml): for pgpool's check user the function answers
on a standby too; every other user still gets PostgreSQL's own."""
import re
import shlex

import psycopg2
import pytest

from cluster_probe import lab_exec, node_sql, primaries, survey

LSN = re.compile(r"^[0-9A-F]+/[0-9A-F]+$")


def as_check_user(lab, node, sql):
    """psql on the node as pgpool's check user over TCP (pool_hba/pg_hba trust it from the
    cluster's addresses only): (exit code, output)."""
    out = lab_exec(node, "PGPASSWORD=%s psql -h %s -U pgha_check -d postgres -XAtc %s" % (
        shlex.quote(lab["pgha_pgpool_check_password"]), lab["nodes"][node], shlex.quote(sql)))
    return out.returncode, (out.stdout + out.stderr).strip()


def test_pgpools_check_user_reads_a_wal_position_on_every_node(lab, healthy_cluster):
    primary = healthy_cluster
    for node in sorted(lab["nodes"]):
        rc, out = as_check_user(lab, node, "SELECT pg_current_wal_lsn()")
        assert rc == 0 and LSN.match(out), (node, out)
    standby = sorted(n for n in lab["nodes"] if n != primary)[0]
    with pytest.raises(psycopg2.Error, match="recovery is in progress"):
        node_sql(lab, standby, "SELECT pg_current_wal_lsn()")    # the admin user: PostgreSQL's own
    assert primaries(survey(lab)) == [primary]
