"""A bad inventory stops site.yml with a clear message before anything changes."""
import json

import pytest
import yaml

from conftest import INVENTORY, outcome


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


def keeper_without_arbiter(groups):
    """Keeper mode on two of the lab's nodes (no pgpool), with no pgha_keeper_witness group."""
    groups.pop("pgha_pgpool")
    hosts = groups["pgha_postgresql"]["hosts"]
    hosts.pop(sorted(hosts)[-1])
    for name in hosts:
        hosts[name] = dict(hosts[name] or {}, pgha_mode="keeper")


def copied_address(groups):
    """pg3 written with pg2's address: one machine under two names."""
    hosts = groups["pgha_postgresql"]["hosts"]
    hosts["pg3"]["ansible_host"] = hosts["pg2"]["ansible_host"]


def unresolvable_host(groups):
    groups["pgha_postgresql"]["hosts"]["pg9"] = {"ansible_host": "pg9.invalid"}


@pytest.mark.parametrize("mutate, message", [
    (no_primary, "exactly one node with pgha_role=primary, found 0"),
    (two_primaries, "exactly one node with pgha_role=primary, found 3"),
    (even_pgpool_nodes, "odd number"),
    (keeper_without_arbiter, "keeper mode needs exactly one host in the group 'pgha_keeper_witness'"),
    (copied_address, "every node needs an address"),
    (unresolvable_host, "pg9"),
], ids=["no-primary", "two-primaries", "even-pgpool", "keeper-without-arbiter", "copied-address", "unresolvable-host"])
def test_site_refuses_bad_inventory(ansible, lab, tmp_path, mutate, message):
    inventory = broken_inventory(tmp_path, mutate)
    result = ansible.playbook("pgha.cluster.site", inventory=inventory)
    assert result.returncode != 0
    assert message in result.stdout, outcome(result, 2000)
    recap = [line for line in result.stdout.splitlines() if ": ok=" in line]
    assert recap and all("changed=0 " in line for line in recap), "\n".join(recap)
    assert "Site (2/" not in result.stdout


BAD_SETTINGS = {
    # out of range
    "pgpool_health_check_period": ("-1", "between 1 and 3600"),
    "pgha_lease_seconds": ("9", "between 1.0 and 3.5"),
    "pgha_vip_prefix": ("33", "between 1 and 32"),
    "pgpool_wd_port": ("70000", "between 1 and 65535"),
    "switchover_catchup_timeout": ("0", "between 1 and 86400"),
    # wrong type
    "pgha_postgresql_port": ("abc", "must be an integer"),
    "keeper_keepalives_time": ("soon", "must be a number"),
    "pgpool_max_pool": ("2.5", "must be an integer"),
    "pgpool_load_balance_mode": ("maybe", "must be true or false"),
    # wrong choice
    "pgha_synchronous_mode": ("sometimes", "must be one of off, on, remote_apply"),
    "pgha_mode": ("cloud", "must be one of pgpool, keeper"),
    "replication_basebackup_checkpoint": ("slow", "must be one of fast, spread"),
    # not an argv list
    "pgpool_fence_command": ("stonith", "a list of arguments"),
    # not a list of networks / not an address (pg_hba.conf would read them wrong)
    "pgha_admin_networks": ("10.0.0.0/8", "a list of networks"),
    "pgha_vip": ("vip.example.com", "an IP address"),
}


def test_site_refuses_bad_settings_before_touching_a_host(ansible, lab):
    extra = []
    for name, (value, _) in BAD_SETTINGS.items():
        extra += ["-e", "%s=%s" % (name, value)]
    extra += ["-e", '{"pgpool_settings": {"failover_command": "/bin/true"}, '
                    '"postgresql_settings": {"wal_receiver_timeout": "60s"}}']
    extra += ["-e", "pgha_synchronous_mod=on"]      # misspelt: nothing would read it
    extra += ["-e", "pgha_pcp_port=9694"]           # pgpool_heartbeat_port's default: pcp could not listen
    extra += ["-e", "pgpool_wd_heartbeat_keepalive=5"]  # not below the deadtime's default, 3
    extra += ["-e", '{"pgpool_users": [{"name": "app"}]}']
    extra += ["-e", "postgresql_encoding=LATIN1"]     # initdb refuses it with the default locale, C.UTF-8
    extra += ["-e", "status_fail_on_warnng=true"]     # a near miss in another role's name space
    result = ansible.playbook("pgha.cluster.site", *extra)
    assert result.returncode != 0
    for name, (value, allowed) in BAD_SETTINGS.items():
        assert "%s must be" % name in result.stdout and allowed in result.stdout, (name, outcome(result))
    assert "pgpool_settings: failover_command is set by pgha" in result.stdout
    assert "postgresql_settings: wal_receiver_timeout is set by pgha" in result.stdout
    flat = " ".join(result.stdout.split())
    assert "pgha_pcp_port and pgpool_heartbeat_port are both 9694" in flat, outcome(result)
    assert "pgpool_wd_heartbeat_keepalive (5) must be smaller than pgpool_wd_heartbeat_deadtime (3)" in flat
    assert "pgpool_users[0] (app) needs a password" in flat
    assert "pgha_synchronous_mod is not a pgha variable, nothing reads it (did you mean pgha_synchronous_mode?)" \
        in result.stdout, outcome(result)
    assert "postgresql_encoding LATIN1 does not match postgresql_locale C.UTF-8" in flat, outcome(result)
    assert "status_fail_on_warnng is not a pgha variable" in flat and "status_fail_on_warning?" in flat
    recap = [line for line in result.stdout.splitlines() if ": ok=" in line]
    assert recap and all("changed=0 " in line for line in recap), "\n".join(recap)
    assert "Site (2/" not in result.stdout


def test_site_refuses_a_fence_command_the_pgpool_nodes_cannot_run(ansible, lab):
    """The hook would find out only when a node is lost: site.yml looks for it on every
    pgpool node (a read) and stops before any change."""
    command = ["/usr/local/bin/no-such-stonith", "--off"]
    result = ansible.playbook("pgha.cluster.site", "-e", json.dumps({"pgpool_fence_command": command}))
    assert result.returncode != 0
    assert "pgpool_fence_command: /usr/local/bin/no-such-stonith is not an executable file" in result.stdout, \
        outcome(result)
    recap = [line for line in result.stdout.splitlines() if ": ok=" in line]
    assert recap and all("changed=0 " in line for line in recap), "\n".join(recap)
    assert "Site (2/" not in result.stdout


def test_site_refuses_a_locale_the_postgresql_nodes_lack(ansible, lab):
    """initdb would fail on the primary halfway through the deploy: site.yml lists each
    PostgreSQL node's locales (a read) and stops before any change."""
    result = ansible.playbook("pgha.cluster.site", "-e", "postgresql_locale=xx_YY.UTF-8")
    assert result.returncode != 0
    flat = " ".join(result.stdout.split())
    assert "postgresql_locale: pg1 has no locale xx_YY.UTF-8" in flat, outcome(result)
    recap = [line for line in result.stdout.splitlines() if ": ok=" in line]
    assert recap and all("changed=0 " in line for line in recap), "\n".join(recap)
    assert "Site (2/" not in result.stdout
