"""A pgpool node without PostgreSQL, run by molecule's dedicated scenario (verify).

Environment (set by molecule/dedicated/verify.yml): PGHA_DEDICATED_NODES (name=address,...),
PGHA_DEDICATED_POOL (the pgpool node's container), PGHA_DEDICATED_VIP (its address: one
pgpool node has no watchdog and no virtual IP), PGHA_DEDICATED_ADMIN_PASSWORD,
PGHA_DEDICATED_ENGINE (podman or docker: the scenario's driver).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PGHA_BUILD_DIR", REPO / ".build"))
# The writer and the probes are the lab tests' own; the core comes from the installed collection.
sys.path[:0] = [str(REPO / "tests" / "integration"), str(BUILD / "collections")]


class DedicatedLab(dict):
    def __repr__(self):
        return "DedicatedLab(nodes=%r, secrets hidden)" % self["nodes"]


@pytest.fixture(scope="session")
def lab():
    nodes = dict(item.split("=", 1) for item in os.environ["PGHA_DEDICATED_NODES"].split(","))
    return DedicatedLab(nodes=nodes, vip=os.environ["PGHA_DEDICATED_VIP"], pool=os.environ["PGHA_DEDICATED_POOL"],
                        pgha_admin_password=os.environ["PGHA_DEDICATED_ADMIN_PASSWORD"])


def node_exec(node, command):
    engine = os.environ.get("PGHA_DEDICATED_ENGINE", "podman")
    return subprocess.run([engine, "exec", node, "sh", "-c", command], capture_output=True, text=True, timeout=120)


def report(text):
    from reports import write_report
    write_report(BUILD / "reports", "dedicated.txt", text)
