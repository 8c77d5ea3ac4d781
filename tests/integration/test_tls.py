"""TLS (pgha_tls, the default): PostgreSQL runs with the cluster CA's certificates and
replication verifies the primary (verify-full); pgpool-II stays without TLS unless
pgpool_ssl; certificates that do not fit the CA are refused before any host is touched.
Plaintext is refused by the nodes (except pgpool's own backend sessions while pgpool_ssl is
off), the replication user logs in only for replication, pcp answers on localhost only and
the postgres ssh key is trusted from the cluster's nodes only."""
import socket

import psycopg2
import pytest

from cluster_probe import lab_exec, node_sql, primaries, survey
from conftest import outcome
from ansible_collections.pgha.cluster.plugins.module_utils import tls


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
