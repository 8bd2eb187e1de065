"""One run from plan to numbers: the trace it replays, the stack, and what the load tester recorded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from comparison.run_record import RUN_FILE, RunRecord
from loadtester.workload import load_workload

from local.analysis import analyse
from local.calibration import load_or_measure
from local.config import QUICK_SLICE, Options
from local.stack import RunPlan, Stack
from planning.runs import run_spec
from planning.sizing import Sizing, derive


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
    """A named run (planning/runs.py) between the options' replica bounds."""
    spec = run_spec(name, options.min_replicas, options.max_replicas_effective, options.hpa_target_cpu)
    return RunPlan(spec.name, spec.policy, spec.min_replicas, spec.max_replicas, spec.initial_replicas, trace, scale,
                   run_dir, hpa_target_cpu=spec.hpa_target_cpu)


def execute(options: Options, sizing: Sizing, plan: RunPlan, console: TextIO = sys.stdout, label: str = "") -> dict:
    """Run the stack over the trace; return the analysed result (also written to run.json)."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(options, sizing, plan, console, label)
    with stack:
        # The load tester reads the replica series from Prometheus before it exits, so the stack is still up.
        stack.replay()
    path = plan.run_dir / RUN_FILE
    record = RunRecord.from_dict({
        **analyse(plan.run_dir), "name": plan.name, "run_dir_name": plan.run_dir.name, "plan": plan.as_dict(),
        "stop": stack.stop_report, "sizing": sizing.as_dict(),
        "autoscaler_env": {k: v for k, v in stack.autoscaler_env().items()
                           if k not in ("PROMETHEUS_URL", "GUNICORN_PIDFILE")},
    }, path)
    record.write(path)
    return record.to_dict()
