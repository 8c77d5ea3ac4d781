"""Keeper chaos tests, run by molecule's keeper scenario (verify) against its two containers.

Environment (set by molecule/keeper/verify.yml): PGHA_KEEPER_NODES (name=address,...),
PGHA_KEEPER_ADMIN_PASSWORD, PGHA_KEEPER_INVENTORY (molecule's inventory, for rebuild.yml),
PGHA_KEEPER_BUDGET (seconds: keepalives_time x keepalives_count + 2), PGHA_KEEPER_ARBITER
(the arbiter's container).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PGHA_BUILD_DIR", REPO / ".build"))
REPORTS = BUILD / "reports"
# The writer, sampler and survey helpers are the lab tests' own; the core comes from the
# installed collection.
sys.path[:0] = [str(REPO / "tests" / "integration"), str(BUILD / "collections")]


class KeeperLab(dict):
    def __repr__(self):
        return "KeeperLab(nodes=%r, secrets hidden)" % self["nodes"]


@pytest.fixture(scope="session")
def lab():
    nodes = dict(item.split("=", 1) for item in os.environ["PGHA_KEEPER_NODES"].split(","))
    return KeeperLab(nodes=nodes, vip=None, pgha_admin_password=os.environ["PGHA_KEEPER_ADMIN_PASSWORD"],
                     budget=float(os.environ.get("PGHA_KEEPER_BUDGET", "5")),
                     arbiter=os.environ["PGHA_KEEPER_ARBITER"],
                     inventory=os.environ["PGHA_KEEPER_INVENTORY"])


def node_exec(node, command):
    """A shell command inside a node's container (works while its network link is cut)."""
    return subprocess.run(["podman", "exec", node, "sh", "-c", command], capture_output=True, text=True, timeout=120)


def playbook(lab, *args):
    return subprocess.run(["ansible-playbook", "-i", lab["inventory"], *args], capture_output=True, text=True,
                          timeout=900, cwd=REPO)


def report(text):
    from reports import write_report
    write_report(REPORTS, "keeper.txt", text)
