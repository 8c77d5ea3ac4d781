"""A bad inventory stops site.yml with a clear message before anything changes."""
import pytest
import yaml

from conftest import INVENTORY


def broken_inventory(tmp_path, mutate):
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    mutate(hosts["all"]["children"])
    folder = tmp_path / "inventory"
    (folder / "group_vars").mkdir(parents=True)
    (folder / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (folder / "group_vars" / "all").symlink_to(INVENTORY / "group_vars" / "all")
    return folder


def no_primary(groups):
    for spec in groups["pgha_postgresql"]["hosts"].values():
        spec.pop("pgha_role", None)


def two_primaries(groups):
    for spec in groups["pgha_postgresql"]["hosts"].values():
        spec["pgha_role"] = "primary"


def even_pgpool_nodes(groups):
    groups["pgha_pgpool"]["hosts"].pop(sorted(groups["pgha_pgpool"]["hosts"])[-1])


def unresolvable_host(groups):
    groups["pgha_postgresql"]["hosts"]["pg9"] = {"ansible_host": "pg9.invalid"}


@pytest.mark.parametrize("mutate, message", [
    (no_primary, "exactly one node with pgha_role=primary, found 0"),
    (two_primaries, "exactly one node with pgha_role=primary, found 3"),
    (even_pgpool_nodes, "odd number"),
    (unresolvable_host, "pg9"),
], ids=["no-primary", "two-primaries", "even-pgpool", "unresolvable-host"])
def test_site_refuses_bad_inventory(ansible, lab, tmp_path, mutate, message):
    inventory = broken_inventory(tmp_path, mutate)
    result = ansible.playbook("pgha.cluster.site", inventory=inventory)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]
    recap = [line for line in result.stdout.splitlines() if ": ok=" in line]
    assert recap and all("changed=0 " in line for line in recap), "\n".join(recap)
    assert "Site (2/5)" not in result.stdout
