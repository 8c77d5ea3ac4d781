"""Parsers against output captured from the real tools (pgpool-II 4.3.5, PostgreSQL 15)."""
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import pgpool
from collection_path import FIXTURES

CAPTURES = sorted(p for p in FIXTURES.glob("pgpool-*") if p.is_dir())


def read(directory, name):
    return (directory / name).read_text()


@pytest.mark.parametrize("directory", CAPTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("name", ["c0_healthy_show_pool_nodes.txt", "c0_healthy_show_pool_nodes_unaligned.txt"])
def test_show_pool_nodes_healthy(directory, name):
    nodes = pgpool.parse_show_pool_nodes(read(directory, name))
    assert [n["node_id"] for n in nodes] == [0, 1, 2]
    assert [n["role"] for n in nodes] == ["primary", "standby", "standby"]
    assert all(n["status"] == "up" and n["pg_status"] == "up" for n in nodes)
    assert nodes[1]["replication_state"] == "streaming"
    assert nodes[1]["replication_sync_state"] in ("async", "sync", "quorum")
    assert isinstance(nodes[0]["port"], int) and isinstance(nodes[0]["lb_weight"], float)
    assert nodes[0]["last_status_change"].count(":") == 2 and " " in nodes[0]["last_status_change"]
    summary = pgpool.summarize(nodes)
    assert summary == {"primary_node_id": 0, "up_node_ids": [0, 1, 2], "down_node_ids": [], "disagreements": []}


@pytest.mark.parametrize("directory", CAPTURES, ids=lambda p: p.name)
def test_show_pool_nodes_after_failover(directory):
    nodes = pgpool.parse_show_pool_nodes(read(directory, "c1_after_show_pool_nodes_unaligned.txt"))
    summary = pgpool.summarize(nodes)
    assert summary["primary_node_id"] in (1, 2)
    assert summary["down_node_ids"] == [0]
    assert all(isinstance(n["replication_delay"], int) for n in nodes)
    assert nodes[0]["pg_role"] in ("unknown", "down")


def test_old_primary_restarted_is_a_disagreement():
    text = read(FIXTURES / "pgpool-4.3.5-pg15", "extra_old_primary_restarted_after_failover.txt")
    nodes = pgpool.parse_show_pool_nodes(text)
    summary = pgpool.summarize(nodes)
    assert summary["primary_node_id"] == 1
    assert any("node 0" in d and "primary" in d for d in summary["disagreements"])


@pytest.mark.parametrize("directory", CAPTURES, ids=lambda p: p.name)
def test_pcp_node_info_verbose(directory):
    healthy = pgpool.parse_pcp_node_info_verbose(read(directory, "c0_healthy_pcp_node_info_verbose.txt"))
    shown = pgpool.parse_show_pool_nodes(read(directory, "c0_healthy_show_pool_nodes.txt"))
    assert [(n["node_id"], n["hostname"], n["role"]) for n in healthy] == [
        (n["node_id"], n["hostname"], n["role"]) for n in shown]
    # "waiting" is pgpool's "up, no client session used it yet" (seen with 4.6 right after start).
    assert [n["role"] for n in healthy] == ["primary", "standby", "standby"]
    assert all(n["status"] in ("up", "waiting") for n in healthy)
    assert pgpool.summarize(healthy)["up_node_ids"] == [0, 1, 2]
    assert healthy[1]["replication_state"] == "streaming"
    assert len(healthy[0]["last_status_change"]) == len("2026-11-22 21:01:12")
    after = pgpool.parse_pcp_node_info_verbose(read(directory, "c1_after_pcp_node_info_verbose.txt"))
    assert after[0]["status"] == "down" and after[0]["pg_role"] in ("unknown", "down")
    assert pgpool.summarize(after)["primary_node_id"] in (1, 2)


def test_watchdog_disabled_is_reported_not_raised():
    text = read(FIXTURES / "pgpool-4.3.5-pg15", "c0_healthy_pcp_watchdog_info.txt")
    assert pgpool.parse_pcp_watchdog_info_verbose(text)["enabled"] is False


WATCHDOG_CAPTURES = sorted(FIXTURES.glob("*/c0_watchdog_info_verbose.txt"))


@pytest.mark.parametrize("path", WATCHDOG_CAPTURES, ids=lambda p: p.parent.name)
def test_watchdog_enabled(path):
    info = pgpool.parse_pcp_watchdog_info_verbose(path.read_text())
    assert info["enabled"] is True and info["quorum"] is True
    assert info["leader"] and len(info["nodes"]) == 3
    assert all(" " in n["node_name"] for n in info["nodes"])  # names like "10.89.50.11:9999 Linux pg1"


class FakeRunner:
    """Records argv and env; plays back a canned (rc, out, err)."""

    def __init__(self, result):
        self.result, self.calls = result, []

    def __call__(self, argv, env):
        passfile = env.get("PCPPASSFILE")
        content = open(passfile).read() if passfile else None
        self.calls.append((argv, env, content))
        return self.result


def test_pcp_password_goes_through_a_private_file_not_argv():
    runner = FakeRunner((0, "2\n", ""))
    pcp = pgpool.Pcp(runner, "pg1", 9898, "pgha_pcp", password="s3cr:e\\t")
    assert pcp.node_count() == 2
    argv, env, content = runner.calls[0]
    assert "s3cr" not in " ".join(argv)
    assert argv[:3] == ["pcp_node_count", "-h", "pg1"] and "-w" in argv
    # escaped as pcppass.j2 does (pcp reads \\ and \: back as \ and :)
    assert content == "*:9898:pgha_pcp:s3cr\\:e\\\\t\n"
    import os
    assert not os.path.exists(env["PCPPASSFILE"])


def test_pcp_error_hides_password():
    runner = FakeRunner((1, "", "ERROR: authentication failed for s3cret"))
    pcp = pgpool.Pcp(runner, "pg1", password="s3cret")
    with pytest.raises(pgpool.PcpError) as info:
        pcp.attach(1)
    assert "s3cret" not in str(info.value) and "pcp_attach_node failed" in str(info.value)


def test_pcp_error_printed_with_exit_zero_is_an_error():
    runner = FakeRunner((0, "", "ERROR:  connection to socket failed"))
    with pytest.raises(pgpool.PcpError):
        pgpool.Pcp(runner, "pg1").node_info()
