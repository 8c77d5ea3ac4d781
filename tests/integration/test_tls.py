"""TLS (pgha_tls, the default): PostgreSQL runs with the cluster CA's certificates and
replication verifies the primary (verify-full); pgpool-II stays without TLS unless
pgpool_ssl; certificates that do not fit the CA are refused before any host is touched.
Plaintext is refused by the nodes (except pgpool's own backend sessions while pgpool_ssl is
off), the replication user logs in only for replication, pcp answers on localhost only and
the postgres ssh key is trusted from the cluster's nodes only. The TLS switch's site.yml runs
also check that site.yml drops the standing ssh link (ssh role) to a node that left the
cluster and keeps every other (a site.yml run of their own cost a minute of CI)."""
import socket
import time

import psycopg2
import pytest

from cluster_probe import (LIVENESS_KILL, Sampler, Writer, check_no_acked_row_lost, lab_exec, node_sql, primaries,
                           stopped, survey, wait_for)
from conftest import outcome, report
from ansible_collections.pgha.cluster.plugins.module_utils import tls

# An address no lab node has (TEST-NET-1): a node that was removed from the inventory.
GONE_LINK = "pgha-ssh-link@192.0.2.1"


def test_replication_is_encrypted_and_verifies_the_primary(lab):
    primary = primaries(survey(lab))[0]
    rows = node_sql(lab, primary, "SELECT r.application_name, s.ssl FROM pg_stat_replication r "
                                  "JOIN pg_stat_ssl s USING (pid)")
    assert len(rows) == len(lab["nodes"]) - 1 and all(ssl for _, ssl in rows), rows
    for standby in (n for n in lab["nodes"] if n != primary):
        conninfo = node_sql(lab, standby, "SELECT current_setting('primary_conninfo')")[0][0]
        assert "sslmode=verify-full sslrootcert=/etc/pgha/tls/ca.crt" in conninfo, (standby, conninfo)


def test_certificates_not_signed_by_the_given_ca_are_refused_before_any_host_changes(ansible, lab, tmp_path):
    other_key = tls.new_key("ec")
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(tls.cert_pem(tls.make_ca("another CA", other_key, 1)))
    result = ansible.playbook(
        "pgha.cluster.site", "-e", "pgha_tls_ca_cert=%s" % other_ca,
        "-e", "pgha_tls_cert={{ inventory_dir }}/.pgha-tls/{{ inventory_hostname }}.crt",
        "-e", "pgha_tls_key={{ inventory_dir }}/.pgha-tls/{{ inventory_hostname }}.key")
    assert result.returncode != 0
    assert "pgha_tls_cert: not signed by the CA" in result.stdout, outcome(result)
    recap = [line for line in result.stdout.splitlines() if ": ok=" in line]
    assert recap and all("changed=0 " in line for line in recap), "\n".join(recap)
    assert "Site (2/" not in result.stdout


def refusal(**dsn):
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **dsn).close()
    return " ".join(str(refused.value).split())


def test_plaintext_is_refused_by_every_node_naming_the_missing_encryption(lab):
    for node, address in sorted(lab["nodes"].items()):
        message = refusal(host=address, port=5432, user="pgha_admin", password=lab["pgha_admin_password"],
                          sslmode="disable")
        assert "pg_hba.conf rejects connection" in message and "no encryption" in message, (node, message)


def test_the_replication_user_is_refused_outside_replication_from_a_client_network(lab):
    """The lab host is in both pgha_admin_networks and pgha_client_networks: the replication
    user may stream from there, but the reject line comes before the client line."""
    node, address = sorted(lab["nodes"].items())[0]
    message = refusal(host=address, port=5432, user="pgha_replicator", password=lab["pgha_replication_password"],
                      sslmode="require")
    assert "pg_hba.conf rejects connection" in message and "pgha_replicator" in message, (node, message)


def test_pcp_answers_on_localhost_only(lab):
    for address in [lab["vip"]] + sorted(lab["nodes"].values()):
        with pytest.raises(OSError):
            socket.create_connection((address, 9898), timeout=3).close()


def test_the_postgres_ssh_key_is_trusted_from_the_cluster_nodes_only(lab):
    for node in sorted(lab["nodes"]):
        text = lab_exec(node, "cat /var/lib/postgresql/.ssh/authorized_keys").stdout
        keys = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        sources = [set(line.split('"')[1].split(",")) if line.startswith('from="') else set() for line in keys]
        assert len(keys) == len(lab["nodes"]) and all(s == set(lab["nodes"].values()) for s in sources), (node, text)


def replication_encrypted(lab, primary):
    rows = node_sql(lab, primary, "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
    return [ssl for (ssl,) in rows]


def test_switching_an_existing_cluster_to_tls_rolls_without_a_failover(lab, ansible, healthy_cluster):
    """A cluster deployed without TLS (pgha_tls=false) and switched on by site.yml under a
    writer: no promotion, no acknowledged row lost, writes go on (liveness bound only), and
    replication is encrypted afterwards."""
    primary = healthy_cluster
    linked = sorted(lab["nodes"])[0]
    assert lab_exec(linked, "systemctl enable --now %s" % GONE_LINK).returncode == 0
    try:
        off = ansible.playbook("pgha.cluster.site", "-e", "pgha_tls=false")
        assert off.returncode == 0, outcome(off)
        assert link_state(linked, GONE_LINK) == ("disabled", "inactive"), "the link to a node that left still runs"
        for name in sorted(lab["nodes"]):
            for address in sorted(lab["nodes"].values()):
                assert link_state(name, "pgha-ssh-link@%s" % address) == ("enabled", "active"), \
                    "%s lost its link to %s" % (name, address)
    finally:
        lab_exec(linked, "systemctl disable --now %s" % GONE_LINK)
    assert wait_for(lambda: replication_encrypted(lab, primary) == [False] * (len(lab["nodes"]) - 1), 30), \
        "replication still encrypted with pgha_tls=false"
    writer, sampler = Writer(lab), Sampler(lab)
    writer.start()
    sampler.start()
    try:
        assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote"
        started = time.time()
        on = ansible.playbook("pgha.cluster.site")
        assert on.returncode == 0, outcome(on)
        took = time.time() - started
        time.sleep(2)
    finally:
        stopped(writer, sampler)
    assert sampler.two_primaries == [], sampler.two_primaries[:3]
    assert primaries(survey(lab)) == [primary], "switching TLS on caused a failover"
    check_no_acked_row_lost(lab, primary, writer.acked)
    during = [t for _, t, _ in writer.acked if t >= started]
    pause = max(b - a for a, b in zip([started] + during, during + [time.time()]))
    report("tls.txt", "pgha_tls false -> true on a running cluster: site.yml %.0f s, longest write pause %.2f s, "
           "%d commits during the switch" % (took, pause, len(during)))
    assert pause < LIVENESS_KILL, "writes stopped for %.1f s while TLS was switched on" % pause
    assert wait_for(lambda: replication_encrypted(lab, primary) == [True] * (len(lab["nodes"]) - 1), 30), \
        "replication not encrypted after the switch"


def link_state(node, unit):
    out = lab_exec(node, "systemctl is-enabled %s; systemctl is-active %s" % (unit, unit)).stdout.split()
    return out[0] if out else "", out[-1] if out else ""
