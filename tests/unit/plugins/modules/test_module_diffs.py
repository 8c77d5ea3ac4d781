"""The diffs the modules return say what changes (check and diff mode)."""
from ansible_collections.pgha.cluster.plugins.modules.pg_switchover import roles_diff
from ansible_collections.pgha.cluster.plugins.modules.pg_user import plan, role_diff

PARAMS = {"name": "app", "password": "secret-1", "superuser": False, "replication": True, "member_of": ["pg_monitor"]}


def test_a_new_role_shows_its_attributes():
    steps = plan(None, PARAMS)
    diff = role_diff(None, PARAMS, steps)
    assert diff["before"] == {"exists": False}
    assert diff["after"]["replication"] is True and diff["after"]["member_of"] == ["pg_monitor"]
    assert diff["after"]["password"] == "changed"
    assert "secret-1" not in repr(diff)


def test_a_changed_attribute_and_membership_show_before_and_after():
    current = {"rolsuper": False, "rolreplication": False, "rolcanlogin": True, "member_of": [],
               "rolpassword": "SCRAM-SHA-256$4096:AAAA$BBBB:CCCC"}
    steps = plan(current, PARAMS)
    diff = role_diff(current, PARAMS, steps)
    assert diff["before"]["replication"] is False and diff["after"]["replication"] is True
    assert diff["before"]["member_of"] == [] and diff["after"]["member_of"] == ["pg_monitor"]


def test_switchover_diff_names_both_servers():
    planned = roles_diff({"role": "standby", "timeline": 3}, None)
    assert planned["before"]["target"] == {"role": "standby", "timeline": 3}
    assert planned["after"]["target"] == {"role": "primary", "timeline": 4}
    assert planned["before"]["local"]["role"] == "primary" and planned["after"]["local"]["role"] == "stopped"
