"""One run from plan to numbers: the trace it replays, the stack, the fetched replica series, the plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from comparison.plots import plot_timeline
from loadtester.workload import load_workload

from local.analysis import analyse, fetch_replicas
from local.calibration import load_or_measure
from local.config import QUICK_SLICE, Options
from local.sizing import Sizing, derive
from local.stack import RunPlan, Stack


def size_run(options: Options, run_root: Path, console: TextIO = sys.stdout) -> Sizing:
    """The run's sizing: from --worker-capacity-rps, else from a measurement of one worker (cached)."""
    max_replicas = options.max_replicas_effective
    common = dict(quick=options.quick, max_replicas=max_replicas, slo_ms=options.slo_p95_ms,
                  max_queue=options.max_queue)
    if options.worker_capacity_rps:
        return derive(None, worker_capacity_rps=options.worker_capacity_rps, **common)
    report, source = load_or_measure(options, run_root / "calibration", console)
    return derive(report, source=source, **common)


def prepare_trace(options: Options, sizing: Sizing, run_root: Path) -> tuple[Path, float, str]:
    """The trace to replay (the whole file, or the quick slice written next to the report), its scale, and
    a sentence saying what it is."""
    workload = load_workload(options.trace)
    rates = list(workload.rates_rps)
    name = Path(options.trace).name
    if options.quick:
        lo, hi = QUICK_SLICE
        rates = rates[lo:hi] if len(rates) >= hi else rates[:hi - lo]
        run_root.mkdir(parents=True, exist_ok=True)
        path = run_root / "trace-quick.txt"
        path.write_text(f"# seconds {lo}-{hi - 1} of {name} (the quick slice with its burst)\n"
                        + "".join(f"{r:g}\n" for r in rates))
        what = f"seconds {lo}-{hi - 1} of {name}"
    else:
        path = Path(options.trace).resolve()
        what = f"all of {name}"
    scale = sizing.scale_for(max(rates), options.trace_scale)
    peak = max(rates) * scale
    what += (f" ({len(rates)} s, {sum(rates) * scale:.0f} requests, peak {peak:.1f} req/s after scale {scale:g}; "
             f"one worker saturates at ~{sizing.worker_capacity_rps:g} req/s)")
    return path, scale, what


def plan_for(name: str, options: Options, trace: Path, scale: float, run_dir: Path) -> RunPlan:
    """The comparison's runs: static at the bounds, HPA at 50% and 90% CPU, and kpa and slo between the bounds
    (as sim/run.py policy_config maps the same names)."""
    lo, hi = options.min_replicas, options.max_replicas_effective
    if name == "static-min":
        return RunPlan(name, "static", lo, lo, lo, trace, scale, run_dir)
    if name == "static-max":
        return RunPlan(name, "static", hi, hi, hi, trace, scale, run_dir)
    if name.startswith("hpa-"):
        return RunPlan(name, "hpa", lo, hi, lo, trace, scale, run_dir, hpa_target_cpu=int(name[4:]) / 100)
    if name == "hpa":
        return RunPlan(f"hpa-{options.hpa_target_cpu * 100:g}", "hpa", lo, hi, lo, trace, scale, run_dir,
                       hpa_target_cpu=options.hpa_target_cpu)
    if name == "static":
        return RunPlan("static-min", "static", lo, lo, lo, trace, scale, run_dir)
    return RunPlan(name, name, lo, hi, lo, trace, scale, run_dir)


def execute(options: Options, sizing: Sizing, plan: RunPlan, console: TextIO = sys.stdout, label: str = "") -> dict:
    """Run the stack over the trace; return the analysed result (also written to run.json)."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(options, sizing, plan, console, label)
    with stack:
        stack.replay()
        summary = json.loads((stack.loadtest_dir / "summary.json").read_text())
        replicas, problems = fetch_replicas(stack.prometheus_url, summary["run"]["start_unix_s"],
                                            summary["run"]["end_unix_s"])
    result = analyse(plan.run_dir, replicas, problems)
    result["name"] = plan.name
    result["run_dir_name"] = plan.run_dir.name
    result["plan"] = plan.as_dict()
    result["stop"] = stack.stop_report
    result["sizing"] = sizing.as_dict()
    result["autoscaler_env"] = {k: v for k, v in stack.autoscaler_env().items()
                                if k not in ("PROMETHEUS_URL", "GUNICORN_PIDFILE")}
    (plan.run_dir / "run.json").write_text(json.dumps(result, indent=1) + "\n")
    plot_timeline(plan.run_dir / "timeline.png", result, sizing.slo_ms,
                  f"{plan.name}: {Path(plan.trace).name} x{plan.scale:g}, {plan.min_replicas}..{plan.max_replicas} "
                  f"workers, SLO p95 {sizing.slo_ms:g} ms")
    return result
