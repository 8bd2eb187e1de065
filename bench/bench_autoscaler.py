"""Benchmark: what the autoscaler's decisions cost. Requirement: the loop uses < 1% of a core at the default poll.

- policy cost per call: `decide()` for each policy with full windows (1 s samples over a 60 s stable
  window, 120 s of recommendations), wall and CPU time per call;
- loop cost per decision: one whole iteration (6 PromQL queries over HTTP with `requests`, parsing,
  the policy, the JSON log line, the own metrics), CPU time of this process only: the Prometheus it
  queries is a separate process answering canned results instantly, so its work is not counted;
- the same as a share of one core at the default poll (`POLL_INTERVAL_S`).

    python -m bench.bench_autoscaler [--decisions 300] [--calls 20000]

Results go to the console and to bench/results/autoscaler.json.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

from autoscaler.collector import PrometheusSource
from autoscaler.config import Config
from autoscaler.loop import Loop
from autoscaler.policy_names import POLICY_NAMES
from autoscaler.policy import Metrics, Observation, State, decide
from autoscaler.scalers import DryRunScaler, ScalerStatus
from processes.children import REPO
from processes.net import free_port

POLL_S = Config().poll_interval_s   # the default POLL_INTERVAL_S
BUDGET_PCT_OF_CORE = 1.0

# A Prometheus stand-in: every /api/v1/query gets one fresh sample, as fast as Python can answer.
CANNED_SERVER = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "success", "data": {"resultType": "vector",
                           "result": [{"metric": {}, "value": [time.time(), "0.25"]}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("listening", flush=True)
s.serve_forever()
"""


def _warm_state(config: Config, now_s: float) -> State:
    """A state as full as a long-running autoscaler's: every window populated."""
    state = State(started_s=0.0)
    t = now_s - 300.0
    while t < now_s:
        obs = Observation(ScalerStatus(4, 4, 4), Metrics(rate_rps=20.0 + (t % 7), p95_ms=200.0, inflight=3.0,
                                                         cpu_cores=2.0))
        state = decide(obs, state, config, t).state
        t += 1.0
    return state


def _history_entries(state: State) -> int:
    """Entries in the policy's windows and event lists (the tuples of its own state): what a call scans."""
    return sum(len(value) for value in vars(state.policy).values() if isinstance(value, tuple))


def bench_policy(policy: str, calls: int) -> dict:
    config = Config(scaler="dry-run", policy=policy, poll_interval_s=1, stall_after_s=60).validate()
    now = 10_000.0
    state = _warm_state(config, now)
    obs = Observation(ScalerStatus(4, 4, 4), Metrics(rate_rps=25.0, p95_ms=220.0, inflight=3.2, cpu_cores=2.1))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(calls):
        # Same state each call: the cost of one decision with full windows, not of growing history.
        decide(obs, state, config, now + i * 1e-6)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"policy": policy, "calls": calls, "wall_us_per_call": wall / calls * 1e6,
            "cpu_us_per_call": cpu / calls * 1e6,
            "history_entries": _history_entries(state)}


def bench_loop(decisions: int) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", CANNED_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        config = Config(scaler="dry-run", prometheus_url=f"http://127.0.0.1:{port}", stale_after_s=3600).validate()
        loop = Loop(config, PrometheusSource.from_config(config), DryRunScaler(2), out=io.StringIO())
        for _ in range(20):  # connections, imports, first allocations
            loop.step()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(decisions):
            loop.step()
            loop.out.seek(0)
            loop.out.truncate()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        server.terminate()
        server.wait(10)
    cpu_ms = cpu / decisions * 1000
    return {"decisions": decisions, "queries_per_decision": 6, "wall_ms_per_decision": wall / decisions * 1000,
            "cpu_ms_per_decision": cpu_ms, "pct_of_core_at_default_poll": cpu_ms / 1000 / POLL_S * 100}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=300, help="loop iterations to time")
    parser.add_argument("--calls", type=int, default=20000, help="policy calls to time, per policy")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "autoscaler.json")
    args = parser.parse_args(argv)

    policies = [bench_policy(p, args.calls) for p in POLICY_NAMES]
    loop = bench_loop(args.decisions)

    print("autoscaler: policy cost per call (full windows)")
    print(f"  {'policy':<8} {'wall us/call':>13} {'cpu us/call':>12} {'history entries':>16}")
    for p in policies:
        print(f"  {p['policy']:<8} {p['wall_us_per_call']:>13.1f} {p['cpu_us_per_call']:>12.1f} "
              f"{p['history_entries']:>16}")
    print("autoscaler: loop cost per decision (6 PromQL queries over HTTP, policy, log, metrics)")
    print(f"  {'wall ms':>8} {'cpu ms':>8} {f'% of a core at a {POLL_S:g} s poll':>24} {'target':>8}")
    ok = loop["pct_of_core_at_default_poll"] < BUDGET_PCT_OF_CORE
    print(f"  {loop['wall_ms_per_decision']:>8.2f} {loop['cpu_ms_per_decision']:>8.2f} "
          f"{loop['pct_of_core_at_default_poll']:>23.3f}% {'< 1%':>8}  {'OK' if ok else 'OVER BUDGET'}")
    slo = policies[0]
    print(f"  policy share of the loop's CPU: {slo['cpu_us_per_call'] / 1000 / loop['cpu_ms_per_decision'] * 100:.1f}%")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"policies": policies, "loop": loop, "budget_pct_of_core": BUDGET_PCT_OF_CORE, "within_budget": ok}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
