# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Type, range and choices of every setting a user may give, checked on the controller
before any host is touched. Plain Python: the lookup plugin setting_errors and the unit
tests call setting_errors()."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import ipaddress
import os
import re

PORT = ("int", 1, 65535)
SECONDS = ("int", 1, 86400)

# name -> (type, lowest, highest)
BOUNDS = {
    "pgha_postgresql_port": PORT,
    "pgha_pcp_port": PORT,
    "pgha_pgpool_port": PORT,
    "pgha_vip_prefix": ("int", 1, 32),
    "pgha_lease_seconds": ("float", 1.0, 3.5),
    "pgha_tls_renew_days": ("int", 1, 365),
    "pgpool_health_check_period": ("int", 1, 3600),
    "pgpool_health_check_timeout": ("int", 1, 3600),
    "pgpool_health_check_max_retries": ("int", 0, 100),
    "pgpool_health_check_retry_delay": ("int", 1, 3600),
    "pgpool_sr_check_period": ("int", 0, 3600),
    "pgpool_num_init_children": ("int", 1, 10000),
    "pgpool_max_pool": ("int", 1, 1000),
    "pgpool_wd_heartbeat_keepalive": ("int", 1, 60),
    "pgpool_wd_heartbeat_deadtime": ("int", 2, 600),
    "pgpool_wd_port": PORT,
    "pgpool_heartbeat_port": PORT,
    "pgpool_follow_timeout": SECONDS,
    "pgpool_apply_timeout": ("int", 10, 600),
    "postgresql_max_connections": ("int", 10, 262143),
    "postgresql_restart_timeout": ("int", 10, 3600),
    "keeper_keepalives_time": ("float", 0.2, 60.0),
    "keeper_keepalives_count": ("int", 1, 100),
    "keeper_after_command_timeout": ("int", 1, 3600),
    "pgha_arbiter_port": PORT,
    "failover_follow_timeout": SECONDS,
    "rebuild_stream_timeout": SECONDS,
    "rebuild_keep_aside": ("int", 1, 1000),
    "rebuild_keep_aside_days": ("int", 0, 3650),
    "replication_stream_timeout": SECONDS,
    "service_start_timeout": SECONDS,
    "switchover_catchup_timeout": SECONDS,
    "switchover_max_lag_bytes": ("int", 0, 2 ** 62),
}

CHOICES = {
    "pgha_mode": ("pgpool", "keeper"),
    # The playbooks' plays target these groups by name (hosts: pgha_postgresql, ...).
    "pgha_postgresql_group": ("pgha_postgresql",),
    "pgha_pgpool_group": ("pgha_pgpool",),
    "pgha_keeper_witness_group": ("pgha_keeper_witness",),
    "pgha_synchronous_mode": ("off", "on", "remote_apply"),
    "replication_basebackup_checkpoint": ("fast", "spread"),
}

BOOLS = (
    "pgha_no_log", "pgpool_failover_on_backend_error", "pgpool_failover_require_consensus",
    "pgpool_load_balance_mode", "failover_force", "service_start_force", "failover_cascade", "rebuild_allow_basebackup", "rebuild_basebackup",
    "status_fail_on_warning", "switchover_maintenance", "pgha_break_lock", "pgha_pool_attach_may_fail", "pgha_tls",
    "pgha_synchronous_mode_strict", "pgpool_ssl", "pgha_client_direct",
    # the operation playbooks' own extra vars (-e force=true, break_lock, basebackup)
    "force", "break_lock", "basebackup",
)

# Commands run by pgha as an argv list (empty: none); the program by its absolute path.
COMMANDS = ("pgpool_fence_command", "failover_fence_command")

# pg_hba.conf / pool_hba.conf networks: lists of CIDR (a bare string would be read a
# character at a time).
NETWORKS = ("pgha_client_networks", "pgha_admin_networks")

# Addresses written into pg_hba.conf, pgpool.conf and certificates: an IP address or empty.
ADDRESSES = ("pgha_address", "pgha_vip")

# name -> (smaller, larger): the first must stay below the second.
ORDERED = (
    ("pgpool_wd_heartbeat_keepalive", "pgpool_wd_heartbeat_deadtime"),
)

# pgpool.conf settings pgha writes itself (a trailing node number stripped): the failover
# hooks, the watchdog and the backends are what the safety rules rest on, so
# pgpool_settings may not replace them; the rest have their own pgpool_* variable.
PGPOOL_MANAGED = frozenset("""
allow_clear_text_frontend_auth allow_multiple_failover_requests_from_node arping_cmd arping_path
auto_failback backend_application_name backend_clustering_mode backend_data_directory backend_flag
backend_hostname backend_port backend_weight connect_timeout delay_threshold detach_false_primary
enable_consensus_with_half_votes enable_pool_hba failback_command failover_command
failover_on_backend_error failover_on_backend_shutdown failover_require_consensus
failover_when_quorum_exists follow_primary_command health_check_database health_check_max_retries
health_check_password health_check_period health_check_retry_delay health_check_timeout
health_check_user heartbeat_device heartbeat_hostname heartbeat_port hostname if_cmd_path
if_down_cmd if_up_cmd listen_addresses load_balance_mode logdir max_pool num_init_children
pcp_listen_addresses pcp_port pcp_socket_dir pgpool_port pid_file_name pool_passwd port
recovery_1st_stage_command recovery_2nd_stage_command recovery_password recovery_user
search_primary_node_timeout socket_dir sr_check_database sr_check_password sr_check_period
sr_check_user ssl ssl_ca_cert ssl_cert ssl_key ssl_prefer_server_ciphers unix_socket_directories
use_watchdog wd_heartbeat_deadtime wd_heartbeat_keepalive
wd_interval wd_ipc_socket_dir wd_lifecheck_method wd_port wd_priority
""".split())

# PostgreSQL settings the lease, the replication and the failover depend on: set by pgha
# (conf.d/pgha.conf, pgha-sync.conf, recovery settings), not by postgresql_settings; the
# TLS files and switch too (pgha_tls, the tls role).
POSTGRESQL_MANAGED = frozenset("""
listen_addresses port max_connections password_encryption wal_level wal_log_hints max_wal_senders
max_replication_slots max_slot_wal_keep_size wal_keep_size hot_standby hot_standby_feedback
wal_receiver_status_interval wal_receiver_timeout wal_retrieve_retry_interval
recovery_target_timeline archive_mode archive_command synchronous_standby_names
synchronous_commit primary_conninfo primary_slot_name restore_command promote_trigger_file
ssl ssl_cert_file ssl_key_file ssl_ca_file ssl_min_protocol_version
""".split())

NAMED_SETTING = re.compile(r"^[a-z_][a-z0-9_.]*$")
TRUE_WORDS = ("true", "yes", "on", "1", "y", "t")
FALSE_WORDS = ("false", "no", "off", "0", "n", "f")


def as_number(kind, value):
    """int or float from a setting (extra vars arrive as strings); None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if kind == "float" else int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number


def bound_error(name, value):
    kind, low, high = BOUNDS[name]
    number = as_number(kind, value)
    if number is None:
        return "%s must be %s, got %r" % (name, "an integer" if kind == "int" else "a number", value)
    if not low <= number <= high:
        return "%s must be between %s and %s, got %s" % (name, low, high, value)
    return None


def choice_error(name, value):
    if value not in CHOICES[name]:
        return "%s must be one of %s, got %r" % (name, ", ".join(CHOICES[name]), value)
    return None


def bool_error(name, value):
    if isinstance(value, bool) or str(value).strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return None
    return "%s must be true or false, got %r" % (name, value)


def command_error(name, value):
    if not isinstance(value, list) or not all(isinstance(arg, str) and arg for arg in value):
        return "%s must be a list of arguments, e.g. [\"/usr/local/bin/stonith\", \"--off\"], got %r" % (name, value)
    if value and not value[0].startswith("/"):
        return "%s must start with the program's absolute path, got %r" % (name, value[0])
    return None


def extra_settings_errors(name, value, managed, strip_number):
    """Errors of pgpool_settings / postgresql_settings: a mapping of plain names that pgha
    does not set itself."""
    if not isinstance(value, dict):
        return ["%s must be a mapping of setting names to values, got %r" % (name, value)]
    errors = []
    for key in sorted(value):
        base = re.sub(r"[0-9]+$", "", key) if strip_number else key
        if not isinstance(key, str) or not NAMED_SETTING.match(key):
            errors.append("%s: %r is not a setting name" % (name, key))
        elif base in managed:
            errors.append("%s: %s is set by pgha itself (failover, watchdog or replication depend on it); "
                          "use its pgpool_/postgresql_/pgha_ variable where one exists" % (name, key))
        elif isinstance(value[key], (dict, list)) or "'" in str(value[key]) or "\n" in str(value[key]):
            errors.append("%s: %s must be a single value without quotes or line breaks" % (name, key))
    return errors


def network_error(name, value):
    if not isinstance(value, list):
        return "%s must be a list of networks, e.g. [\"10.0.0.0/8\"], got %r" % (name, value)
    bad = [net for net in value if not (_parses(_network, net) and "/" in net)]
    if bad:
        return "%s: %s %s not a network in CIDR form (e.g. 10.0.0.0/8, 192.0.2.7/32)" % (
            name, ", ".join(repr(net) for net in bad), "is" if len(bad) == 1 else "are")
    return None


def address_error(name, value):
    if value in ("", None) or _parses(ipaddress.ip_address, value):
        return None
    return "%s must be an IP address (or empty), got %r" % (name, value)


def _network(text):
    return ipaddress.ip_network(text, strict=False)


def _parses(parse, text):
    if not isinstance(text, str):
        return False
    try:
        parse(text.strip())
    except ValueError:
        return False
    return True


def users_errors(name, value):
    """pgpool_users: a list of {name, password}; a password is never echoed."""
    if not isinstance(value, list):
        return ["%s must be a list of {name, password} entries, got a %s" % (name, type(value).__name__)]
    errors = []
    for index, user in enumerate(value):
        if not isinstance(user, dict) or not isinstance(user.get("name"), str) or not user["name"].strip():
            errors.append("%s[%d] needs a name (a role name)" % (name, index))
        elif user.get("password") in (None, ""):
            errors.append("%s[%d] (%s) needs a password" % (name, index, user["name"]))
    return errors


def order_errors(values):
    errors = []
    for smaller, larger in ORDERED:
        kind = BOUNDS[smaller][0]
        low, high = as_number(kind, values.get(smaller)), as_number(kind, values.get(larger))
        if low is not None and high is not None and low >= high:
            errors.append("%s (%s) must be smaller than %s (%s)" % (smaller, low, larger, high))
    return errors


# Ports every pgpool node listens on, and PostgreSQL's beside them on a node in both groups (a
# pgpool host of its own may well listen on 5432 too).
# PostgreSQL's server encodings (initdb --encoding) and the aliases it takes, compared as
# PostgreSQL does: case and anything but letters and digits ignored (UTF-8 is UTF8).
SERVER_ENCODINGS = frozenset("""
    sql_ascii utf8 mule_internal euc_jp euc_cn euc_kr euc_tw euc_jis_2004 koi8r koi8u win866 win874
    win1250 win1251 win1252 win1253 win1254 win1255 win1256 win1257 win1258 latin1 latin2 latin3 latin4
    latin5 latin6 latin7 latin8 latin9 latin10 iso_8859_5 iso_8859_6 iso_8859_7 iso_8859_8
    unicode koi8 alt win tcvn tcvn5712 vscii abc iso88591 iso88592 iso88593 iso88594 iso88599 iso885910
    iso885913 iso885914 iso885915 iso885916 cp866 cp874 cp1250 cp1251 cp1252 cp1253 cp1254 cp1255 cp1256
    cp1257 cp1258 eucjp euccn euckr euctw
""".split())
UTF8_NAMES = ("utf8", "unicode")


def _squeezed(text):
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def locale_errors(values):
    """postgresql_encoding must be a server encoding that the locale's codeset allows
    (initdb refuses the pair on the primary, halfway through a deploy): a UTF-8 locale takes
    UTF8 (or SQL_ASCII), UTF8 needs a UTF-8 locale (or C, POSIX)."""
    encoding, locale = values.get("postgresql_encoding"), values.get("postgresql_locale")
    errors = []
    if encoding is not None and _squeezed(encoding) not in set(_squeezed(e) for e in SERVER_ENCODINGS):
        errors.append("postgresql_encoding must be a PostgreSQL server encoding (UTF8, LATIN1, ...), got %r" % (encoding,))
    if locale is not None and not re.match(r"^[A-Za-z0-9_.@-]+$", str(locale)):
        errors.append("postgresql_locale must be a locale name such as C.UTF-8 or en_US.UTF-8, got %r" % (locale,))
    if errors or encoding is None or locale is None:
        return errors
    codeset, wanted = _squeezed(str(locale).partition(".")[2].partition("@")[0]), _squeezed(encoding)
    utf8_locale, utf8_encoding = codeset == "utf8", wanted in UTF8_NAMES
    if (utf8_locale and not utf8_encoding and wanted != "sqlascii") or (codeset and not utf8_locale and utf8_encoding):
        errors.append("postgresql_encoding %s does not match postgresql_locale %s (initdb refuses the pair: a UTF-8 "
                      "locale needs UTF8, UTF8 needs a UTF-8 locale or C)" % (encoding, locale))
    return errors


POOL_PORTS = ("pgha_pgpool_port", "pgha_pcp_port", "pgpool_wd_port", "pgpool_heartbeat_port")


def port_errors(values, colocated):
    """Two of pgha's services told to listen on one port of one host (pgpool mode): the
    second would not start. colocated: some node runs PostgreSQL and pgpool."""
    if values.get("pgha_mode") == "keeper":
        return []
    names = POOL_PORTS + (("pgha_postgresql_port",) if colocated else ())
    seen, errors = {}, []
    for name in names:
        port = as_number("int", values.get(name))
        if port is None:
            continue
        if port in seen:
            errors.append("%s and %s are both %d: a node would need to listen on it twice" % (seen[port], name, port))
        seen.setdefault(port, name)
    return errors


def setting_errors(values, colocated=True):
    """values: the user's settings by name (any subset). Returns a list of messages, each
    naming the variable, the value and what is allowed; empty when all are valid."""
    errors = []
    for name in sorted(values):
        value = values[name]
        if name in BOUNDS:
            error = bound_error(name, value)
        elif name in CHOICES:
            error = choice_error(name, value)
        elif name in BOOLS:
            error = bool_error(name, value)
        elif name in COMMANDS:
            error = command_error(name, value)
        elif name in NETWORKS:
            error = network_error(name, value)
        elif name in ADDRESSES:
            error = address_error(name, value)
        else:
            continue
        if error:
            errors.append(error)
    if "pgpool_settings" in values:
        errors += extra_settings_errors("pgpool_settings", values["pgpool_settings"], PGPOOL_MANAGED, True)
    if "postgresql_settings" in values:
        errors += extra_settings_errors("postgresql_settings", values["postgresql_settings"], POSTGRESQL_MANAGED, False)
    if "pgpool_users" in values:
        errors += users_errors("pgpool_users", values["pgpool_users"])
    return errors + order_errors(values) + port_errors(values, colocated) + locale_errors(values)


def known_settings():
    return sorted(set(BOUNDS) | set(CHOICES) | set(BOOLS) | set(COMMANDS) | set(NETWORKS) | set(ADDRESSES)
                  | {"pgpool_settings", "postgresql_settings", "pgpool_users", "postgresql_encoding", "postgresql_locale"}
                  | {name for pair in ORDERED for name in pair})


# Variables with these prefixes are pgha's: one that the collection never reads is a typo
# (a misspelt synchronous mode would leave replication asynchronous without a word). No
# misspelt name may appear in the scanned files, or it would count as known.
OWN_PREFIXES = ("pgha_", "pgpool_", "keeper_")
# Variables named after the collection's other roles may belong to another role of the same
# inventory (the version or the users of another PostgreSQL role): only a near miss of one
# of ours (a letter left out of a name) is refused as a typo.
ROLE_PREFIXES = ("postgresql_", "replication_", "rebuild_", "failover_", "switchover_", "service_", "status_")
NEAR_MISS = 0.9
NAME = re.compile(r"\b(?:%s)[a-z0-9_]*[a-z0-9]" % "|".join(OWN_PREFIXES + ROLE_PREFIXES))


def collection_names(root):
    """Every name with one of the prefixes above that the collection's roles, playbooks and
    plugins mention."""
    names = set()
    for top in ("roles", "playbooks", "plugins"):
        for folder, unused, files in os.walk(os.path.join(root, top)):
            for name in files:
                if name.endswith((".yml", ".yaml", ".j2", ".py")):
                    with open(os.path.join(folder, name)) as handle:
                        names.update(NAME.findall(handle.read()))
    return names


def unknown_setting_errors(names, known):
    """One message per pgha_/pgpool_/keeper_ variable the collection never reads, and per
    near miss of a variable of its other roles."""
    errors = []
    for name in sorted(n for n in names if n.startswith(OWN_PREFIXES + ROLE_PREFIXES) and n not in known):
        if name.startswith(OWN_PREFIXES):
            close = difflib.get_close_matches(name, sorted(known), 1, 0.75)
        else:
            # a letter left out or swapped, not one added: another role's plural (its list of
            # locales beside our one locale) is no typo of ours
            prefix = name.split("_", 1)[0] + "_"
            close = difflib.get_close_matches(name, sorted(k for k in known if k.startswith(prefix)), 1, NEAR_MISS)
            if not close or len(name) > len(close[0]):
                continue
        errors.append("%s is not a pgha variable, nothing reads it%s" % (
            name, " (did you mean %s?)" % close[0] if close else ""))
    return errors
