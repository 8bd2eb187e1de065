"""What a capacity measurement says: the measured figures, the latency curve read at an SLO, and its text.

`CapacityReport.within_slo_rps(slo_ms)` reads the curve: the highest rate whose p95 stays within the SLO
(linear between the last step that met it and the first that did not), at most MAX_SUSTAINED_FRACTION of
saturation. `recommendations()` turns that into the autoscaler's CAPACITY_RPS_PER_REPLICA and
TARGET_INFLIGHT_PER_REPLICA (Little's law at that rate); `autoscaler_env()` gives them, with the SLO they
were read at, as the autoscaler's environment variables (the probe's --env-file). Pure: the measuring is in
loadtester/capacity.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from settings import format_number

# No rate at or above saturation is sustainable (its queue grows without bound), however short a step hides
# it: the within-SLO rate is at most this fraction of the saturation rate.
MAX_SUSTAINED_FRACTION = 0.9


def littles_law_inflight(rate_rps: float, latency_ms: float) -> float:
    """Requests in flight at `rate_rps` when each takes `latency_ms` (Little's law: L = lambda x W)."""
    return rate_rps * latency_ms / 1000.0


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
        inflight = littles_law_inflight(per_replica, latency_ms)
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


def autoscaler_env(report: CapacityReport, slo_ms: float) -> dict[str, str]:
    """The autoscaler's variables the measurement sets (autoscaler/config.py reads them; each is a key of
    k8s/autoscaler-config.yaml): the capacity estimates and the SLO they hold at."""
    rec = report.recommendations(slo_ms)
    return {"CAPACITY_RPS_PER_REPLICA": format_number(rec["capacity_rps_per_replica"]),
            "TARGET_INFLIGHT_PER_REPLICA": format_number(rec["target_inflight_per_replica"]),
            "SLO_P95_MS": format_number(float(slo_ms))}


def env_file_text(env: dict[str, str]) -> str:
    """KEY=VALUE lines and nothing else (no comments, no quotes, no spaces), so that kustomize's
    configMapGenerator (`envs:`) and a shell's `env $(cat FILE) ...` read the same values."""
    return "".join(f"{key}={value}\n" for key, value in env.items())


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
    env = autoscaler_env(report, slo_ms)
    lines += ["", "  for the autoscaler:"]
    lines += [f"    {key}={value}" + (f"   ({rec['how'][key]})" if key in rec["how"] else "")
              for key, value in env.items()]
    return lines


def summary_line(report: CapacityReport, slo_ms: float) -> str:
    """The last line scripts read."""
    return (f"capacity: {report.saturation_rps:.1f} req/s at saturation, {report.within_slo_rps(slo_ms):.1f} req/s "
            "within the SLO")
