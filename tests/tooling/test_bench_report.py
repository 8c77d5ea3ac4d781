"""bin/bench's report on the results of a real bench run (fixtures/bench/run-2026-11-24.json)."""
import importlib.util
import json

from collection_path import REPO

FIXTURES = REPO / "tests" / "tooling" / "fixtures"

SPEC = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
report = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(report)
RUN = json.loads((FIXTURES / "bench" / "run-2026-11-24.json").read_text())


def test_spread_counts_runs_that_never_got_there():
    assert report.spread([0.5, 1.0, 2.0]) == "0.50 / 1.00 / 2.00"
    assert report.spread([0.5, "never", 2.0]) == "0.50 / 1.25 / 2.00 (never in 1 of 3)"
    assert report.spread([None, None]) == "never (2 of 2)"


def test_goals_of_the_recorded_run():
    goals = dict((goal, (measured, met)) for goal, measured, met in report.goals(RUN))
    assert goals["kill -9 (sync): fault → write median ≤ 1.0 s"] == ("0.74 s", True)
    assert goals["0 acknowledged rows lost in sync mode"] == ("0", True)
    assert goals["switchover write pause ≤ 2 s (max)"] == ("3.11 s", False)
    assert goals["fault → write median ≤ 1.5 × baseline's"][1] is True


def test_baseline_rows_show_what_never_happened():
    rows = [line for line in report.failover_table(RUN["failover"]) if line.startswith("| baseline |")]
    assert len(rows) == 3
    assert all("never (" in row for row in rows)


def test_readme_table_is_replaced_between_the_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n%s\nold table\n%s\nafter\n" % (report.README_START, report.README_END))
    report.update_readme(readme, "new table ![c](latest.png)\n")
    assert readme.read_text() == "intro\n%s\nnew table ![c](bench/results/latest.png)\n%s\nafter\n" % (
        report.README_START, report.README_END)


def test_runs_without_data_copy_times_compare_whole_playbooks():
    goals = dict((goal, (measured, met)) for goal, measured, met in report.goals(RUN))
    measured, met = goals["pg_rewind ≤ 10 % of pg_basebackup at 1 GB (rebuild.yml)"]
    assert measured.endswith("%") and not met
    rows = [line for line in report.other_tables(RUN) if line.startswith("| 1024 MB |")]
    assert rows and rows[0].count("| - |") == 2


def test_run_with_keeper_series_and_data_copy_times():
    run = json.loads((FIXTURES / "bench" / "run-2026-11-25.json").read_text())
    goals = dict((goal, (measured, met)) for goal, measured, met in report.goals(run))
    assert goals["keeper mode: fault → write ≤ keepalive budget + 1 s (max)"] == ("2.99 s", True)
    assert goals["switchover write pause ≤ 2 s (max)"] == ("1.35 s", True)
    measured, met = goals["pg_rewind ≤ 10 % of pg_basebackup at 1 GB (data copy)"]
    assert measured == "121.40 %" and not met
    keeper_rows = [line for line in report.other_tables(run) if line.startswith("| kill -9 of the primary |")]
    assert keeper_rows == ["| kill -9 of the primary | 5 | 3 | 2.47 / 2.88 / 2.99 | 0 |"]


def test_per_connection_writer_goals_against_the_baseline():
    def series(system, replication, fresh, following):
        return {"system": system, "replication": replication, "detection": "backend error",
                "runs": [{"to_write": f, "to_write_fresh": f, "following": g, "lost": 0, "rate": 100,
                          "stale_until": 0.0} for f, g in zip(fresh, following)]}
    results = {"failover": [series("pgha", "sync", [0.7, 0.75, 1.6], [1.0, 1.2, 2.0]),
                            series("baseline", "async", [0.8, 0.8, 0.9], [None, None, None])],
               "switchover": [], "rebuild": [], "operations": {}}
    goals = dict((goal, (measured, met)) for goal, measured, met in report.goals(results))
    assert goals["kill -9 (sync), per-connection writer: median ≤ 0.8 s"] == ("0.75 s", True)
    assert goals["kill -9 (sync), per-connection writer: max ≤ 1.5 s"] == ("1.60 s", False)
    assert goals["kill -9 (sync), per-connection writer: median ≤ 1.0 × baseline's"] == ("0.94 ×", True)
    assert goals["every standby streams ≤ 3 s after the first write (max)"] == ("0.45 s", True)
    assert "per-connection writer" in report.failover_table(results["failover"])[0]


def node_series(system, fault, placement, fresh, after=(0.5,)):
    return {"system": system, "replication": "sync" if system != "baseline" else "async", "fault": fault,
            "placement": placement, "runs": [{"to_write": f, "to_write_fresh": f, "lost": 0, "rate": 100,
                                              "following_after_write": a, "old_primary": "pg1",
                                              "new_primary": "pg2", "leader": "pg1"}
                                             for f, a in zip(fresh, list(after) * len(fresh))]}


def test_node_faults_against_the_goals_and_the_baseline():
    results = {"failover": [], "switchover": [], "rebuild": [], "operations": {},
               "node_faults": [node_series("pgha", "power-off", "leader", [4.0, 4.5, 9.0]),
                               node_series("pgha", "power-off", "not leader", [2.0, 2.5, 2.9]),
                               node_series("pgha", "link cut", "leader", [10.0, 11.0, 13.0], after=(3.5,)),
                               node_series("baseline", "power-off", "not leader", [2.0, 2.0, 2.0]),
                               node_series("pgha + fence device", "link cut", "not leader", [3.0])]}
    goals = dict((goal, (measured, met)) for goal, measured, met in report.goals(results))
    assert goals["pgha, power-off (leader on the node): per-connection writer, median ≤ 5 s"] == ("4.50 s", True)
    assert goals["pgha, power-off (leader on the node): max ≤ 8 s"] == ("9.00 s", False)
    assert goals["pgha, power-off (leader elsewhere): per-connection writer, median ≤ 3 s"] == ("2.50 s", True)
    assert goals["pgha, link cut (leader on the node): per-connection writer, median ≤ 8 s"] == ("11.00 s", False)
    assert goals["pgha, node faults: every standby streams ≤ 3 s after the first write (max)"] == ("3.50 s", False)
    assert goals["pgha + fence device, link cut (leader elsewhere): max ≤ 12 s"] == ("3.00 s", True)
    rows = report.node_fault_table(results)
    assert [r for r in rows if r.startswith("| pgha | sync | power-off | elsewhere |")][0].count("1.25 ×") == 1
    assert [r for r in rows if r.startswith("| baseline |")][0].split(" | ")[7] == "-"


def test_kill_series_ratios_and_the_breakdown():
    def series(system, replication, values):
        return {"system": system, "replication": replication, "detection": "backend error",
                "runs": [{"to_write": v, "to_write_fresh": v * 2, "following": v, "lost": 0, "rate": 100,
                          "stale_until": 0.0} for v in values]}
    failover = [series("pgha", "sync", [1.0, 1.2]), series("baseline", "async", [0.5, 0.7])]
    row = report.failover_table(failover)[2]
    assert "1.83 × / 1.83 ×" in row
    breakdowns = {"breakdowns": {
        "pgha": [{"step": "failover command starts", "seconds": 0.123, "node": "pg2"},
                 {"step": "fence done", "seconds": None, "node": ""},
                 {"step": "first write", "seconds": 0.5, "node": ""}],
        "baseline": [{"step": "failover command starts", "seconds": 0.1, "node": "pg1"},
                     {"step": "first write", "seconds": 0.45, "node": ""}]}}
    assert report.breakdown_table(breakdowns)[-5:] == [
        "| one kill -9 failover, seconds after the fault (node) | pgha (sync) | baseline (async) |",
        "| --- | --- | --- |",
        "| failover command starts | 0.123 (pg2) | 0.100 (pg1) |", "| fence done | - | - |",
        "| first write | 0.500 | 0.450 |"]
    assert report.breakdown_table({}) == []
