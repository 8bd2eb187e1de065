"""The simulator's Prometheus against the real one: the same scraped series, the same six default queries,
the same answers (relative 1e-9; NaN as NaN, +Inf as +Inf, no series as no series).

A scripted run of three replicas (a throughout; b late, with a counter reset; c leaving early), scraped
with jitter of up to 0.75 s and a 20 s Prometheus outage (no scrapes, hence no markers), carries load
phases that put the p95 in different buckets, in the +Inf bucket and, while idle, to NaN. The series are
written as OpenMetrics with timestamps, backfilled with `promtool tsdb create-blocks-from openmetrics`
and queried through /api/v1/query at about 550 evaluation times, from before the first scrape to after the
5 min lookback of the last one has run out, including every time that puts a sample exactly on a
window's start.

What backfill cannot represent: staleness markers (OpenMetrics has no way to write one). The emulator
marks c stale at the first scrape without it, the backfilled Prometheus keeps returning c's last samples
to instant selectors for 5 min. The script makes both agree exactly anyway: c drains before it leaves
(its last queue depths are 0, so `sum(inference_queue_depth)` is the same with or without it) and the
live replicas' samples are newer than c's (so `max(timestamp(...))` is). Range selectors skip markers, so
rate() and avg_over_time() see c's last samples in both. The markers themselves are checked by the
hand-computed cases of test_sim_prometheus.py.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import requests

from autoscaler.collector import PrometheusSource
from autoscaler.config import Config
from autoscaler.prometheus import PrometheusClient
from sim.prometheus import PromEmulator
from sim.scrape import LE_BOUNDS_S, TargetSample, le_counts
from tests.prometheus_backfill import backfill, start_prometheus

pytestmark = pytest.mark.slow

CONFIG = Config()
QUERIES = {name: CONFIG.query("query_" + name)
           for name in ("rate_rps", "p95_s", "inflight", "queue", "cpu_cores", "age_s")}
SCRAPE_INTERVAL_S = 5
JITTER_S = (0.0, 0.25, 0.5, 0.75)  # quarter seconds: exact in binary, so exact in milliseconds too
RUN_S = 600
OUTAGE_S = (500.0, 520.0)          # Prometheus itself down: scrapes missing, no staleness markers
AFTER_RUN_S = 320                   # past the 300 s lookback of the last scrape


@dataclass(frozen=True)
class Replica:
    name: str
    start_s: float
    stop_s: float                    # missing from every scrape from here on
    restart_s: float | None = None   # its counters start again from 0 here


REPLICAS = (Replica("a", 0, RUN_S + 1), Replica("b", 102, RUN_S + 1, restart_s=332), Replica("c", 0, 400))
DRAIN_S = 15  # c's queue is empty this long before it leaves


def load(t_s: float) -> tuple[float, float, float]:
    """Requests per second, median latency and the share slower than the largest bucket, at `t_s`."""
    if 150 <= t_s < 200:
        return 8.0, 0.4, 0.0      # a burst: p95 in the 0.5-0.75 s buckets
    if 220 <= t_s < 280:
        return 0.0, 0.0, 0.0      # idle: no observations, p95 NaN
    if 300 <= t_s < 350:
        return 2.0, 0.7, 0.2      # overload: p95 in the +Inf bucket
    return 3.0, 0.06, 0.0


@dataclass
class Counters:
    """A replica's cumulative counters, as its /metrics would show them."""

    requests: float = 0.0
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(len(LE_BOUNDS_S)))
    latency_sum_s: float = 0.0
    cpu_s: float = 0.0

    def serve(self, rng: np.random.Generator, t_s: float, dt_s: float) -> None:
        rps, median_s, too_slow = load(t_s)
        n = int(rng.poisson(rps * dt_s))
        latencies = np.exp(rng.normal(math.log(median_s or 1.0), 0.35, n))
        latencies[rng.random(n) < too_slow] = 12.0
        self.requests += n
        self.buckets += le_counts(latencies)
        self.latency_sum_s += float(latencies.sum())
        self.cpu_s += dt_s * (0.05 + 0.1 * rps) * float(rng.uniform(0.8, 1.2))

    def sample(self, inflight: float, queue: float) -> TargetSample:
        return TargetSample(requests_total=self.requests, latency_bucket_counts=tuple(self.buckets.tolist()),
                            latency_sum_s=self.latency_sum_s, latency_count=float(self.buckets[-1]),
                            inflight=inflight, queue_depth=queue, cpu_seconds_total=self.cpu_s)


def scrape_times_s() -> list[float]:
    times = [SCRAPE_INTERVAL_S * k + JITTER_S[k % len(JITTER_S)] for k in range(RUN_S // SCRAPE_INTERVAL_S + 1)]
    return [t for t in times if not OUTAGE_S[0] < t < OUTAGE_S[1]]


def scripted_scrapes(t0_s: int, seed: int = 7) -> list[tuple[float, dict[str, TargetSample]]]:
    """Every scrape (absolute time, live targets' samples) of the scripted run starting at `t0_s`."""
    rng = np.random.default_rng(seed)
    counters = {r.name: Counters() for r in REPLICAS}
    last_s = {r.name: r.start_s for r in REPLICAS}
    scrapes = []
    for t in scrape_times_s():
        live = {}
        for r in (r for r in REPLICAS if r.start_s <= t < r.stop_s):
            if r.restart_s is not None and last_s[r.name] < r.restart_s <= t:
                counters[r.name] = Counters()
            counters[r.name].serve(rng, t, t - last_s[r.name])
            last_s[r.name] = t
            busy = load(t)[0] > 0
            queue = 0.0 if t >= r.stop_s - DRAIN_S else float(rng.integers(0, 6)) * busy
            live[r.name] = counters[r.name].sample(inflight=float(rng.integers(0, 4)) * busy, queue=queue)
        scrapes.append((t0_s + t, live))
    return scrapes


# --- the real Prometheus ------------------------------------------------------------------------------------
def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


# Every series of a target: name, labels after job and instance, value.
SERIES = (("inference_requests_total", "", lambda s: s.requests_total),
          ("inference_worker_cpu_seconds_total", "", lambda s: s.cpu_seconds_total),
          *((("inference_request_duration_seconds_bucket", f',le="{_le(b)}"',
              lambda s, i=i: s.latency_bucket_counts[i]) for i, b in enumerate(LE_BOUNDS_S))),
          ("inference_request_duration_seconds_sum", "", lambda s: s.latency_sum_s),
          ("inference_request_duration_seconds_count", "", lambda s: s.latency_count),
          ("inference_inflight_requests", "", lambda s: s.inflight),
          ("inference_queue_depth", "", lambda s: s.queue_depth),
          ("inference_workers", "", lambda s: s.workers))


def openmetrics(scrapes: list[tuple[float, dict[str, TargetSample]]]) -> str:
    """The scrapes as OpenMetrics text with timestamps (seconds), each series' samples together, in order."""
    lines = []
    for replica in REPLICAS:
        for name, labels, value in SERIES:
            selector = f'{name}{{job="{CONFIG.service_job}",instance="{replica.name}"{labels}}}'
            lines += [f"{selector} {value(live[replica.name])!r} {t:.3f}"
                      for t, live in scrapes if replica.name in live]
    return "\n".join(lines + ["# EOF"]) + "\n"


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    """(Prometheus URL, the scrapes it holds, run start), the server stopped by its PID afterwards."""
    directory = tmp_path_factory.mktemp("sim-prometheus")
    t0_s = int(time.time()) - RUN_S - AFTER_RUN_S - 300  # every evaluation time well in the past
    scrapes = scripted_scrapes(t0_s)
    prometheus = start_prometheus(backfill(openmetrics(scrapes), directory), directory)
    try:
        yield prometheus.extra["url"], scrapes, t0_s
    finally:
        prometheus.stop()


def real_value(session: requests.Session, url: str, promql: str, t_s: float) -> float | None:
    resp = session.get(f"{url}/api/v1/query", params={"query": promql, "time": f"{t_s:.3f}"}, timeout=30)
    doc = resp.json()
    assert resp.status_code == 200 and doc["status"] == "success", resp.text
    result = doc["data"]["result"]
    assert doc["data"]["resultType"] == "vector" and len(result) <= 1, resp.text
    return float(result[0]["value"][1]) if result else None


# --- the comparison -----------------------------------------------------------------------------------------
def evaluation_times_s(t0_s: int) -> list[float]:
    """A 2.5 s grid from before the first scrape to past the lookback, plus each scrape time and each
    time that puts a scrape exactly on the window's start."""
    grid = [-5 + 2.5 * i for i in range(int((RUN_S + AFTER_RUN_S + 5) / 2.5) + 1)]
    scrapes = scrape_times_s()
    return sorted({t0_s + t for t in grid + scrapes + [t + CONFIG.rate_window_s for t in scrapes]})


def emulated(scrapes, times_s):
    """(t, the emulator) at each evaluation time, having scraped what had been scraped by then."""
    prom = PromEmulator(SCRAPE_INTERVAL_S, CONFIG.rate_window_s, config=CONFIG)
    pending = list(scrapes)
    for t in times_s:
        while pending and pending[0][0] <= t:
            prom.scrape(*pending.pop(0))
        yield t, prom


def agree(real: float | None, emulated_value: float | None) -> bool:
    if real is None or emulated_value is None:
        return real is emulated_value
    if math.isnan(real) or math.isinf(real):
        return math.isnan(emulated_value) if math.isnan(real) else real == emulated_value
    return math.isclose(real, emulated_value, rel_tol=1e-9)


def test_default_queries_agree_with_real_prometheus(backfilled):
    url, scrapes, t0_s = backfilled
    session = requests.Session()
    disagreements, seen = [], []
    for t, prom in emulated(scrapes, evaluation_times_s(t0_s)):
        for name, promql in QUERIES.items():
            real, mine = real_value(session, url, promql, t), prom.value(promql, t)
            seen.append((name, real))
            if not agree(real, mine):
                disagreements.append(f"{name} at t0+{t - t0_s:g}s: prometheus {real!r}, emulator {mine!r}")
    assert not disagreements, f"{len(disagreements)} of {len(seen)} differ:\n" + "\n".join(disagreements[:30])
    # The script reaches the edges it is there for; otherwise the agreement above would prove little.
    p95 = [v for name, v in seen if name == "p95_s"]
    assert any(v is None for v in p95) and any(v is not None and math.isnan(v) for v in p95)
    assert LE_BOUNDS_S[-2] in p95, "no p95 in the +Inf bucket (the highest finite bound)"
    assert any(name == "queue" and v is None for name, v in seen), "the lookback never ran out"


def test_collected_metrics_agree_with_real_prometheus(backfilled):
    # The collector's own rules on both: PrometheusClient at a set clock, the emulator at the same time.
    url, scrapes, t0_s = backfilled
    now_s = [0.0]
    real_source = PrometheusSource(PrometheusClient(url, timeout_s=30, stale_after_s=CONFIG.stale_after_s,
                                                    clock=lambda: now_s[0]), CONFIG)
    disagreements = []
    for t, prom in emulated(scrapes, evaluation_times_s(t0_s)[::3]):
        now_s[0] = t
        real, mine = real_source.collect(), prom.collect(t)
        values = ("rate_rps", "p95_ms", "inflight", "queue_depth", "cpu_cores")
        if not (real.problem == mine.problem and real.errors == mine.errors
                and all(agree(getattr(real, v), getattr(mine, v)) for v in values)):
            disagreements.append(f"t0+{t - t0_s:g}s: prometheus {real}, emulator {mine}")
    assert not disagreements, "\n".join(disagreements[:20])
