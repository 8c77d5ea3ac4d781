"""bin/bench's report: latest.md (tables, settings, goals), latest.png (chart) and the
table in the README between the bench markers. `python3 bench/report.py` redraws them
from bench/results/latest.json."""
import json
import statistics
import sys
from pathlib import Path

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def spread(values):
    """min / median / max of the measured values; 'never' counted separately."""
    numbers = [v for v in values if isinstance(v, (int, float))]
    never = len(values) - len(numbers)
    if not numbers:
        return "never (%d of %d)" % (never, len(values)) if never else "-"
    text = "%.2f / %.2f / %.2f" % (min(numbers), statistics.median(numbers), max(numbers))
    return text + (" (never in %d of %d)" % (never, len(values)) if never else "")


def median_of(values):
    numbers = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(numbers) if numbers and len(numbers) == len(values) else None


def worst(values):
    """The largest value, or None when any run never got there."""
    if any(not isinstance(v, (int, float)) for v in values):
        return None
    return max(values) if values else None


def failover_table(series):
    lines = ["| system | replication | detection | cycles | fault → first write, s (min / median / max) | "
             "per-connection writer, s | ratio to the baseline's median (persistent / per-connection) | "
             "acked rows lost | all standbys follow the new primary, s | "
             "stale reads through pgpool until, s | writer commits/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in series:
        runs = s["runs"]
        lines.append("| %s | %s | %s | %d | %s | %s | %s | %d | %s | %s | %d |" % (
            s["system"], s["replication"], s["detection"], len(runs), spread([r["to_write"] for r in runs]),
            spread([r.get("to_write_fresh") for r in runs]) if any("to_write_fresh" in r for r in runs) else "-",
            kill_ratios(series, s), sum(r["lost"] for r in runs), spread([r["following"] for r in runs]),
            spread([r["stale_until"] for r in runs]), statistics.median(r["rate"] for r in runs)))
    return lines


def kill_ratios(series, this):
    """This series' medians over the baseline's with the same detection."""
    base = [s for s in series if s["system"] == "baseline" and s["detection"] == this["detection"]]
    if this["system"] == "baseline" or not base:
        return "-"
    ratios = []
    for key in ("to_write", "to_write_fresh"):
        mine, theirs = (median_of([r.get(key) for r in s["runs"]]) for s in (this, base[0]))
        ratios.append("%.2f ×" % (mine / theirs) if mine is not None and theirs else "-")
    return " / ".join(ratios)


def node_fault_table(results):
    series = results.get("node_faults") or []
    if not series:
        return []
    lines = ["", "| system | replication | fault of the primary's node | watchdog leader | cycles | "
                 "fault → first write, s (min / median / max) | per-connection writer, s | ratio to the baseline's "
                 "median | standbys follow, s after the first write | acked rows lost | two primaries after the "
                 "heal |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in series:
        runs = s["runs"]
        fresh = [r["to_write_fresh"] for r in runs]
        base = baseline_median(results, s)
        ratio = "-" if s["system"] == "baseline" or base is None or median_of(fresh) is None else \
            "%.2f ×" % (median_of(fresh) / base)
        lines.append("| %s | %s | %s | %s | %d | %s | %s | %s | %s | %d | %d of %d |" % (
            s["system"], s["replication"], s["fault"], "on it" if s["placement"] == "leader" else "elsewhere",
            len(runs), spread([r["to_write"] for r in runs]), spread(fresh), ratio,
            spread([r["following_after_write"] for r in runs]), sum(r["lost"] for r in runs),
            sum(1 for r in runs if r.get("primaries_after_heal", 1) > 1), len(runs)))
    return lines


def baseline_median(results, series):
    """The baseline's median per-connection fault → write for the same fault and placement."""
    for s in results.get("node_faults") or []:
        if s["system"] == "baseline" and (s["fault"], s["placement"]) == (series["fault"], series["placement"]):
            return median_of([r["to_write_fresh"] for r in s["runs"]])
    return None


def breakdown_table(results):
    """One kill -9 failover step by step, pgha (sync) beside the baseline (async)."""
    runs = results.get("breakdowns") or {}
    if not runs:
        return []
    systems = [s for s in ("pgha", "baseline") if s in runs]
    labels = []
    for system in systems:
        labels += [step["step"] for step in runs[system] if step["step"] not in labels]
    at = dict(((system, step["step"]), step) for system in systems for step in runs[system])

    def cell(system, label):
        step = at.get((system, label))
        if not step or step["seconds"] is None:
            return "-"
        return "%.3f%s" % (step["seconds"], " (%s)" % step["node"] if step["node"] else "")

    lines = ["", "| one kill -9 failover, seconds after the fault (node) | %s |" % " | ".join(
        "pgha (sync)" if s == "pgha" else "baseline (async)" for s in systems),
        "| --- |%s" % (" --- |" * len(systems))]
    lines += ["| %s | %s |" % (label, " | ".join(cell(s, label) for s in systems)) for label in labels]
    return lines


def other_tables(results):
    lines = node_fault_table(results) + breakdown_table(results)
    if results["switchover"]:
        runs = results["switchover"]
        lines += ["", "| switchover (pgha, sync) | cycles | write pause, s (min / median / max) | playbook, s | "
                      "acked rows lost |", "| --- | --- | --- | --- | --- |",
                  "| pgha.cluster.switchover | %d | %s | %s | %d |" % (
                      len(runs), spread([r["pause"] for r in runs]), spread([r["playbook"] for r in runs]),
                      sum(r["lost"] for r in runs))]
    if results["rebuild"]:
        lines += ["", "| rebuild of the old primary | database, MB | rebuild.yml by pg_rewind, s | "
                      "by pg_basebackup, s | data copy: pg_rewind, s | pg_basebackup, s | rewind / basebackup |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for size in sorted({r["size_mb"] for r in results["rebuild"]}):
            by = {r["method"]: r for r in results["rebuild"] if r["size_mb"] == size}
            rewind, base = by["pg_rewind"], by["pg_basebackup"]
            lines.append("| %d MB | %d | %.1f | %.1f | %s | %s | %s |" % (
                size, base["database_mb"], rewind["seconds"], base["seconds"], copy_of(rewind), copy_of(base),
                "-" if "copy_seconds" not in base else "%d %%" % round(100 * rewind_share(rewind, base))))
    keeper = results.get("keeper")
    if keeper:
        runs = keeper["runs"]
        lines += ["", "| keeper mode (2 nodes, sync) | cycles | keepalive budget, s | fault → first write, s "
                      "(min / median / max) | acked rows lost |", "| --- | --- | --- | --- | --- |",
                  "| kill -9 of the primary | %d | %d | %s | %d |" % (
                      len(runs), keeper["budget"], spread([r["to_write"] for r in runs]),
                      sum(r["lost"] for r in runs))]
    if results["operations"]:
        lines += ["", "| operation | seconds |", "| --- | --- |"]
        lines += ["| %s | %.1f |" % (name, value) for name, value in results["operations"].items()]
    return lines


def copy_of(run):
    return "%.2f" % run["copy_seconds"] if "copy_seconds" in run else "-"


def rewind_share(rewind, base):
    """pg_rewind's time as a share of pg_basebackup's: the data copy steps when measured
    (bench runs before 2026-11-25 timed only the whole playbook)."""
    if "copy_seconds" in rewind and "copy_seconds" in base:
        return rewind["copy_seconds"] / base["copy_seconds"]
    return rewind["seconds"] / base["seconds"]


def find_series(results, system, replication, detection):
    for s in results["failover"]:
        if (s["system"], s["replication"], s["detection"]) == (system, replication, detection):
            return s["runs"]
    return []


def fresh_goals(results, add):
    """The speed issue's kill -9 goals, for a client that opens a new connection per commit."""
    sync = [r.get("to_write_fresh") for r in find_series(results, "pgha", "sync", "backend error")]
    base = [r.get("to_write_fresh") for r in find_series(results, "baseline", "async", "backend error")]
    if not sync or None in sync:
        return
    median = median_of(sync)
    add("kill -9 (sync), per-connection writer: median ≤ 0.8 s", median, median <= 0.8)
    add("kill -9 (sync), per-connection writer: max ≤ 1.5 s", max(sync), max(sync) <= 1.5)
    if base and None not in base:
        ratio = median / median_of(base)
        add("kill -9 (sync), per-connection writer: median ≤ 1.0 × baseline's", ratio, ratio <= 1.0, unit="×")
    follow = [r["following"] - r["to_write_fresh"] for r in find_series(results, "pgha", "sync", "backend error")
              if r["following"] is not None]
    if follow:
        add("every standby streams ≤ 3 s after the first write (max)", max(follow), max(follow) <= 3)


# The speed issue's whole-node goals: (fault, placement, median limit, max limit or None).
NODE_GOALS = (("power-off", "leader", 5.0, 8.0), ("power-off", "not leader", 3.0, None),
              ("link cut", "leader", 8.0, 12.0), ("link cut", "not leader", 8.0, 12.0))


def node_goals(results, add):
    for system in ("pgha", "pgha + fence device"):
        series = [s for s in results.get("node_faults") or [] if s["system"] == system]
        for fault, placement, median_limit, max_limit in NODE_GOALS:
            runs = [r for s in series if (s["fault"], s["placement"]) == (fault, placement) for r in s["runs"]]
            if not runs:
                continue
            what = "%s, %s (%s)" % (system, fault, "leader on the node" if placement == "leader" else "leader elsewhere")
            values = [r["to_write_fresh"] for r in runs]
            median = median_of(values)
            add("%s: per-connection writer, median ≤ %.0f s" % (what, median_limit), median,
                median is not None and median <= median_limit)
            if max_limit:
                slowest = worst(values)
                add("%s: max ≤ %.0f s" % (what, max_limit), slowest, slowest is not None and slowest <= max_limit)
        after = [r["following_after_write"] for s in series for r in s["runs"]]
        if after:
            slowest = worst(after)
            add("%s, node faults: every standby streams ≤ 3 s after the first write (max)" % system, slowest,
                slowest is not None and slowest <= 3)


def goals(results):
    """(goal, measured, met) for each goal of the bench issue that this run measured."""
    found = []

    def add(goal, value, met, unit="s"):
        shown = "never" if value is None else ("%.2f %s" % (value, unit) if unit else value)
        found.append((goal, shown, bool(met)))

    for replication in ("async", "sync"):
        runs = find_series(results, "pgha", replication, "backend error")
        if runs:
            median = median_of([r["to_write"] for r in runs])
            add("kill -9 (%s): fault → write median ≤ 1.0 s" % replication, median, median is not None and median <= 1.0)
    pgha, base = (find_series(results, s, "async", "backend error") for s in ("pgha", "baseline"))
    if pgha and base:
        ratio_of = (median_of([r["to_write"] for r in pgha]), median_of([r["to_write"] for r in base]))
        if None not in ratio_of:
            add("fault → write median ≤ 1.5 × baseline's", ratio_of[0] / ratio_of[1],
                ratio_of[0] <= 1.5 * ratio_of[1], unit="×")
    fresh_goals(results, add)
    node_goals(results, add)
    sync_runs = find_series(results, "pgha", "sync", "backend error")
    if sync_runs:
        lost = sum(r["lost"] for r in sync_runs)
        add("0 acknowledged rows lost in sync mode", "%d" % lost, lost == 0, unit="")
    pgha_runs = [r for s in results["failover"] if s["system"] == "pgha" for r in s["runs"]]
    if pgha_runs:
        following = worst([r["following"] for r in pgha_runs])
        add("standbys follow the new primary ≤ 10 s (max)", following, following is not None and following <= 10)
        stale = worst([r["stale_until"] for r in pgha_runs])
        add("stale-read window ≤ 10 s (max)", stale, stale is not None and stale <= 10)
    if results["switchover"]:
        pause = max(r["pause"] for r in results["switchover"])
        add("switchover write pause ≤ 2 s (max)", pause, pause <= 2)
    big = [r for r in results["rebuild"] if r["size_mb"] >= 1000]
    if len(big) == 2:
        by = {r["method"]: r for r in big}
        share = 100 * rewind_share(by["pg_rewind"], by["pg_basebackup"])
        what = "data copy" if "copy_seconds" in by["pg_rewind"] else "rebuild.yml"
        add("pg_rewind ≤ 10 %% of pg_basebackup at 1 GB (%s)" % what, share, share <= 10, unit="%")
    keeper = results.get("keeper")
    if keeper:
        slowest = worst([r["to_write"] for r in keeper["runs"]])
        add("keeper mode: fault → write ≤ keepalive budget + 1 s (max)", slowest,
            slowest is not None and slowest <= keeper["budget"] + 1)
    limits = {"deploy (3 bare nodes)": 240, "idempotent rerun": 45, "status.yml": 5}
    for name, limit in limits.items():
        if name in results["operations"]:
            value = results["operations"][name]
            add("%s ≤ %d s" % (name, limit), value, value <= limit)
    return found


def markdown(results):
    settings = results.get("settings", {})
    lines = ["## Bench: pgha vs plain pgpool-II (baseline) on the lab", "",
             "Run %s, %.0f minutes. %s. %s. %d nodes; kill -9 of the primary's postmaster, power-off and "
             "link cut of its node under a writer through the virtual IP (one persistent session, and a new "
             "connection for every commit, 10 a second); each kill -9 failover watched for %s s (the baseline's, "
             "which never settles, 6 s)." % (
                 results["started"], results.get("bench_seconds", 0) / 60, settings.get("machine", "?"),
                 settings.get("versions", "?"), settings.get("nodes", 0), settings.get("observe_s", "?")),
             "Baseline: the same pgpool.conf with the sample promote-over-ssh `failover.sh` "
             "(bench/baseline/failover.sh) and no follow_primary_command; pgha: its hooks. "
             "Health check a/b/c/d = period / timeout / max retries / retry delay.", ""]
    lines += failover_table(results["failover"]) + other_tables(results)
    lines += ["", "| goal | measured | met |", "| --- | --- | --- |"]
    lines += ["| %s | %s | %s |" % (goal, value, "yes" if met else "**no**") for goal, value, met in goals(results)]
    lines += ["", "![failover chart](latest.png)"]
    return "\n".join(lines) + "\n"


def chart(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = results["failover"]
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.5))
    short = {"backend error": "backend err", "health check 1/1/1/1": "HC 1/1/1/1",
             "health check 5/30/3/1 (sample)": "HC 5/30/3/1"}
    labels = ["%s\n%s\n%s" % (s["system"], s["replication"], short.get(s["detection"], s["detection"]))
              for s in series]
    colors = ["tab:blue" if s["system"] == "pgha" else "tab:orange" for s in series]
    for axis, key, title in ((axes[0], "to_write", "kill -9 → first acknowledged write (s)"),
                             (axes[1], "stale_until", "stale reads through pgpool until (s after the fault)")):
        limit = results.get("settings", {}).get("observe_s", 15)
        for x, (s, color) in enumerate(zip(series, colors)):
            values = [r[key] for r in s["runs"]]
            shown = [v if isinstance(v, (int, float)) else limit for v in values]
            axis.scatter([x] * len(shown), shown, color=color, alpha=0.6, s=18)
            if any(not isinstance(v, (int, float)) for v in values):
                axis.annotate("never", (x, limit), ha="center", va="bottom", fontsize=8)
            numbers = [v for v in values if isinstance(v, (int, float))]
            if numbers:
                axis.hlines(statistics.median(numbers), x - 0.3, x + 0.3, color=color)
        axis.set_xticks(range(len(series)))
        axis.set_xticklabels(labels, fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
        axis.set_ylim(bottom=0)
    fig.suptitle("pgha (blue) vs plain pgpool-II baseline (orange), %s; HC = health-check detection only"
                 % results["started"], fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def update_readme(readme, table):
    text = readme.read_text()
    if README_START not in text:
        return
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    body = table.replace("](latest.png)", "](bench/results/latest.png)")
    readme.write_text("%s%s\n%s%s%s" % (head, README_START, body, README_END, tail))


def write_all(results, directory, readme):
    table = markdown(results)
    (directory / "latest.md").write_text(table)
    chart(results, directory / "latest.png")
    update_readme(readme, table)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    write_all(json.loads((here / "results" / "latest.json").read_text()), here / "results",
              here.parent / "README.md")
    sys.exit(0)
