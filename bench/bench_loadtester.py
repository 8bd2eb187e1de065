"""Benchmark: how many requests per second one load-tester process sends on schedule, at what CPU cost.

Replays constant-rate traces of increasing rate against the stub server (loadtester/stub_server.py,
a separate process answering after a fixed delay), once with `Connection: close` (what the
inference service does) and once with keep-alive. A rate counts as sustained when every request
succeeded, the sent rate is within 2% of the target, and the sender's lag behind the schedule stays
small (median under 5 ms, p99 under 50 ms): a sender that cannot keep up builds a backlog, and its
lag grows to hundreds of milliseconds and more. (The p99 bound leaves room for the scheduling
jitter of a shared 2-core machine, which is not the sender's doing; the load average is recorded.)
Requirement: at least 300 requests/s.

    python -m bench.bench_loadtester [--seconds 4] [--rates 300,1000,2000,3000] [--delay-ms 20]

Results go to the console and to bench/results/loadtester.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtester.http_client import resolve_target  # noqa: E402
from loadtester.images import load_images  # noqa: E402
from loadtester.config import BUNDLED_IMAGES  # noqa: E402
from loadtester.schedule import build_schedule  # noqa: E402
from loadtester.sender import Replayer  # noqa: E402
from loadtester.stats import summarize  # noqa: E402

REQUIRED_RPS = 300.0
MAX_LAG_P50_MS = 5.0
MAX_LAG_P99_MS = 50.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_stub(delay_ms: float, keep_alive: bool) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    argv = [sys.executable, "-m", "loadtester.stub_server", "--port", str(port), "--delay-ms", str(delay_ms)]
    if keep_alive:
        argv.append("--keep-alive")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.stdout.readline()  # the "listening" line: the socket is bound
    return proc, f"http://127.0.0.1:{port}"


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def measure(url: str, rate_rps: float, seconds: float, photos, server_pid: int) -> dict:
    schedule = build_schedule([rate_rps] * int(seconds), arrivals="uniform")
    replayer = Replayer(resolve_target(url, "/predict"), schedule, photos, timeout_s=10.0, max_inflight=10_000)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each constant-rate step, s (default 4)")
    parser.add_argument("--rates", default="300,1000,2000,3000",
                        help="comma-separated request rates to try, req/s (default 300,1000,2000,3000)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="stub server answer delay, ms (default 20)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "loadtester.json")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    photos = load_images(BUNDLED_IMAGES)
    report = {"required_rps": REQUIRED_RPS, "seconds_per_step": args.seconds, "server_delay_ms": args.delay_ms,
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
              "cpu_count": os.cpu_count(), "modes": {}}
    print(f"load average {report['load_average_at_start']} on {report['cpu_count']} CPUs")
    print(f"{'mode':<17}{'target':>8}{'sent':>8}{'ok':>7}{'lag p50':>9}{'lag p99':>9}{'cpu':>6}{'us/req':>8}"
          f"{'srv cpu':>8}  sustained")
    for mode, keep_alive in (("connection-close", False), ("keep-alive", True)):
        proc, url = _start_stub(args.delay_ms, keep_alive)
        try:
            steps = []
            for rate in rates:
                r = measure(url, rate, args.seconds, photos, proc.pid)
                steps.append(r)
                print(f"{mode:<17}{r['target_rps']:>8.0f}{r['sent_rps']:>8.1f}{r['ok']:>7}{r['lag_p50_ms']:>8.1f}m"
                      f"{r['lag_p99_ms']:>8.1f}m"
                      f"{100 * r['client_cpu_share']:>5.0f}%{r['client_cpu_us_per_request']:>8.0f}"
                      f"{100 * r['server_cpu_share']:>7.0f}%  {'yes' if r['sustained'] else 'NO'}", flush=True)
                if not r["sustained"]:
                    break
        finally:
            proc.terminate()
            proc.wait(10)
        best = max((s["target_rps"] for s in steps if s["sustained"]), default=0.0)
        report["modes"][mode] = {"steps": steps, "max_sustained_rps": best,
                                 "ratio_to_required": round(best / REQUIRED_RPS, 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    worst = min(m["max_sustained_rps"] for m in report["modes"].values())
    verdict = "PASS" if worst >= REQUIRED_RPS else "FAIL"
    print(f"max sustained: " + ", ".join(f"{k} {v['max_sustained_rps']:.0f} req/s ({v['ratio_to_required']}x the "
                                          f"required {REQUIRED_RPS:.0f})" for k, v in report["modes"].items())
          + f"  -> {verdict}")
    print(f"results: {args.out}")
    return 0 if worst >= REQUIRED_RPS else 1


if __name__ == "__main__":
    sys.exit(main())
