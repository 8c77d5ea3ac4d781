# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgpool-II: pcp command lines, output parsers and SHOW pool_nodes normalisation.

Plain Python; commands go through a `runner(argv, env) -> (rc, stdout, stderr)` given by
the caller (AnsibleModule.run_command in modules, subprocess in the hook).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile
from contextlib import contextmanager

POOL_NODE_FIELDS = {
    "node_id": int, "hostname": str, "port": int, "status": str, "pg_status": str,
    "lb_weight": float, "role": str, "pg_role": str, "select_cnt": int,
    "load_balance_node": lambda v: str(v).lower() in ("true", "t", "1"),
    "replication_delay": int, "replication_state": str, "replication_sync_state": str,
    "last_status_change": str,
}

# pcp_node_info --verbose titles -> SHOW pool_nodes column names.
PCP_NODE_TITLES = {
    "Hostname": "hostname", "Port": "port", "Status": "status_code", "Weight": "lb_weight",
    "Status Name": "status", "Backend Status Name": "pg_status", "Role": "role",
    "Backend Role": "pg_role", "Replication Delay": "replication_delay",
    "Replication State": "replication_state", "Replication Sync State": "replication_sync_state",
    "Last Status Change": "last_status_change",
}


class PcpError(Exception):
    """A pcp command failed; the message never holds the password."""


def _typed(name, value):
    convert = POOL_NODE_FIELDS.get(name, str)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None if convert is not str else ""
    try:
        return convert(value.strip() if isinstance(value, str) else value)
    except ValueError:
        return value


def normalize_pool_node(raw):
    """One backend as typed fields; unknown extra columns are kept as text."""
    return dict((name.strip(), _typed(name.strip(), value)) for name, value in raw.items())


def parse_show_pool_nodes(text, sep="|"):
    """psql output of SHOW pool_nodes (aligned or -A -F'|') -> list of nodes by column name."""
    header = None
    nodes = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or set(line.strip()) <= set("-+"):
            continue
        cells = [cell.strip() for cell in line.split(sep)]
        if header is None:
            if "node_id" in cells:
                header = cells
            continue
        if len(cells) == len(header):
            nodes.append(normalize_pool_node(dict(zip(header, cells))))
    return nodes


def parse_pcp_node_info_verbose(text, first_node_id=0):
    """`pcp_node_info --verbose` blocks ("Title : value") -> list of nodes.

    pcp does not print the node id: blocks come in node-id order from first_node_id.
    """
    nodes, current = [], {}
    for line in text.splitlines() + [""]:
        title, sep, value = line.partition(":")
        if sep and title.strip() in PCP_NODE_TITLES:
            current[PCP_NODE_TITLES[title.strip()]] = value.strip()
        elif not line.strip() and current:
            current["node_id"] = first_node_id + len(nodes)
            current.pop("status_code", None)
            nodes.append(normalize_pool_node(current))
            current = {}
    return nodes


def parse_pcp_watchdog_info_verbose(text):
    """`pcp_watchdog_info --verbose` -> {cluster: {...}, nodes: [{...}]}."""
    if "watchdog is not enabled" in text:
        return {"enabled": False, "cluster": {}, "nodes": []}
    sections, current = [], {}
    for line in text.splitlines() + [""]:
        title, sep, value = line.partition(":")
        if sep and title.strip():
            key = "_".join(title.strip().lower().replace("-", " ").split())
            current[key] = value.strip()
        elif not line.strip() and current:
            sections.append(current)
            current = {}
    cluster = sections[0] if sections else {}
    nodes = sections[1:]
    leader = cluster.get("leader_host_name") or cluster.get("master_host_name")
    quorum = cluster.get("quorum_state", "")
    return {
        "enabled": True,
        "cluster": cluster,
        "leader": leader,
        "quorum": "QUORUM EXIST" in quorum.upper() or "QUORUM IS ON THE EDGE" in quorum.upper(),
        "nodes": nodes,
    }


def summarize(nodes):
    """primary id, up/down ids and disagreements between pgpool and the backends."""
    primary = [n["node_id"] for n in nodes if n.get("role") == "primary" and n.get("status") in ("up", "waiting")]
    disagreements = []
    for node in nodes:
        pg_role, role = node.get("pg_role"), node.get("role")
        if pg_role and pg_role not in ("unknown", role):
            disagreements.append("node %s: pgpool role %s but backend reports %s" % (node["node_id"], role, pg_role))
        if node.get("pg_status") and node.get("status") in ("up", "waiting") and node["pg_status"] == "down":
            disagreements.append("node %s: pgpool has it up but the backend is down" % node["node_id"])
        if node.get("status") == "down" and node.get("pg_role") == "primary":
            disagreements.append("node %s: detached in pgpool but running as a primary" % node["node_id"])
    return {
        "primary_node_id": primary[0] if len(primary) == 1 else None,
        "up_node_ids": [n["node_id"] for n in nodes if n.get("status") in ("up", "waiting")],
        "down_node_ids": [n["node_id"] for n in nodes if n.get("status") in ("down", "unused")],
        "disagreements": disagreements,
    }


@contextmanager
def pcppass_file(port, user, password):
    """A temporary 0600 .pcppass so the password is never on a command line."""
    fd, path = tempfile.mkstemp(prefix="pgha-pcppass-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("%s:%s:%s:%s\n" % ("*", port, user, password.replace("\\", "\\\\").replace(":", "\\:")))
        os.chmod(path, 0o600)
        yield path
    finally:
        os.unlink(path)


class Pcp:
    """Runs pcp tools against one pgpool (always with -h: see notes on Debian sockets)."""

    def __init__(self, runner, host, port=9898, user="pcpadmin", password=None, passfile=None):
        self.runner = runner
        self.host, self.port, self.user = host, port, user
        self.password, self.passfile = password, passfile

    def argv(self, tool, *args):
        return [tool, "-h", self.host, "-p", str(self.port), "-U", self.user, "-w"] + [str(a) for a in args]

    def run(self, tool, *args):
        if self.password:
            with pcppass_file(self.port, self.user, self.password) as path:
                return self._run(tool, args, path)
        return self._run(tool, args, self.passfile)

    def _run(self, tool, args, passfile):
        env = {"PCPPASSFILE": passfile} if passfile else {}
        rc, out, err = self.runner(self.argv(tool, *args), env)
        # pcp tools print ERROR and still exit 0 in some cases (watchdog off).
        if rc != 0 or (err.strip().startswith("ERROR") and "watchdog is not enabled" not in err):
            message = " ".join((err or out).split()) or "exit code %s" % rc
            if self.password:
                message = message.replace(self.password, "********")
            raise PcpError("%s failed: %s" % (tool, message))
        return out + err

    def node_count(self):
        return int(self.run("pcp_node_count").strip().splitlines()[-1])

    def node_info(self):
        return parse_pcp_node_info_verbose(self.run("pcp_node_info", "-a", "--verbose"))

    def watchdog_info(self):
        return parse_pcp_watchdog_info_verbose(self.run("pcp_watchdog_info", "--verbose"))

    def attach(self, node_id):
        return self.run("pcp_attach_node", "-n", node_id)

    def detach(self, node_id, gracefully=False):
        return self.run("pcp_detach_node", "-n", node_id, *(["-g"] if gracefully else []))

    def promote(self, node_id, switchover=False):
        return self.run("pcp_promote_node", "-n", node_id, *(["-s"] if switchover else []))

    def recover(self, node_id):
        return self.run("pcp_recovery_node", "-n", node_id)
