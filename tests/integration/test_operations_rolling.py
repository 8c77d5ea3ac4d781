"""A setting only the server can refuse costs one node for seconds, never the cluster:
pgpool checks its staged file before any node uses it; a PostgreSQL setting that fails a
restart stops the roll at the first standby, whose previous files are put back; writes
through the virtual IP go on the whole time (the longest pause is reported)."""
import time

from cluster_probe import Writer, followers_ok, lab_exec, pool_attached, primaries, survey, wait_for
from conftest import outcome, report

PAUSE_BOUND = 30.0  # liveness: generous, the goal (a few seconds) is in the report


def site_with(ansible, lab, settings_json):
    writer = Writer(lab)
    writer.start()
    assert wait_for(lambda: len(writer.acked) > 10, 20), "no writes through the VIP before the change"
    started = time.time()
    result = ansible.playbook("pgha.cluster.site", "-e", settings_json)
    time.sleep(2)
    writer.stop.set()
    writer.join(10)
    during = [t for _, t, _ in writer.acked if t >= started]
    assert during, "no write went through while site.yml ran"
    pause = max(b - a for a, b in zip([started] + during, during + [time.time()]))
    return result, pause


def config_has(node, path, text):
    return lab_exec(node, "grep -qF %s %s" % (repr(text), path)).returncode == 0


def pgpool_started_at(node):
    return lab_exec(node, "systemctl show -p ActiveEnterTimestampMonotonic --value pgpool2").stdout.strip()


def test_a_pgpool_setting_pgpool_refuses_is_refused_before_any_node_restarts(ansible, lab, healthy_cluster):
    """pgpool reads the staged file first (its range and choice checks): no node restarts."""
    started = dict((node, pgpool_started_at(node)) for node in lab["nodes"])
    result, pause = site_with(ansible, lab, '{"pgpool_settings": {"child_life_time": "-1"}}')
    assert result.returncode != 0, "site.yml accepted a value pgpool refuses"
    assert "pgpool refuses the new pgpool.conf" in result.stdout and "child_life_time" in result.stdout, \
        outcome(result)
    for node in lab["nodes"]:
        assert not config_has(node, "/etc/pgpool2/pgpool.conf", "child_life_time = '-1'"), node
        assert lab_exec(node, "systemctl is-active pgpool2").stdout.strip() == "active", node
        assert pgpool_started_at(node) == started[node], "pgpool on %s was restarted" % node
        assert lab_exec(node, "test -e /var/lib/pgha/maintenance.site").returncode != 0, "site marker left on " + node
    assert pause < PAUSE_BOUND, "writes through the VIP paused %.1f s" % pause
    report("rolling.txt", "pgpool setting refused by pgpool's own check of the staged file: no node restarted, "
           "longest write pause through the VIP %.2f s" % pause)


def test_a_postgresql_setting_that_fails_the_restart_stops_at_the_first_standby(ansible, lab, healthy_cluster):
    primary = primaries(survey(lab))[0]
    result, pause = site_with(ansible, lab, '{"postgresql_settings": {"shared_buffers": "4TB"}}')
    assert result.returncode != 0, "site.yml accepted shared_buffers the server cannot start with"
    assert "did not come back streaming" in result.stdout and "no other node was restarted" in result.stdout, \
        outcome(result)
    conf = "/etc/postgresql/*/main/conf.d/pgha.conf"
    for node in lab["nodes"]:
        assert not config_has(node, conf, "4TB"), "%s kept the refused setting" % node
    assert primaries(survey(lab)) == [primary], "the primary changed"
    assert wait_for(lambda: followers_ok(lab, primary), 60), "a standby does not stream again"
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool did not attach every node again"
    assert pause < PAUSE_BOUND, "writes through the VIP paused %.1f s" % pause
    report("rolling.txt", "PostgreSQL setting that fails a restart: roll stopped at the first standby, "
           "longest write pause through the VIP %.2f s" % pause)


def guard_started(node):
    return lab_exec(node, "systemctl show -P ExecMainStartTimestampMonotonic pgha-guard").stdout.strip()


def test_a_node_guard_that_does_not_stay_up_stops_the_roll_at_its_node(ansible, lab, healthy_cluster):
    """New guard files cost one node's guard, never every node's: the guards restart one node at
    a time, the standbys first, and the roll stops at the first that does not stay up. The next
    run restarts every guard still older than its files (the truth is on the node, not in a run)."""
    primary = primaries(survey(lab))[0]
    broken = [n for n in sorted(lab["nodes"]) if n != primary][0]
    dropin = "/etc/systemd/system/pgha-guard.service.d"
    before = dict((node, guard_started(node)) for node in lab["nodes"])
    lab_exec(broken, "mkdir -p %s && printf '[Service]\\nExecStartPre=/bin/false\\n' > %s/zz-test.conf"
             " && systemctl daemon-reload" % (dropin, dropin))
    try:
        for node in lab["nodes"]:   # new settings on every node, as an upgrade writes them
            assert lab_exec(node, "touch /etc/pgha/guard.json").returncode == 0
        result = ansible.playbook("pgha.cluster.site")
        assert result.returncode != 0, "site.yml went on past a guard that did not come back"
        assert "pgha-guard on %s did not stay up" % broken in result.stdout, outcome(result)
        for node in lab["nodes"]:
            if node != broken:
                assert guard_started(node) == before[node], "the guard on %s was restarted" % node
            assert lab_exec(node, "test -e /var/lib/pgha/maintenance.site").returncode != 0, "site marker on " + node
        assert primaries(survey(lab)) == [primary]
    finally:
        lab_exec(broken, "rm -f %s/zz-test.conf && systemctl daemon-reload" % dropin)
    result = ansible.playbook("pgha.cluster.site")
    assert result.returncode == 0, outcome(result)
    for node in lab["nodes"]:
        assert lab_exec(node, "systemctl is-active pgha-guard").stdout.strip() == "active", node
        assert guard_started(node) != before[node], "the stale guard on %s was not restarted" % node
    assert wait_for(lambda: followers_ok(lab, primary), 60), "a standby does not stream"
