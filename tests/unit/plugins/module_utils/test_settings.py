"""Every setting is checked before a host is touched: the table and the messages."""
import re

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import settings
from collection_path import REPO


@pytest.mark.parametrize("name, value, expected", [
    ("pgpool_health_check_period", "-1", "pgpool_health_check_period must be between 1 and 3600, got -1"),
    ("pgpool_health_check_period", 0, "between 1 and 3600"),
    ("pgha_lease_seconds", 4.0, "pgha_lease_seconds must be between 1.0 and 3.5"),
    ("pgha_postgresql_port", "abc", "pgha_postgresql_port must be an integer, got 'abc'"),
    ("pgpool_wd_port", 70000, "between 1 and 65535"),
    ("pgpool_max_pool", "2.5", "pgpool_max_pool must be an integer"),
    ("pgpool_max_pool", True, "pgpool_max_pool must be an integer"),
    ("keeper_keepalives_time", "soon", "keeper_keepalives_time must be a number"),
    ("switchover_max_lag_bytes", -5, "between 0 and"),
    ("pgha_vip_prefix", 33, "between 1 and 32"),
    ("pgha_synchronous_mode", "sometimes", "pgha_synchronous_mode must be one of off, on, remote_apply, got 'sometimes'"),
    ("pgha_mode", "cloud", "pgha_mode must be one of pgpool, keeper"),
    ("pgha_postgresql_group", "databases", "pgha_postgresql_group must be one of pgha_postgresql"),
    ("replication_basebackup_checkpoint", "slow", "must be one of fast, spread"),
    ("pgpool_load_balance_mode", "maybe", "pgpool_load_balance_mode must be true or false"),
    ("pgha_tls", "maybe", "pgha_tls must be true or false"),
    ("pgha_client_direct", "sometimes", "pgha_client_direct must be true or false"),
    ("pgha_tls_renew_days", 0, "pgha_tls_renew_days must be between 1 and 365"),
    ("pgpool_fence_command", "/usr/local/bin/stonith --off", "pgpool_fence_command must be a list of arguments"),
    ("pgpool_fence_command", ["stonith", "--off"], "pgpool_fence_command must start with the program's absolute path"),
    ("failover_fence_command", ["/bin/x", 3], "failover_fence_command must be a list of arguments"),
    ("pgha_admin_networks", "10.0.0.0/8", "pgha_admin_networks must be a list of networks"),
    ("pgha_client_networks", ["10.0.0.0/8", "10.0.0.300/32"], "pgha_client_networks: '10.0.0.300/32' is not a network"),
    ("pgha_client_networks", ["192.0.2.7"], "'192.0.2.7' is not a network in CIDR form"),
    ("pgha_address", "pg1.example.com", "pgha_address must be an IP address (or empty), got 'pg1.example.com'"),
    ("pgha_vip", "10.0.0.5/24", "pgha_vip must be an IP address"),
    ("pgpool_users", {"name": "app"}, "pgpool_users must be a list of {name, password} entries"),
    ("pgpool_users", [{"name": "app"}], "pgpool_users[0] (app) needs a password"),
    ("pgpool_users", [{"password": "secret"}], "pgpool_users[0] needs a name"),
])
def test_a_bad_value_is_named_with_what_is_allowed(name, value, expected):
    errors = settings.setting_errors({name: value})
    assert len(errors) == 1 and expected in errors[0], errors


@pytest.mark.parametrize("name, value", [
    ("pgpool_health_check_period", "5"), ("pgha_lease_seconds", "2.5"), ("pgha_postgresql_port", 5433),
    ("pgpool_load_balance_mode", "yes"), ("pgpool_failover_on_backend_error", False),
    ("pgha_synchronous_mode", "remote_apply"), ("switchover_max_lag_bytes", 0),
    ("pgpool_fence_command", []), ("pgpool_fence_command", ["/usr/local/bin/stonith", "--off"]),
    ("pgha_admin_networks", []), ("pgha_client_networks", ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]),
    ("pgha_address", ""), ("pgha_vip", "10.0.0.100"), ("pgpool_users", [{"name": "app", "password": "x"}]),
])
def test_good_values_pass(name, value):
    assert settings.setting_errors({name: value}) == []


def test_unknown_names_are_left_to_the_roles():
    assert settings.setting_errors({"pgha_admin_user": "x", "something_else": -1}) == []


def test_every_error_is_reported_at_once():
    errors = settings.setting_errors({"pgpool_health_check_period": -1, "pgha_mode": "x", "pgpool_max_pool": "y"})
    assert len(errors) == 3


def test_a_password_is_never_echoed():
    errors = settings.setting_errors({"pgpool_users": [{"name": "", "password": "s3cret"}]})
    assert errors and "s3cret" not in " ".join(errors)


def test_heartbeat_deadtime_must_exceed_the_keepalive():
    errors = settings.setting_errors({"pgpool_wd_heartbeat_keepalive": 5, "pgpool_wd_heartbeat_deadtime": 5})
    assert errors == ["pgpool_wd_heartbeat_keepalive (5) must be smaller than pgpool_wd_heartbeat_deadtime (5)"]


DEFAULT_PORTS = {"pgha_postgresql_port": 5432, "pgha_pgpool_port": 9999, "pgha_pcp_port": 9898,
                 "pgpool_wd_port": 9000, "pgpool_heartbeat_port": 9694}


@pytest.mark.parametrize("changed, colocated, expected", [
    ({}, True, []),
    ({"pgha_pcp_port": "9000"}, True, ["pgha_pcp_port and pgpool_wd_port are both 9000"]),
    ({"pgha_pgpool_port": 5432}, True, ["pgha_pgpool_port and pgha_postgresql_port are both 5432"]),
    # pgpool on hosts of its own may listen on PostgreSQL's port
    ({"pgha_pgpool_port": 5432}, False, []),
    ({"pgha_pgpool_port": 9000, "pgha_mode": "keeper"}, True, []),
    ({"pgha_pcp_port": "x", "pgpool_heartbeat_port": 9000}, True, ["pgpool_wd_port and pgpool_heartbeat_port are both 9000"]),
])
def test_two_services_on_one_port_of_a_host_are_refused(changed, colocated, expected):
    errors = settings.setting_errors(dict(DEFAULT_PORTS, **changed), colocated)
    assert [e.split(":")[0] for e in errors if "both" in e] == expected


@pytest.mark.parametrize("extra, expected", [
    ({"failover_command": "/bin/true"}, "pgpool_settings: failover_command is set by pgha itself"),
    ({"backend_hostname3": "x"}, "pgpool_settings: backend_hostname3 is set by pgha itself"),
    ({"client idle": 1}, "is not a setting name"),
    ({"client_idle_limit": "1'; failover_command = 'x"}, "without quotes or line breaks"),
])
def test_pgpool_settings_may_not_replace_what_pgha_sets(extra, expected):
    errors = settings.setting_errors({"pgpool_settings": extra})
    assert len(errors) == 1 and expected in errors[0], errors


def test_extra_settings_pass_when_pgha_does_not_set_them():
    assert settings.setting_errors({"pgpool_settings": {"client_idle_limit": 300},
                                    "postgresql_settings": {"work_mem": "64MB", "shared_buffers": "1GB"}}) == []


@pytest.mark.parametrize("key", ["wal_receiver_timeout", "synchronous_standby_names", "primary_conninfo"])
def test_postgresql_settings_may_not_replace_the_lease_or_the_replication(key):
    errors = settings.setting_errors({"postgresql_settings": {key: "x"}})
    assert len(errors) == 1 and "postgresql_settings: %s is set by pgha itself" % key in errors[0]


def template_keys(path):
    return {re.sub(r"\{\{.*$|[0-9]+$", "", m) for m in re.findall(r"^([a-z_0-9]+(?:\{\{[^}]*\}\})?)\s*=", path.read_text(), re.M)}


def test_the_managed_lists_cover_what_the_templates_write():
    pgpool = template_keys(REPO / "roles/pgpool/templates/pgpool.conf.j2")
    optional = {"log_connections", "log_destination", "log_line_prefix", "logging_collector",
                "reserved_connections", "statement_level_load_balance", "recovery_"}
    assert pgpool - optional - settings.PGPOOL_MANAGED == set()
    postgresql = template_keys(REPO / "roles/postgresql/templates/conf.d/pgha.conf.j2")
    optional = {"logging_collector", "log_line_prefix", "log_connections"}
    assert postgresql - optional - settings.POSTGRESQL_MANAGED == set()
    import yaml
    tls = yaml.safe_load((REPO / "roles/pgha/vars/main.yml").read_text())["pgha_tls_postgresql_settings"]
    assert set(tls) - settings.POSTGRESQL_MANAGED == set()


def test_every_numeric_or_enumerated_role_option_is_in_the_table():
    import yaml
    names = set()
    for spec_file in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec_file.read_text())["argument_specs"].values():
            for name, option in (entry.get("options") or {}).items():
                if option.get("type") in ("int", "float", "bool") or "choices" in option:
                    names.add(name)
    assert names - set(settings.known_settings()) == set()


def test_every_role_entry_point_has_a_description():
    import yaml
    missing = []
    for spec_file in sorted((REPO / "roles").glob("*/meta/argument_specs.yml")):
        for name, entry in yaml.safe_load(spec_file.read_text())["argument_specs"].items():
            if not entry.get("short_description") or not entry.get("description"):
                missing.append("%s:%s" % (spec_file.parts[-3], name))
    assert missing == []


@pytest.mark.parametrize("name, expected", [
    ("pgha_synchronous_mod", "pgha_synchronous_mod is not a pgha variable, nothing reads it (did you mean "
                             "pgha_synchronous_mode?)"),
    ("pgpool_helth_check_period", "(did you mean pgpool_health_check_period?)"),
    ("keeper_zzz_qqq", "keeper_zzz_qqq is not a pgha variable, nothing reads it"),
    ("postgresql_setings", "(did you mean postgresql_settings?)"),
    ("rebuild_alow_basebackup", "(did you mean rebuild_allow_basebackup?)"),
    ("status_fail_on_warnng", "(did you mean status_fail_on_warning?)"),
])
def test_a_misspelt_variable_is_refused_with_the_closest_name(name, expected):
    known = settings.collection_names(str(REPO))
    errors = settings.unknown_setting_errors([name, "pgha_mode", "other_role_variable"], known)
    assert len(errors) == 1 and expected in errors[0]


@pytest.mark.parametrize("name", ["postgresql_version", "postgresql_users", "postgresql_databases",
                                  "postgresql_hba_entries", "postgresql_global_config_options", "failover_timeout",
                                  "service_name", "status_page", "postgresql_locales"])
def test_another_roles_variable_with_a_shared_prefix_is_left_alone(name):
    assert settings.unknown_setting_errors([name], settings.collection_names(str(REPO))) == []


def test_every_variable_the_roles_document_or_the_examples_set_is_known():
    import yaml
    known = settings.collection_names(str(REPO))
    documented = set()
    for spec_file in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec_file.read_text())["argument_specs"].values():
            documented.update(entry.get("options") or {})
    for vars_file in (REPO / "inventories").glob("*/group_vars/**/*.yml"):
        documented.update(yaml.safe_load(vars_file.read_text()) or {})
    assert settings.unknown_setting_errors(documented, known) == []


@pytest.mark.parametrize("values, expected", [
    ({"postgresql_encoding": "UTF8", "postgresql_locale": "C.UTF-8"}, []),
    ({"postgresql_encoding": "utf-8", "postgresql_locale": "en_US.utf8"}, []),
    ({"postgresql_encoding": "LATIN1", "postgresql_locale": "C"}, []),
    ({"postgresql_encoding": "LATIN1", "postgresql_locale": "de_DE.ISO-8859-1"}, []),
    ({"postgresql_encoding": "UTF9"}, ["postgresql_encoding must be a PostgreSQL server encoding"]),
    ({"postgresql_encoding": "LATIN1", "postgresql_locale": "C.UTF-8"}, ["does not match postgresql_locale C.UTF-8"]),
    ({"postgresql_locale": "en US; rm -rf"}, ["postgresql_locale must be a locale name"]),
    ({"postgresql_encoding": "SQL_ASCII", "postgresql_locale": "C.UTF-8"}, []),
    ({"postgresql_encoding": "UNICODE", "postgresql_locale": "en_US.UTF-8"}, []),
    ({"postgresql_encoding": "ISO-8859-1", "postgresql_locale": "de_DE.ISO-8859-1"}, []),
    ({"postgresql_encoding": "UTF8", "postgresql_locale": "C"}, []),
    ({"postgresql_encoding": "UTF8", "postgresql_locale": "de_DE.iso88591"}, ["UTF8 does not match postgresql_locale"]),
])
def test_encoding_and_locale_are_checked_before_initdb(values, expected):
    errors = settings.setting_errors(values)
    assert len(errors) == len(expected) and all(e in error for e, error in zip(expected, errors)), errors
