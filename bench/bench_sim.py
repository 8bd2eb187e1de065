"""Benchmark: what a simulated run costs. Requirement: a one-hour trace at 1000 req/s (3.6 M requests) with
up to 100 replicas in under 60 s on one core.

- cost against requests and replicas: one hour of Poisson arrivals at requests / 3600 req/s over N static
  replicas (POLICY=static, so the autoscaler still polls and Prometheus is still scraped), for each size;
  wall time, requests per second of wall time, and how the time grows from the smallest case;
- the headline: the Twitter trace (sim/traces/twitter-1h.txt, else wl.txt repeated to an hour)
  scaled to 3.6 M requests, the slo policy between 1 and 100 replicas.

    python -m bench.bench_sim [--requests 360000,1800000,3600000] [--replicas 10,100] [--no-headline]

Results go to the console and to bench/results/sim.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from autoscaler.config import load_config
from loadtester.schedule import build_schedule
from loadtester.workload import load_workload
from sim.profile import default_profile
from sim.run import RunSettings, run_policy
from processes.children import REPO

HOUR_S = 3600
BUDGET_S = 60.0
TWITTER = REPO / "sim" / "traces" / "twitter-1h.txt"


def settings(max_replicas: int) -> RunSettings:
    profile = default_profile()
    config = replace(load_config([], {}), slo_p95_ms=profile.slo_ms, max_replicas=max_replicas,
                     capacity_rps_per_replica=profile.capacity_within_slo_rps,
                     target_inflight_per_replica=profile.target_inflight_per_replica).validate()
    return RunSettings(profile=profile, config=config)


def measure(requests: int, replicas: int, policy: str | None = None, rates=None) -> dict:
    """Wall time of one simulated run (the schedule is built before the clock starts)."""
    if rates is None:
        rates = np.full(HOUR_S, requests / HOUR_S)
    else:
        rates = np.asarray(rates, dtype=float) * requests / float(np.sum(rates))
    schedule = build_schedule(rates, seed=0)
    policy = policy or f"static-{replicas}"
    started = time.perf_counter()
    cpu_started = time.process_time()
    result = run_policy(policy, schedule, settings(replicas))
    wall_s = time.perf_counter() - started
    return {"policy": policy, "requests": len(schedule), "replicas": replicas, "wall_s": round(wall_s, 2),
            "cpu_s": round(time.process_time() - cpu_started, 2), "requests_per_s": round(len(schedule) / wall_s),
            "us_per_request": round(wall_s / len(schedule) * 1e6, 3), "failed": result.row["failed"],
            "replica_seconds": result.row["replica_seconds"]}


def headline_rates() -> tuple[list[float], str]:
    if TWITTER.is_file():
        return list(load_workload(TWITTER).rates_rps), str(TWITTER)
    rates = list(load_workload(REPO / "wl.txt").rates_rps)
    return (rates * (HOUR_S // len(rates) + 1))[:HOUR_S], "wl.txt repeated to an hour"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", default="360000,1800000,3600000")
    parser.add_argument("--replicas", default="10,100")
    parser.add_argument("--no-headline", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(v) for v in args.requests.split(",")]
    counts = [int(v) for v in args.replicas.split(",")]
    rows = []
    print("requests | replicas | wall s | cpu s | req/s of wall | us/request | x smallest", flush=True)
    for n in sizes:
        for r in counts:
            row = measure(n, r)
            rows.append(row)
            base = rows[0]["wall_s"]
            print(f"{row['requests']:8d} | {r:8d} | {row['wall_s']:6.2f} | {row['cpu_s']:5.2f} | "
                  f"{row['requests_per_s']:13d} | {row['us_per_request']:10.3f} | {row['wall_s'] / base:.2f}",
                  flush=True)
    growth = {}
    if len(sizes) > 1:
        for r in counts:
            mine = [row for row in rows if row["replicas"] == r]
            growth[f"requests x{sizes[-1] / sizes[0]:g} at {r} replicas"] = round(
                mine[-1]["wall_s"] / mine[0]["wall_s"], 2)
    if len(counts) > 1:
        for n in sizes:
            mine = [row for row in rows if row["requests"] and abs(row["requests"] - n) < 0.01 * n]
            growth[f"replicas x{counts[-1] / counts[0]:g} at {n} requests"] = round(
                mine[-1]["wall_s"] / mine[0]["wall_s"], 2)
    for what, factor in growth.items():
        print(f"  time grows x{factor} for {what}")
    out = {"cases": rows, "growth": growth, "budget_s": BUDGET_S}
    if not args.no_headline:
        rates, source = headline_rates()
        row = measure(3_600_000, 100, policy="slo", rates=rates)
        row["trace"] = source
        ok = row["wall_s"] < BUDGET_S
        print(f"headline: {source} at {row['requests']} requests, slo policy, 1..100 replicas: {row['wall_s']:.1f} s "
              f"({row['requests_per_s']} req/s) - {'PASS' if ok else 'MISS'} (< {BUDGET_S:g} s)", flush=True)
        out["headline"] = dict(row, passed=ok)
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "sim.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"results: {results / 'sim.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
