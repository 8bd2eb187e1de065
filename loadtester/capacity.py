"""The capacity probe: how much one deployment of the service sustains, measured through its real HTTP API.

    python -m loadtester --find-capacity --url http://127.0.0.1:8000 --slo-ms 500

It measures, in well under a minute:
1. unloaded latency: one request at a time;
2. saturation throughput: closed loop, concurrency doubled until the rate of 200s stops growing;
3. the latency-versus-load curve: a few open-loop steps (Poisson arrivals, latency from the scheduled
   time, failures counted as infinitely slow) at fractions of the saturation rate;
4. the model time of a full batch: the `model` entry of Server-Timing at saturation, where batches fill.

The result is a `CapacityReport` (loadtester/capacity_report.py), which reads the curve and words it.

Nothing here assumes a machine's speed: every rate the probe offers is a multiple of one it measured.
"""

from __future__ import annotations

import asyncio
import math
import resource
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from loadtester.capacity_report import CapacityReport, Step
from loadtester.fd_limit import max_inflight_allowed
from loadtester.http_client import Client, Target, UnreachableError, failure_kind, probe
from loadtester.images import Photo
from loadtester.schedule import Schedule
from loadtester.sender import Replayer

# Open-loop steps, as fractions of the measured saturation rate: dense near the knee of the curve.
STEP_FRACTIONS = (0.3, 0.5, 0.65, 0.8, 0.9, 1.0)
# Closed loop: double the concurrency until the rate grows less than this, or 503s appear.
SATURATION_GAIN = 0.05
MAX_CONCURRENCY = 512


class ProbeError(RuntimeError):
    """The service answered, but not in a way that can be measured (e.g. no request succeeded)."""


@dataclass(frozen=True)
class ProbeSettings:
    """How long each part of the probe runs; the defaults keep the whole probe near 40 s."""

    unloaded_s: float = 2.0        # one request at a time
    closed_step_s: float = 2.5     # each concurrency of the saturation sweep
    open_step_s: float = 4.0       # each open-loop step
    step_fractions: tuple[float, ...] = STEP_FRACTIONS
    timeout_s: float = 30.0        # per request
    seed: int = 0


# --- measuring ---------------------------------------------------------------------------------------

def measure(target: Target, photos: list[Photo], settings: ProbeSettings = ProbeSettings(), replicas: int = 1,
            info: dict | None = None, say: Callable[[str], None] = lambda _: None) -> CapacityReport:
    """Run the whole probe against `target`. Raises UnreachableError or ProbeError."""
    probe(target, timeout_s=min(5.0, settings.timeout_s))
    started = time.monotonic()
    cpu_before = _own_cpu_s()
    info = info or {}

    say("unloaded latency (one request at a time)")
    unloaded = asyncio.run(_closed(target, photos, 1, settings.unloaded_s, settings.timeout_s))
    if not unloaded.ok_latencies_ms:
        raise ProbeError(f"no request to {target.url}{target.path} succeeded: {unloaded.describe_failures()}")

    say("saturation (closed loop, doubling the concurrency)")
    sweep, best, concurrency, flat = [], None, 1, 0
    while concurrency <= MAX_CONCURRENCY:
        sample = asyncio.run(_closed(target, photos, concurrency, settings.closed_step_s, settings.timeout_s))
        sweep.append((concurrency, round(sample.ok_rps, 2), sample.failed))
        say(f"  concurrency {concurrency}: {sample.ok_rps:.1f} req/s ok, {sample.failed} not ok")
        grew = best is None or sample.ok_rps > best[1].ok_rps * (1 + SATURATION_GAIN)
        if best is None or sample.ok_rps > best[1].ok_rps:
            best = (concurrency, sample)
        # Two doublings without gain: one flat step can be noise, or a batch that has not filled yet.
        flat = 0 if grew else flat + 1
        falling = sample.ok_rps < (1 - 2 * SATURATION_GAIN) * best[1].ok_rps
        if flat >= 2 or falling or sample.failed > 0.01 * max(sample.count, 1):
            break
        concurrency *= 2
    best_concurrency, saturated = best
    if saturated.ok_rps <= 0:
        raise ProbeError(f"no request succeeded under load: {saturated.describe_failures()}")

    steps = []
    for k, fraction in enumerate(settings.step_fractions):
        rate = fraction * saturated.ok_rps
        say(f"open loop at {fraction:.0%} of saturation ({rate:.1f} req/s)")
        steps.append(_open_step(target, photos, rate, settings.open_step_s, settings.timeout_s,
                                seed=settings.seed + k))
    elapsed = time.monotonic() - started
    model_ms = float(np.median(saturated.model_ms)) if saturated.model_ms else None
    return CapacityReport(
        url=f"{target.url}{target.path}", replicas=replicas, saturation_rps=round(saturated.ok_rps, 2),
        saturation_concurrency=best_concurrency, unloaded_p50_ms=round(_pct(unloaded.ok_latencies_ms, 50), 2),
        unloaded_p95_ms=round(_pct(unloaded.ok_latencies_ms, 95), 2),
        model_ms_at_saturation=None if model_ms is None else round(model_ms, 2),
        max_batch_size=info.get("max_batch_size"), steps=steps, sweep=sweep,
        load_generator_cpu=round((_own_cpu_s() - cpu_before) / elapsed, 3), duration_s=round(elapsed, 1),
        info=info)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.inf


@dataclass
class _ClosedSample:
    seconds: float
    ok_latencies_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.ok_latencies_ms) + self.failed

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def ok_rps(self) -> float:
        return len(self.ok_latencies_ms) / self.seconds

    def describe_failures(self) -> str:
        return ", ".join(f"{n} x {kind}" for kind, n in sorted(self.failures.items())) or "no answer at all"


async def _closed(target: Target, photos: list[Photo], concurrency: int, seconds: float,
                  timeout_s: float) -> _ClosedSample:
    """`concurrency` clients, each sending its next request when the previous one is answered."""
    loop = asyncio.get_running_loop()
    client = Client(target)
    requests = [client.prepare(p) for p in photos]
    sample = _ClosedSample(seconds)
    # A short warm-up fills the pipeline before counting, so the rate is the steady one.
    warm_until = loop.time() + min(0.5, seconds / 4)
    end = warm_until + seconds

    async def one_client(k: int) -> None:
        i = k
        while loop.time() < end:
            sent = loop.time()
            try:
                async with asyncio.timeout(timeout_s):
                    reply = await client.post(requests[i % len(requests)])
                status, done = reply.status, reply.done_at
                kind = "ok" if 200 <= status < 300 else f"HTTP {status}"
            except Exception as exc:  # noqa: BLE001 - counted by kind, like the open-loop sender does
                done, kind, reply = loop.time(), failure_kind(exc), None
                if kind != "timeout":
                    await asyncio.sleep(0.05)  # a refused or broken connection must not spin
            i += concurrency
            if sent < warm_until or done > end:
                continue
            if kind == "ok":
                sample.ok_latencies_ms.append((done - sent) * 1000.0)
                if reply.server_timings_ms and "model" in reply.server_timings_ms:
                    sample.model_ms.append(reply.server_timings_ms["model"])
            else:
                sample.failures[kind] = sample.failures.get(kind, 0) + 1

    try:
        await asyncio.gather(*(one_client(k) for k in range(concurrency)))
    finally:
        await client.close()
    return sample


def _open_step(target: Target, photos: list[Photo], rate_rps: float, seconds: float, timeout_s: float,
               seed: int) -> Step:
    # Poisson arrivals conditioned on their count (uniform order statistics): random gaps as in real
    # traffic, but exactly the rate asked for, so a short step's rate is not off by its count's noise.
    count = max(1, round(rate_rps * seconds))
    offsets = np.sort(np.random.default_rng(seed).uniform(0.0, seconds, count))
    schedule = Schedule(offsets_s=offsets, trace_second=offsets.astype(np.int32), duration_s=float(seconds))
    replayer = Replayer(target, schedule, photos, timeout_s=timeout_s, max_inflight=min(4096, max_inflight_allowed()))
    asyncio.run(replayer.run())
    table = replayer.result_table()
    ok = table.kind == "ok"
    latencies = np.where(ok, table.latency_ms, np.inf)
    n = len(table)
    if n == 0:
        return Step(rate_rps, 0.0, 0, 0, math.inf, math.inf, math.inf, math.inf)
    ok_latencies = table.latency_ms[ok]
    # The rate actually offered (Poisson counts vary around the nominal one), so ok <= offered.
    return Step(offered_rps=round(n / schedule.duration_s, 2), ok_rps=round(int(ok.sum()) / schedule.duration_s, 2),
                requests=n,
                failed=int(n - ok.sum()), p50_ms=_rank(latencies, 50), p95_ms=_rank(latencies, 95), p99_ms=_rank(latencies, 99),
                mean_ms=round(float(ok_latencies.mean()), 2) if len(ok_latencies) else math.inf)


def _rank(values: np.ndarray, q: float) -> float:
    # A percentile by rank: interpolating towards an infinite (failed) value would give inf or NaN.
    return round(float(np.percentile(values, q, method="higher")), 2)


def read_info(target: Target, timeout_s: float = 5.0) -> dict:
    """The service's /info (batch size, threads, weights), or {} for a server that has none."""
    import requests

    base = target.url.rstrip("/")
    try:
        response = requests.get(f"{base}/info", timeout=timeout_s)
        return response.json() if response.status_code == 200 else {}
    except (requests.RequestException, ValueError):
        return {}


__all__ = ["ProbeError", "ProbeSettings", "UnreachableError", "measure", "read_info"]
