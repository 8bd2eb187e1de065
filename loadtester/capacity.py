"""The capacity probe: how much one deployment of the service sustains, measured through its real HTTP API.

    python -m loadtester --find-capacity --url http://127.0.0.1:8000 --slo-ms 500

It measures, in well under a minute:
1. unloaded latency: one request at a time;
2. saturation throughput: closed loop, concurrency doubled until the rate of 200s stops growing;
3. the latency-versus-load curve: a few open-loop steps (Poisson arrivals, latency from the scheduled
   time, failures counted as infinitely slow) at fractions of the saturation rate;
4. the model time of a full batch: the `model` entry of Server-Timing at saturation, where batches fill.

`within_slo_rps(slo_ms)` reads the curve: the highest rate whose p95 stays within the SLO (linear between
the last step that met it and the first that did not). `recommendations()` turns the result into the
autoscaler's CAPACITY_RPS_PER_REPLICA and TARGET_INFLIGHT_PER_REPLICA (Little's law at that rate).

Nothing here assumes a machine's speed: every rate the probe offers is a multiple of one it measured.
"""

from __future__ import annotations

import asyncio
import math
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from loadtester.http_client import Client, Target, UnreachableError, failure_kind, probe
from loadtester.images import Photo
from loadtester.schedule import Schedule
from loadtester.sender import Replayer

# Open-loop steps, as fractions of the measured saturation rate: dense near the knee of the curve.
STEP_FRACTIONS = (0.3, 0.5, 0.65, 0.8, 0.9, 1.0)
# No rate at or above saturation is sustainable (its queue grows without bound), however short a step hides
# it: the within-SLO rate is at most this fraction of the saturation rate.
MAX_SUSTAINED_FRACTION = 0.9
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


@dataclass(frozen=True)
class Step:
    """One open-loop step. p95 counts failed requests as infinitely slow, like the SLO windows do."""

    offered_rps: float
    ok_rps: float
    requests: int
    failed: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    def meets(self, slo_ms: float) -> bool:
        return self.failed == 0 and self.p95_ms <= slo_ms


@dataclass
class CapacityReport:
    url: str
    replicas: int                          # replicas behind the URL while it was measured
    saturation_rps: float                  # 200s per second at the best concurrency (all replicas)
    saturation_concurrency: int
    unloaded_p50_ms: float
    unloaded_p95_ms: float
    model_ms_at_saturation: float | None   # median Server-Timing `model` (a full batch's forward)
    max_batch_size: int | None             # from /info, when the service has it
    steps: list[Step]
    sweep: list[tuple[int, float, int]]    # (concurrency, ok req/s, non-200 answers)
    load_generator_cpu: float              # cores the probe itself used while it ran
    duration_s: float
    startup_s: float | None = None         # fork to ready of one worker, when measured (python -m local)
    info: dict = field(default_factory=dict)

    # --- reading the curve ------------------------------------------------------------------------
    def within_slo_rps(self, slo_ms: float) -> float:
        """The highest request rate (all replicas) whose p95 stays within `slo_ms`."""
        return min(self._within_slo(slo_ms), MAX_SUSTAINED_FRACTION * self.saturation_rps)

    def _within_slo(self, slo_ms: float) -> float:
        steps = sorted(self.steps, key=lambda s: s.offered_rps)
        if not steps:
            return 0.0
        if not steps[0].meets(slo_ms):
            # Even the lightest step missed: assume latency grows at least in proportion to load below it.
            first = steps[0]
            return first.ok_rps * min(1.0, slo_ms / first.p95_ms) if math.isfinite(first.p95_ms) else 0.0
        best = steps[0]
        for step in steps[1:]:
            if step.meets(slo_ms):
                best = step
                continue
            # Between a step within the SLO and one over it, latency is taken as linear in the rate. A step
            # that failed requests with its p95 still within the SLO says nothing about where p95 crosses it.
            if math.isfinite(step.p95_ms) and step.p95_ms > slo_ms and step.p95_ms > best.p95_ms:
                share = (slo_ms - best.p95_ms) / (step.p95_ms - best.p95_ms)
                return best.offered_rps + share * (step.offered_rps - best.offered_rps)
            break
        return best.offered_rps

    def latency_at(self, rate_rps: float) -> float:
        """Mean latency (ms) at `rate_rps`, linear between the steps around it (Little's law needs it)."""
        steps = sorted((s for s in self.steps if math.isfinite(s.mean_ms)), key=lambda s: s.offered_rps)
        if not steps:
            return self.unloaded_p50_ms
        xs = [0.0] + [s.offered_rps for s in steps]
        ys = [self.unloaded_p50_ms] + [s.mean_ms for s in steps]
        return float(np.interp(rate_rps, xs, ys))

    def recommendations(self, slo_ms: float) -> dict:
        """The autoscaler's per-replica estimates, and how each was derived."""
        within = self.within_slo_rps(slo_ms)
        per_replica = within / self.replicas
        latency_ms = self.latency_at(within)
        inflight = per_replica * latency_ms / 1000.0
        capped = within < self._within_slo(slo_ms)
        on_curve = (f"{MAX_SUSTAINED_FRACTION:.0%} of saturation (the curve met {slo_ms:g} ms further, but no "
                    "queue at saturation stays short)" if capped else
                    f"{within:.1f} req/s keep p95 within {slo_ms:g} ms on the curve")
        return {
            "slo_ms": slo_ms,
            "within_slo_rps": round(within, 2),
            "capacity_rps_per_replica": round(per_replica, 2),
            "target_inflight_per_replica": round(max(inflight, 0.1), 2),
            "how": {
                "CAPACITY_RPS_PER_REPLICA": f"{on_curve}, divided by {self.replicas} replica(s)",
                "TARGET_INFLIGHT_PER_REPLICA": f"Little's law: {per_replica:.1f} req/s x {latency_ms:.0f} ms mean "
                                               "latency at that rate",
            },
        }

    def as_dict(self, slo_ms: float | None = None) -> dict:
        data = asdict(self)
        data["steps"] = [{**asdict(s), "p95_ms": _finite(s.p95_ms), "p99_ms": _finite(s.p99_ms)} for s in self.steps]
        if slo_ms is not None:
            data["recommendations"] = self.recommendations(slo_ms)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "CapacityReport":
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["steps"] = [Step(**{k: (math.inf if v is None and k.startswith("p9") else v) for k, v in s.items()})
                           for s in data["steps"]]
        values["sweep"] = [tuple(row) for row in data["sweep"]]
        return cls(**values)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no infinity


# --- formatting ------------------------------------------------------------------------------------

def table_lines(report: CapacityReport, slo_ms: float) -> list[str]:
    """The measured table, then the values for the autoscaler and how they were derived."""
    rec = report.recommendations(slo_ms)

    def ms(v: float) -> str:
        return f"{v:.0f}" if math.isfinite(v) else "inf"

    lines = [f"capacity of {report.url} ({report.replicas} replica(s)), measured in {report.duration_s:.0f} s",
             f"  unloaded: p50 {report.unloaded_p50_ms:.0f} ms, p95 {report.unloaded_p95_ms:.0f} ms",
             f"  saturation (closed loop): {report.saturation_rps:.1f} req/s at concurrency "
             f"{report.saturation_concurrency}; sweep " + ", ".join(f"{c}: {r:.1f}" for c, r, _ in report.sweep)]
    if report.model_ms_at_saturation is not None:
        batch = f" (batches of up to {report.max_batch_size})" if report.max_batch_size else ""
        lines.append(f"  model time per batch at saturation: {report.model_ms_at_saturation:.0f} ms{batch}")
    if report.startup_s is not None:
        lines.append(f"  worker start-up (fork to ready): {report.startup_s:.1f} s")
    lines.append(f"  load generator: {report.load_generator_cpu:.2f} cores while probing")
    lines += ["", "  offered req/s | ok req/s | p50 ms | p95 ms | p99 ms | failed | within SLO",
              "  ------------: | -------: | -----: | -----: | -----: | -----: | ----------"]
    for s in sorted(report.steps, key=lambda s: s.offered_rps):
        lines.append(f"  {s.offered_rps:13.1f} | {s.ok_rps:8.1f} | {ms(s.p50_ms):>6} | {ms(s.p95_ms):>6} | "
                     f"{ms(s.p99_ms):>6} | {s.failed:6d} | {'yes' if s.meets(slo_ms) else 'no'}")
    lines += ["", "  for the autoscaler:",
              f"    CAPACITY_RPS_PER_REPLICA={rec['capacity_rps_per_replica']:g}   "
              f"({rec['how']['CAPACITY_RPS_PER_REPLICA']})",
              f"    TARGET_INFLIGHT_PER_REPLICA={rec['target_inflight_per_replica']:g}   "
              f"({rec['how']['TARGET_INFLIGHT_PER_REPLICA']})",
              f"    SLO_P95_MS={slo_ms:g}"]
    return lines


def summary_line(report: CapacityReport, slo_ms: float) -> str:
    """The last line scripts read."""
    return (f"capacity: {report.saturation_rps:.1f} req/s at saturation, {report.within_slo_rps(slo_ms):.1f} req/s "
            "within the SLO")


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
    replayer = Replayer(target, schedule, photos, timeout_s=timeout_s, max_inflight=_inflight_cap())
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


def _inflight_cap() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(4096, (soft if soft != resource.RLIM_INFINITY else 4096) - 64))


def read_info(target: Target, timeout_s: float = 5.0) -> dict:
    """The service's /info (batch size, threads, weights), or {} for a server that has none."""
    import requests

    base = target.url.rstrip("/")
    try:
        response = requests.get(f"{base}/info", timeout=timeout_s)
        return response.json() if response.status_code == 200 else {}
    except (requests.RequestException, ValueError):
        return {}


__all__ = ["CapacityReport", "ProbeError", "ProbeSettings", "Step", "UnreachableError", "measure", "read_info",
           "summary_line", "table_lines"]
