"""LSN arithmetic, SCRAM verifiers and connection-parameter mapping."""
import hashlib
import hmac
import base64

from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import lsn_to_int, node_timeline
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import conn_params, safe_message, verified
from ansible_collections.pgha.cluster.plugins.module_utils.replication import primary_conninfo
from ansible_collections.pgha.cluster.plugins.module_utils.scram import make_verifier, verifier_matches


def test_lsn_to_int():
    assert lsn_to_int("0/40007F8") == 0x40007F8
    assert lsn_to_int("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert lsn_to_int(None) is None and lsn_to_int("") is None


def test_standby_timeline_takes_the_highest_known():
    row = {"in_recovery": True, "checkpoint_timeline": 1, "min_recovery_end_timeline": 2, "wal_timeline": None}
    assert node_timeline(row, {"received_tli": 3}) == 3
    assert node_timeline(row, None) == 2
    assert node_timeline({"in_recovery": False, "wal_timeline": 4}, None) == 4


def test_standby_without_wal_receiver_takes_the_timeline_of_its_newest_history_file():
    # Seen in the lab: a standby that followed timelines 31 -> 34 without a restartpoint
    # still showed 31 in pg_control once its WAL receiver stopped.
    row = {"in_recovery": True, "checkpoint_timeline": 31, "min_recovery_end_timeline": 31, "history_timeline": 34}
    assert node_timeline(row, None) == 34


def test_scram_verifier_roundtrip_and_rfc7677_vector():
    verifier = make_verifier("correct horse")
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert verifier_matches(verifier, "correct horse")
    assert not verifier_matches(verifier, "wrong horse")
    assert not verifier_matches("md5abc", "correct horse")
    assert not verifier_matches(None, "x")
    # RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    made = make_verifier("pencil", salt=salt)
    assert made.split(":")[-1] == base64.b64encode(server_key).decode()
    assert verifier_matches(made, "pencil")


def test_conn_params_maps_names_and_drops_empty_values():
    kwargs = conn_params({"login_host": "", "login_unix_socket": "/run/postgresql", "login_port": 5433,
                          "login_user": "postgres", "login_password": "", "login_db": "postgres",
                          "ssl_mode": "prefer", "connect_timeout": 3})
    assert kwargs == {"host": "/run/postgresql", "port": 5433, "user": "postgres", "dbname": "postgres",
                      "sslmode": "prefer", "connect_timeout": 3, "application_name": "pgha"}


def test_safe_message_hides_password():
    assert "hunter2" not in safe_message(Exception("bad password hunter2\n here"), {"login_password": "hunter2"})


def test_tls_verifies_the_server_against_the_cluster_ca():
    assert verified("") == {}
    kwargs = conn_params(dict({"login_host": "10.0.0.2", "ssl_mode": "prefer"}, **verified("/etc/pgha/tls/ca.crt")))
    assert kwargs["sslmode"] == "verify-full" and kwargs["sslrootcert"] == "/etc/pgha/tls/ca.crt"
    # SCRAM bound to the TLS session: a server in the middle cannot relay the login
    assert kwargs["channel_binding"] == "require"
    assert primary_conninfo("10.0.0.2", 5432, "rep", "pg1", " sslmode=verify-full  sslrootcert=/x/ca.crt ") == \
        "host=10.0.0.2 port=5432 user=rep application_name=pg1 sslmode=verify-full sslrootcert=/x/ca.crt"
    assert primary_conninfo("10.0.0.2", 5432, "rep", "pg1") == "host=10.0.0.2 port=5432 user=rep application_name=pg1"
