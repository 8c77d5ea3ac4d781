"""TLS (pgha_tls, the default): PostgreSQL runs with the cluster CA's certificates and
replication verifies the primary (verify-full); pgpool-II stays without TLS unless
pgpool_ssl; certificates that do not fit the CA are refused before any host is touched."""
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


def test_the_postgres_ssh_key_is_trusted_from_the_cluster_nodes_only(lab):
    for node in sorted(lab["nodes"]):
        text = lab_exec(node, "cat /var/lib/postgresql/.ssh/authorized_keys").stdout
        keys = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        sources = [set(line.split('"')[1].split(",")) if line.startswith('from="') else set() for line in keys]
        assert len(keys) == len(lab["nodes"]) and all(s == set(lab["nodes"].values()) for s in sources), (node, text)
