"""Benchmark: how many requests per second one load-tester process sends on schedule, and at what CPU cost.

Replays constant-rate traces of increasing rate against the stub server (loadtester/stub_server.py,
a separate process answering after a fixed delay), once with `Connection: close` (what the
inference service does) and once with keep-alive. A rate counts as sustained when every request
succeeded, the sent rate is within 2% of the target, and the sender's lag behind the schedule stays
small (median under 5 ms, p99 under 50 ms): a sender that cannot keep up builds a backlog, and its
lag grows to hundreds of milliseconds and more. (The p99 bound leaves room for the scheduling
jitter of a shared 2-core machine, which is not the sender's doing; the load average is recorded.)
Requirement: at least 300 requests/s with the load tester's own client.

The highest sustained rate is the highest sustained in every round (the machine drifts 10-20% from
minute to minute on a shared machine); the CPU per request at a rate is the median over the rounds.

    python -m bench.bench_loadtester [--seconds 4] [--rates 300,1000,2000,3000] [--delay-ms 20] [--rounds 2]

Results go to the console and to bench/results/loadtester.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from loadtester.config import BUNDLED_IMAGES
from loadtester.http_client import Client, resolve_target
from loadtester.images import load_images
from loadtester.schedule import build_schedule
from loadtester.sender import Replayer
from loadtester.stats import summarize
from processes.children import REPO
from processes.net import free_port

REQUIRED_RPS = 300.0
MAX_LAG_P50_MS = 5.0
MAX_LAG_P99_MS = 50.0
# The load tester's client first: the requirement is its; the baseline is what it is compared with.
CLIENTS = {"aiohttp": Client}
MODES = (("connection-close", False), ("keep-alive", True))


def _start_stub(delay_ms: float, keep_alive: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [sys.executable, "-m", "loadtester.stub_server", "--port", str(port), "--delay-ms", str(delay_ms)]
    if keep_alive:
        argv.append("--keep-alive")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.stdout.readline()  # the "listening" line: the socket is bound
    return proc, f"http://127.0.0.1:{port}"


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(url: str, rate_rps: float, seconds: float, photos, server_pid: int, client_factory=Client) -> dict:
    """One constant-rate replay through `client_factory`'s client: sent rate, lag, latency, CPU."""
    schedule = build_schedule([rate_rps] * max(1, int(seconds)), arrivals="uniform")
    replayer = Replayer(resolve_target(url, "/predict"), schedule, photos, timeout_s=10.0, max_inflight=10_000,
                        client_factory=client_factory)
    cpu0, wall0, server0 = time.process_time(), time.monotonic(), _cpu_s(server_pid)
    asyncio.run(replayer.run())
    cpu_s, wall_s, server_cpu_s = time.process_time() - cpu0, time.monotonic() - wall0, _cpu_s(server_pid) - server0
    table = replayer.result_table()
    summary = summarize(table, slo_ms=1000.0, duration_s=schedule.duration_s)
    sent = np.isfinite(table.sent_s)
    first, last = table.sent_s[sent].min(), table.sent_s[sent].max()
    # Rate at which requests actually left, over the span they left in (n-1 gaps).
    sent_rps = (sent.sum() - 1) / (last - first) if last > first else 0.0
    target_rps = (len(schedule) - 1) / (schedule.offsets_s[-1] - schedule.offsets_s[0])
    lag = summary["sender_lag_ms"]
    ok = summary["requests"]["ok"] == len(schedule)
    result = {
        "target_rps": round(target_rps, 1),
        "sent_rps": round(float(sent_rps), 1),
        "ok": summary["requests"]["ok"],
        "requests": len(schedule),
        "errors": {k: v for k, v in summary["requests"]["errors"].items() if v},
        "lag_p50_ms": lag["p50"],
        "lag_p99_ms": lag["p99"],
        "lag_max_ms": lag["max"],
        "latency_p50_ms": summary["latency_ms"]["p50"],
        "latency_p99_ms": summary["latency_ms"]["p99"],
        "client_cpu_share": round(cpu_s / wall_s, 3),
        "client_cpu_us_per_request": round(1e6 * cpu_s / len(schedule), 1),
        "server_cpu_share": round(server_cpu_s / wall_s, 3),
    }
    result["sustained"] = bool(ok and abs(sent_rps - target_rps) <= 0.02 * target_rps
                               and lag["p99"] is not None and lag["p50"] < MAX_LAG_P50_MS
                               and lag["p99"] < MAX_LAG_P99_MS)
    return result


def _print_step(mode: str, name: str, r: dict) -> None:
    lag50 = "-" if r["lag_p50_ms"] is None else f"{r['lag_p50_ms']:.1f}m"
    lag99 = "-" if r["lag_p99_ms"] is None else f"{r['lag_p99_ms']:.1f}m"
    print(f"{mode:<17}{name:<8}{r['target_rps']:>8.0f}{r['sent_rps']:>8.1f}{r['ok']:>7}{lag50:>9}{lag99:>9}"
          f"{100 * r['client_cpu_share']:>5.0f}%{r['client_cpu_us_per_request']:>8.0f}"
          f"{100 * r['server_cpu_share']:>7.0f}%  {'yes' if r['sustained'] else 'NO'}", flush=True)


def run_mode(mode: str, keep_alive: bool, names: list[str], rates: list[float], rounds: int, seconds: float,
             delay_ms: float, photos) -> dict[str, list[list[dict]]]:
    """Every client at every rate, alternating, `rounds` times: {client: [steps of round 0, of round 1, ...]}.

    Within a round a client stops at its first rate not sustained (the higher ones would only build backlog).
    """
    steps = {name: [[] for _ in range(rounds)] for name in names}
    proc, url = _start_stub(delay_ms, keep_alive)
    try:
        for r in range(rounds):
            active = list(names)
            for k, rate in enumerate(rates):
                for name in (active if (r + k) % 2 == 0 else active[::-1]):
                    step = measure(url, rate, seconds, photos, proc.pid, CLIENTS[name])
                    step["rate_rps"], step["round"] = rate, r
                    steps[name][r].append(step)
                    _print_step(mode, name, step)
                active = [n for n in active if steps[n][r][-1]["sustained"]]
                if not active:
                    break
    finally:
        proc.terminate()
        proc.wait(10)
    return steps


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


def summarize_client(rounds_steps: list[list[dict]], rates: list[float]) -> dict:
    """Highest rate sustained in every round; median CPU per request (and share of a core) per rate."""
    by_rate = {rate: [s for steps in rounds_steps for s in steps if s["rate_rps"] == rate] for rate in rates}
    every_round = [rate for rate, done in by_rate.items()
                   if len(done) == len(rounds_steps) and all(s["sustained"] for s in done)]
    at_required = by_rate.get(REQUIRED_RPS, [])
    return {
        "rounds": rounds_steps,
        "max_sustained_rps": max(every_round, default=0.0),
        "cpu_us_per_request": {f"{rate:g}": _median([s["client_cpu_us_per_request"] for s in done])
                               for rate, done in by_rate.items() if done},
        "cpu_share_at_required_rps": _median([s["client_cpu_share"] for s in at_required]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each constant-rate step, s (default 4)")
    parser.add_argument("--rates", default="300,1000,2000,3000",
                        help="comma-separated request rates to try, req/s (default 300,1000,2000,3000)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="stub server answer delay, ms (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="times each client is measured at each rate (default 2)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "loadtester.json")
    args = parser.parse_args(argv)
    names = list(CLIENTS)
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds must be >= 1 and --seconds >= 1")
    rates = sorted(float(r) for r in args.rates.split(","))
    photos = load_images(BUNDLED_IMAGES)
    report = {"required_rps": REQUIRED_RPS, "seconds_per_step": args.seconds, "server_delay_ms": args.delay_ms,
              "rounds": args.rounds, "clients": names,
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
              "cpu_count": os.cpu_count(), "modes": {}}
    print(f"load average {report['load_average_at_start']} on {report['cpu_count']} CPUs; {args.rounds} round(s)")
    print(f"{'mode':<17}{'client':<8}{'target':>8}{'sent':>8}{'ok':>7}{'lag p50':>9}{'lag p99':>9}{'cpu':>6}"
          f"{'us/req':>8}{'srv cpu':>8}  sustained")
    for mode, keep_alive in MODES:
        steps = run_mode(mode, keep_alive, names, rates, args.rounds, args.seconds, args.delay_ms, photos)
        entry = {"clients": {name: summarize_client(steps[name], rates) for name in names}}
        report["modes"][mode] = entry
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print()
    for mode, entry in report["modes"].items():
        for name, c in entry["clients"].items():
            share = c["cpu_share_at_required_rps"]
            print(f"{mode:<17}{name:<8} max sustained {c['max_sustained_rps']:.0f} req/s (every round); CPU/request "
                  + ", ".join(f"{v:.0f} us at {k}" for k, v in c["cpu_us_per_request"].items())
                  + ("" if share is None else f"; {100 * share:.0f}% of a core at {REQUIRED_RPS:.0f} req/s"))
    mine = "aiohttp"
    worst = min(entry["clients"][mine]["max_sustained_rps"] for entry in report["modes"].values())
    verdict = "PASS" if worst >= REQUIRED_RPS else "FAIL"
    print(f"{mine}: at least {worst:.0f} req/s sustained in both modes (required {REQUIRED_RPS:.0f}) -> {verdict}")
    print(f"results: {args.out}")
    return 0 if worst >= REQUIRED_RPS else 1


if __name__ == "__main__":
    sys.exit(main())
