"""rebuild.yml writes the primary_conninfo pg_follow would write: the same function."""
from ansible_collections.pgha.cluster.plugins.filter.replication import FilterModule
from ansible_collections.pgha.cluster.plugins.module_utils import replication

TLS = "sslmode=verify-full sslrootcert=/etc/pgha/tls/ca.crt"


def test_the_primary_conninfo_filter_writes_what_pg_follow_writes():
    made = FilterModule().filters()["primary_conninfo"]("10.0.0.1", 5432, "replicator", "pg2", TLS)
    assert made == replication.primary_conninfo("10.0.0.1", 5432, "replicator", "pg2", TLS)
    assert made == "host=10.0.0.1 port=5432 user=replicator application_name=pg2 " + TLS
