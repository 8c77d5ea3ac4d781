"""Integration tests against the deployed lab (bin/lab up + pgha.cluster.site).

Modules are called through ansible with the json callback, exactly as a playbook would.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab"
BUILD = Path(os.environ.get("PGHA_BUILD_DIR", REPO / ".build"))
REPORTS = BUILD / "reports"
# The tests import the decision core from the installed collection (bin/test installs it).
sys.path.insert(0, str(BUILD / "collections"))


class LabVars(dict):
    """The lab's addresses and secrets; repr hides the secrets from test reports."""

    def __repr__(self):
        return "LabVars(nodes=%r, vip=%r, secrets hidden)" % (self["nodes"], self["vip"])


def lab_vars():
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    secrets = yaml.safe_load((INVENTORY / "group_vars" / "all" / "secrets.yml").read_text())
    nodes = hosts["all"]["children"]["pgha_postgresql"]["hosts"]
    return LabVars(nodes={name: spec["ansible_host"] for name, spec in nodes.items()},
                   vip=hosts["all"]["vars"]["pgha_vip"], **secrets)


class Ansible:
    def __init__(self):
        self.env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
                        ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                        ANSIBLE_COLLECTIONS_PATH=str(BUILD / "collections"))

    def modules(self, pattern, module, args, become_postgres=False, check=False):
        """Run one module on the hosts of a pattern; return ({host: result}, raw stdout+stderr)."""
        argv = ["ansible", "-i", str(INVENTORY), pattern, "-m", module]
        if args:
            argv += ["-a", json.dumps(args)]
        if become_postgres:
            argv += ["--become", "--become-user", "postgres"]
        if check:
            argv.append("--check")
        proc = subprocess.run(argv, env=self.env, cwd=REPO, capture_output=True, text=True, timeout=180)
        output = json.loads(proc.stdout)
        return output["plays"][0]["tasks"][0]["hosts"], proc.stdout + proc.stderr

    def module(self, host, module, args, become_postgres=False, check=False):
        """Run one module on one host; return (result dict, raw stdout+stderr)."""
        results, raw = self.modules(host, module, args, become_postgres, check)
        return results[host], raw

    def playbook(self, *args, inventory=INVENTORY):
        argv = ["ansible-playbook", "-i", str(inventory), *args]
        env = dict(self.env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
        return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="session")
def ansible():
    return Ansible()


@pytest.fixture(scope="session")
def lab():
    if not (INVENTORY / "hosts.yml").exists():
        pytest.fail("no lab: run bin/lab up and pgha.cluster.site first (bin/test integration does)")
    return lab_vars()


def outcome(run, tail=2500):
    """A playbook run for an assertion message: its failing tasks' lines first (the line a
    test summary shows), then the end of its output."""
    failed = [line[:800] for line in run.stdout.splitlines()
              if line.startswith(("fatal:", "failed:")) or "FAILED!" in line][:4]
    return "\n".join(failed + ["---- last %d characters:" % tail, run.stdout[-tail:]])


def report(name, text):
    """Keep measured figures for the README and the issue notes (.build/reports)."""
    from reports import write_report
    write_report(REPORTS, name, text)


@pytest.fixture(scope="session")
def chaos_table(lab):
    """The table the writer fills; the lab must start with exactly one primary."""
    import psycopg2
    from cluster_probe import primaries, survey
    before = primaries(survey(lab))
    assert len(before) == 1, "the lab must start with one primary, found %s" % before
    conn = psycopg2.connect(host=lab["vip"], port=9999, user="pgha_admin", password=lab["pgha_admin_password"],
                            dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS pgha_chaos (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        # The sampler's commit probe writes here when two nodes answer as primary.
        cur.execute("CREATE TABLE IF NOT EXISTS pgha_probe (at timestamptz DEFAULT now())")
    conn.close()


@pytest.fixture
def healthy_cluster(lab, chaos_table):
    """Each chaos test starts from (and says so when it does not find) a healthy cluster:
    one primary, every standby streaming from it and attached in pgpool."""
    from cluster_probe import followers_ok, pool_attached, primaries, survey, wait_for
    found = wait_for(lambda: primaries(survey(lab)), 30)
    assert len(found) == 1, "the test needs one primary, found %s" % found
    assert wait_for(lambda: followers_ok(lab, found[0]), 30), "standbys do not all stream from %s" % found[0]
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool has not attached every node"
    return found[0]
