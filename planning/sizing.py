"""Everything the local stack sizes, derived from one measurement of one worker on this machine.

A pure function of the probe's result (`loadtester.capacity.CapacityReport`) and the options, so the same
measurement always gives the same run, and tests can check the derivation without a model:

- SLO (unless --slo-ms): three full batches plus the unloaded latency, rounded up to 50 ms; a full batch
  takes the model's time or, if longer, what a batch's worth of requests takes at saturation (decoding
  and HTTP share the core, a CPU quota caps it). A request
  that arrives just after a batch started waits for it, runs in the next one, and a third covers the
  queueing of a busy worker; below that no worker could meet it at any useful load.
- capacity estimate: the rate at which the measured latency curve keeps p95 within that SLO
  (CAPACITY_RPS_PER_REPLICA), and Little's law at that rate (TARGET_INFLIGHT_PER_REPLICA).
- queue (unless --max-queue): max(3 s, 1.5 start-ups) of one worker's work, so a burst's excess waits for
  the next worker instead of being rejected, yet well inside REQUEST_TIMEOUT_S: as the service's wait budget
  (MAX_QUEUE_WAIT_MS), and as a count at the saturation rate (MAX_QUEUE). A --max-queue given admits by that
  count alone.
- replicas: 1..N, N from the cores (`default_max_replicas`).
- trace scale (unless --trace-scale): the trace's peak at (N - 0.5) x 70% x one worker's
  saturation rate, so the peak needs all N workers while the quiet phases need one, and the one worker that
  serves the first seconds of a burst is barely over its capacity (N workers sharing N cores with the load
  tester and Prometheus serve less than N times one); the quick slice's peak
  at 0.85 x saturation: more than one worker plans for (TARGET_UTILIZATION of its within-SLO capacity), less
  than it can serve while the second starts.
- policy windows: multiples of the 1 s scrape and of the measured start-up (the forecast looks one to two
  start-ups ahead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from loadtester.capacity_report import MAX_SUSTAINED_FRACTION, CapacityReport, littles_law_inflight
# The peak of a full run needs N replicas at PEAK_UTILIZATION: (N - PEAK_MARGIN) of them, the margin the
# simulator's and the load tester's --peak-replicas keep too.
from loadtester.trace_sizing import PEAK_MARGIN

# The share of a worker's saturation each of the N replicas carries at the full run's peak: Knative's 70%
# target, a fixed load level, so the trace is the same whichever policy (and TARGET_UTILIZATION) replays it.
PEAK_UTILIZATION = 0.7
QUICK_PEAK_OF_SATURATION = 0.85
SLO_BATCHES = 3
SLO_ROUND_MS = 50
QUEUE_SECONDS = 3.0
# Without a probe (--worker-capacity-rps given): the share of saturation one worker sustains within the SLO,
# as measured on earlier machines (p95 ~640 ms at 20 of 25 req/s).
ASSUMED_WITHIN_SLO_FRACTION = 0.75
ASSUMED_STARTUP_S = 4.0


def slo_ms_for(full_batch_ms: float, unloaded_ms: float) -> float:
    """The SLO a worker can keep at a useful load: SLO_BATCHES full batches plus the unloaded latency, rounded
    up to SLO_ROUND_MS."""
    return float(SLO_ROUND_MS * math.ceil((SLO_BATCHES * full_batch_ms + unloaded_ms) / SLO_ROUND_MS))


def sustained_rps(saturation_rps: float) -> float:
    """The most a worker is planned to carry when its latency curve does not bind first."""
    return MAX_SUSTAINED_FRACTION * saturation_rps


@dataclass(frozen=True)
class Timings:
    """The autoscaler's windows for one kind of run. Full: for the 300 s trace, whose phases last ~45 s.
    Quick: short enough that a scale-up and the scale-down after it fit in a 90 s slice."""

    poll_interval_s: float
    rate_window_s: int
    stable_window_s: float
    panic_window_s: float
    rise_window_s: float
    scale_down_stabilization_s: float
    scale_down_step_s: float
    forecast_horizon_s: float
    forecast_confirm_s: float
    hpa_scale_down_stabilization_s: float

    def autoscaler_env(self) -> dict[str, str]:
        return {f.name.upper(): _fmt(getattr(self, f.name)) for f in fields(self)}


def timings_for(quick: bool, startup_s: float) -> Timings:
    """Decisions every 2 s (two scrapes); rates over 10 s; a 20 s stable window and stabilization, so a
    replica can be released inside the trace's 45 s phases; a rise counted over four polls and a forecast
    two start-ups ahead, confirmed by the last three polls' rates (the autoscaler's defaults count both in
    its 5 s polls); one replica released per 10 s. The HPA keeps the upstream 300 s scale-down
    stabilization: that is the baseline being compared with. Quick mode halves most of it so a scale-up
    and a scale-down fit in 90 s."""
    if quick:
        return Timings(poll_interval_s=1, rate_window_s=5, stable_window_s=8, panic_window_s=3, rise_window_s=4,
                       scale_down_stabilization_s=6, scale_down_step_s=3,
                       forecast_horizon_s=_clamp(round(1.25 * startup_s, 1), 3, 15), forecast_confirm_s=3,
                       hpa_scale_down_stabilization_s=20)
    return Timings(poll_interval_s=2, rate_window_s=10, stable_window_s=20, panic_window_s=4, rise_window_s=8,
                   scale_down_stabilization_s=20, scale_down_step_s=10,
                   forecast_horizon_s=_clamp(round(2 * startup_s, 1), 4, 30), forecast_confirm_s=6,
                   hpa_scale_down_stabilization_s=300)


@dataclass(frozen=True)
class Sizing:
    source: str                        # "measured", "cached measurement of <time>", "--worker-capacity-rps"
    worker_capacity_rps: float         # one worker's saturation throughput
    slo_ms: float
    capacity_within_slo_rps: float     # the autoscaler's CAPACITY_RPS_PER_REPLICA
    target_inflight_per_replica: float
    max_queue: int
    max_queue_wait_ms: float           # the service's MAX_QUEUE_WAIT_MS; 0: by MAX_QUEUE alone
    startup_s: float
    max_replicas: int
    peak_rps: float                    # where the trace's peak is put (unless --trace-scale)
    timings: Timings
    derivation: tuple[tuple[str, str, str], ...]   # (setting, value, how it follows from the measurement)
    probe: dict | None = None          # the probe's whole measurement (CapacityReport.as_dict)

    def scale_for(self, trace_peak_rps: float, trace_scale: float = 0.0) -> float:
        if trace_scale:
            return trace_scale
        return round(self.peak_rps / trace_peak_rps, 4)

    def as_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("timings", "derivation")}
        out["timings"] = {f.name: getattr(self.timings, f.name) for f in fields(self.timings)}
        out["derivation"] = [list(row) for row in self.derivation]
        return out


def derive(report: CapacityReport | None, *, quick: bool, max_replicas: int, slo_ms: float = 0.0,
           max_queue: int = 0, worker_capacity_rps: float = 0.0, source: str = "measured") -> Sizing:
    """The run's sizing. `slo_ms`, `max_queue` and `worker_capacity_rps` of 0 mean "derive it"."""
    rows: list[tuple[str, str, str]] = []
    if worker_capacity_rps:
        saturation = worker_capacity_rps
        batch_ms = 8 * 1000.0 / saturation   # batches of 8 fill at saturation
        unloaded_ms = 2 * 1000.0 / saturation
        startup_s = report.startup_s if report and report.startup_s else ASSUMED_STARTUP_S
        source = "--worker-capacity-rps"
        rows.append(("one worker's saturation", f"{saturation:g} req/s", "given by --worker-capacity-rps (no probe)"))
    else:
        if report is None:
            raise ValueError("derive() needs a probe result or worker_capacity_rps")
        saturation = report.saturation_rps / report.replicas
        # A full batch's turn at saturation: the model's time, or, where decoding and HTTP share the core
        # (or a CPU quota caps it), the time the worker takes to serve a batch's worth of requests.
        batch_ms = max(report.model_ms_at_saturation or 0.0, (report.max_batch_size or 8) * 1000.0 / saturation)
        unloaded_ms = report.unloaded_p50_ms
        startup_s = report.startup_s or ASSUMED_STARTUP_S
        rows.append(("one worker's saturation", f"{saturation:.1f} req/s",
                     f"closed loop, best of concurrency {report.saturation_concurrency}"))
    if slo_ms:
        rows.append(("SLO p95", f"{slo_ms:g} ms", "given by --slo-ms"))
    else:
        slo_ms = slo_ms_for(batch_ms, unloaded_ms)
        rows.append(("SLO p95", f"{slo_ms:g} ms", f"{SLO_BATCHES} full batches ({batch_ms:.0f} ms each at saturation) + "
                     f"unloaded latency ({unloaded_ms:.0f} ms), rounded up to {SLO_ROUND_MS} ms"))
    if report is not None and not worker_capacity_rps:
        rec = report.recommendations(slo_ms)
        within, inflight = rec["capacity_rps_per_replica"], rec["target_inflight_per_replica"]
        rows.append(("CAPACITY_RPS_PER_REPLICA", f"{within:g} req/s", rec["how"]["CAPACITY_RPS_PER_REPLICA"]))
        rows.append(("TARGET_INFLIGHT_PER_REPLICA", f"{inflight:g}", rec["how"]["TARGET_INFLIGHT_PER_REPLICA"]))
    else:
        within = round(ASSUMED_WITHIN_SLO_FRACTION * saturation, 2)
        inflight = round(littles_law_inflight(within, slo_ms / 2.0), 2)
        rows.append(("CAPACITY_RPS_PER_REPLICA", f"{within:g} req/s",
                     f"assumed {ASSUMED_WITHIN_SLO_FRACTION:.0%} of saturation (no latency curve measured)"))
        rows.append(("TARGET_INFLIGHT_PER_REPLICA", f"{inflight:g}", "Little's law at half the SLO"))
    rows.append(("worker start-up", f"{startup_s:.1f} s", "measured: TTIN to the new worker's ready marker"
                 if report and report.startup_s and not worker_capacity_rps else "assumed"))
    if max_queue:
        wait_ms = 0.0
        rows.append(("MAX_QUEUE", f"{max_queue} images", "given by --max-queue (MAX_QUEUE_WAIT_MS=0: by count only)"))
    else:
        queue_s = max(QUEUE_SECONDS, 1.5 * startup_s)
        max_queue = max(8, math.ceil(saturation * queue_s))
        wait_ms = round(queue_s * 1000.0)
        rows.append(("MAX_QUEUE_WAIT_MS", f"{wait_ms:g} ms", f"{queue_s:.1f} s of one worker's work (max of "
                     f"{QUEUE_SECONDS:g} s and 1.5 start-ups)"))
        rows.append(("MAX_QUEUE", f"{max_queue} images", "the same seconds at the saturation rate"))
    rows.append(("replicas", f"1..{max_replicas}", "one worker per core (one core left free above 2)"))
    if quick:
        peak = QUICK_PEAK_OF_SATURATION * saturation
        how = (f"{QUICK_PEAK_OF_SATURATION:g} x saturation: more than one worker plans for, less than it serves while "
               "the second starts")
    else:
        peak = (max_replicas - PEAK_MARGIN) * PEAK_UTILIZATION * saturation if max_replicas > 1 else 0.9 * saturation
        how = (f"({max_replicas} - {PEAK_MARGIN:g}) x {PEAK_UTILIZATION:.0%} x saturation: the peak needs "
               f"{max_replicas} workers, the quiet phases one")
    rows.append(("trace peak", f"{peak:.1f} req/s", how))
    timings = timings_for(quick, startup_s)
    rows.append(("forecast horizon", f"{timings.forecast_horizon_s:g} s", "1.25 start-ups (quick) or 2, within "
                 "3..15 s (quick) or 4..30 s"))
    return Sizing(source=source, worker_capacity_rps=round(saturation, 2), slo_ms=float(slo_ms),
                  capacity_within_slo_rps=within, target_inflight_per_replica=inflight, max_queue=int(max_queue),
                  max_queue_wait_ms=float(wait_ms),
                  startup_s=round(startup_s, 2), max_replicas=max_replicas, peak_rps=round(peak, 3), timings=timings,
                  derivation=tuple(rows), probe=report.as_dict(slo_ms) if report is not None else None)


def derivation_lines(sizing: Sizing) -> list[str]:
    """A markdown table of what was derived and how."""
    lines = ["| setting | value | how |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {how} |" for name, value, how in sizing.derivation]
    return lines


def _clamp(value: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, value))


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
