"""Run many seeded schedules, shrink a failing one to a short schedule, print its timeline.

    python tests/simulation/runner.py --schedules 100000 [--workers 2] [--seed-base N] [--mode keeper]
(bin/test simulate --schedules N runs this.)
"""
import argparse
import multiprocessing
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import collection_path  # noqa: E402  (the path above first)

collection_path.install()
import keeper_sim  # noqa: E402
import sim  # noqa: E402

# pgpool mode (3, 5 or 2 nodes behind pgpool) and keeper mode (2 nodes and the arbiter)
MODELS = {"pgpool": sim, "keeper": keeper_sim}


def outcome(seed, events=None, policy=None, model=sim, **options):
    """None when every invariant held, else the violation's message."""
    try:
        model.run(seed, events=events, policy=policy, **options)
    except sim.Violation as exc:
        return str(exc)
    return None


def kind(message):
    return message.split(":")[0] if message else None


def shrink(seed, events, policy=None, model=sim, **options):
    """The shortest schedule found (removing one event at a time) that breaks the same invariant."""
    want = kind(outcome(seed, events, policy, model, **options))
    changed = True
    while changed:
        changed = False
        for i in range(len(events)):
            trial = events[:i] + events[i + 1:]
            if kind(outcome(seed, trial, policy, model, **options)) == want:
                events, changed = trial, True
                break
    return events


def report(seed, events, policy=None, model=sim, **options):
    """A failing schedule as the operator would read it: events, decisions, the final state."""
    try:
        world = model.run(seed, events=events, policy=policy, **options)
        return "seed %d: no violation\n" % seed + "\n".join(world.timeline)
    except sim.Violation as exc:
        return ("seed %d (%s): %s\n%s\nfinal state:\n%s" % (
            seed, ", ".join("%s=%s" % (k, getattr(exc.world, k)) for k in ("sync", "strict", "power_fence") if hasattr(exc.world, k)),
            exc, "\n".join(exc.world.timeline), exc.world.state()))


def _one(job):
    mode, seed = job
    return seed, outcome(seed, model=MODELS[mode])


def run_many(count, workers=2, seed_base=0, mode="pgpool"):
    """(seeds run, failures [(seed, message)], seconds)."""
    started = time.time()
    jobs = [(mode, seed) for seed in range(seed_base, seed_base + count)]
    if workers > 1:
        with multiprocessing.Pool(workers) as pool:
            results = pool.map(_one, jobs, chunksize=200)
    else:
        results = [_one(j) for j in jobs]
    return count, [(s, m) for s, m in results if m], time.time() - started


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed-base", type=int, default=0)
    parser.add_argument("--mode", choices=sorted(MODELS), default="pgpool")
    args = parser.parse_args(argv)
    model = MODELS[args.mode]
    count, failures, seconds = run_many(args.schedules, args.workers, args.seed_base, args.mode)
    print("%d schedules in %.1f s (%.0f per second), %d broke an invariant" % (
        count, seconds, count / seconds, len(failures)))
    for seed, message in failures[:5]:
        rng_events = model.run_schedule(seed)
        print(report(seed, shrink(seed, rng_events, model=model), model=model))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
