"""The keeper refuses unknown or invalid settings before it runs (exit code 2, one clear line)."""
import subprocess
import sys
import types

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import arbiter
from collection_path import REPO

KEEPER = REPO / "roles" / "keeper" / "files" / "pgha_keeper.py"
VALID = """# pg_keeper's names, with and without the prefix
pg_keeper.node1_conninfo = 'host=10.0.0.1 port=5432 user=pgha_admin'
node2_conninfo = 'host=10.0.0.2 user=pgha_admin'   # a comment after the value
pg_keeper.keepalive_time = 2
keepalives_count = 3
after_command = 'echo ''moved'' # not a comment'
node = 2
arbiter_conninfo = 'host=10.0.0.3 port=5432 user=pgha_arbiter dbname=pgha_arbiter'
pg_version = '15'
bindir = '/usr/lib/postgresql/15/bin'
datadir = '/var/lib/postgresql/15/main'
"""


def check(tmp_path, text):
    path = tmp_path / "keeper.conf"
    path.write_text(text)
    return subprocess.run([sys.executable, str(KEEPER), "--check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def keeper():
    sys.path.insert(0, str(KEEPER.parent))
    import pgha_keeper
    return pgha_keeper


def test_valid_settings_with_pg_keeper_names_and_spellings(keeper):
    config = keeper.parse_config(VALID)
    assert config["node1_conninfo"] == "host=10.0.0.1 port=5432 user=pgha_admin"
    assert config["node2_conninfo"] == "host=10.0.0.2 user=pgha_admin"
    assert config["keepalives_time"] == 2.0 and config["keepalives_count"] == 3
    assert config["after_command"] == "echo 'moved' # not a comment"
    assert config["node"] == 2 and config["cluster"] == "pgha" and config["fence_lock_file"] == "/var/lib/pgha/fenced"
    assert config["synchronous_mode_strict"] is False
    assert keeper.parse_config(VALID + "synchronous_mode_strict = on\n")["synchronous_mode_strict"] is True


def test_valid_file_passes_the_check(tmp_path):
    result = check(tmp_path, VALID)
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr


@pytest.mark.parametrize("change, message", [
    ("keepalives_interval = 3\n", "unknown setting 'keepalives_interval'"),
    ("keepalives_count = many\n", "invalid value for keepalives_count"),
    ("keepalives_count = 0\n", "keepalives_count >= 1"),
    ("node = 3\n", "node must be 1 or 2"),
    ("synchronous_mode_strict = sometimes\n", "invalid value for synchronous_mode_strict"),
    ("witness = 10.0.0.9\n", "unknown setting 'witness'"),
    ("arbiter 10.0.0.9\n", "expected name = value"),
    ("after_command = 'unterminated\n", "missing closing quote"),
])
def test_invalid_settings_are_refused(tmp_path, change, message):
    result = check(tmp_path, VALID + change)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("line, name", [("node = 2\n", "node"), (
    "arbiter_conninfo = 'host=10.0.0.3 port=5432 user=pgha_arbiter dbname=pgha_arbiter'\n", "arbiter_conninfo")])
def test_missing_required_setting_is_refused(tmp_path, line, name):
    result = check(tmp_path, VALID.replace(line, ""))
    assert result.returncode == 2 and "missing setting %s" % name in result.stderr


def test_conninfo_without_host_is_refused(tmp_path):
    result = check(tmp_path, VALID.replace("host=10.0.0.2 ", ""))
    assert result.returncode == 2 and "no host= in conninfo" in result.stderr


def test_conninfo_keeps_the_tls_keywords_for_the_peer_and_drops_them_for_the_local_socket(keeper):
    conninfo = ("host=10.0.0.%d port=5432 user=pgha_admin sslmode=verify-full sslrootcert=/etc/pgha/tls/ca.crt "
                "channel_binding=require")
    assert keeper.conninfo_params(conninfo % 1) == {
        "login_host": "10.0.0.1", "login_port": "5432", "login_user": "pgha_admin", "ssl_mode": "verify-full",
        "ca_cert": "/etc/pgha/tls/ca.crt", "channel_binding": "require"}
    config = dict(keeper.parse_config(VALID), node1_conninfo=conninfo % 1, node2_conninfo=conninfo % 2)
    core = types.SimpleNamespace(lease_seconds=lambda keepalives_time, keepalives_count: 3.0)
    config["state_file"] = "/nonexistent/keeper.json"       # no lease row remembered
    node = keeper.Keeper(config, [None] * 3 + [arbiter, core, None])
    assert node.peer["channel_binding"] == "require" and node.peer["login_host"] == "10.0.0.1"
    # the unix socket has no TLS: channel_binding=require would refuse every local login
    assert not any(node.local[key] for key in ("ssl_mode", "ca_cert", "channel_binding", "login_host"))


def test_a_claim_is_on_disk_before_the_arbiter_has_it(keeper, tmp_path):
    """A keeper that dies between the claim and the promotion finishes it when it starts again:
    the claimed term is in its state file before the CLAIM is sent, and no claim is sent when
    it cannot be recorded."""
    import json
    config = dict(keeper.parse_config(VALID), state_file=str(tmp_path / "keeper.json"))
    core = types.SimpleNamespace(lease_seconds=lambda keepalives_time, keepalives_count: 3.0)
    node = keeper.Keeper(config, [None] * 3 + [arbiter, core, None])
    node.state = {"claimed_term": 5}
    seen = []
    node.lease_change = lambda conn, statement, **values: seen.append(
        json.loads((tmp_path / "keeper.json").read_text())["claimed_term"]) or True
    facts = {"role": "standby", "timeline": 1, "lease": {"holder": "node1"}}
    assert node.do_claim(facts, None, 4, True) and seen == [5]
    assert keeper.Keeper(config, [None] * 3 + [arbiter, core, None]).state.get("claimed_term") == 5
    node.config = dict(config, state_file=str(tmp_path / "missing" / "keeper.json"))
    assert not node.do_claim(facts, None, 4, True) and seen == [5]
