"""A reduced copy of a real comparison (`python -m sim.calibrate RUN_DIR --record OUT_DIR`): per run the
figures the calibration reads, inline (the load tester's parameters, the scrape interval, the measured
forwards), with the trace and the calibration copied next to them. Small enough to keep as test data
(tests/fixtures/sim-calibration/ is one)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from comparison.run_record import RUN_FILE, RUN_RECORD_VERSION
from sim.calibration.forwards import run_forwards
from sim.calibration.runs import LOADTEST_FIELDS, find_runs, load_run, sha256

REDUCED_FORMAT = "sim-calibration-run"
WINDOW_FIELDS = ("start_s", "requests", "ok", "error_rate", "p50_ms", "p95_ms", "p99_ms", "meets_slo")
# The figures beyond the record's own fields that a reduced copy keeps (what its README describes).
KEPT_FIGURES = ("latency_ms", "slo", "replica_seconds_source")


def record(run_dir: Path, out_dir: Path) -> list[Path]:
    """Writes the reduced copy of run_dir under out_dir; returns the files written."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    runs = [load_run(p, run_dir) for p in find_runs(run_dir)]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    copies: dict[Path, str] = {}
    for source in {r.trace for r in runs} | {r.calibration for r in runs if r.calibration is not None}:
        name = source.name
        if out_dir / name != source:
            shutil.copyfile(source, out_dir / name)
        copies[source] = name
        written.append(out_dir / name)
    for run in runs:
        full = run.record
        reduced = replace(
            full, version=RUN_RECORD_VERSION, format=REDUCED_FORMAT, name=run.name, run_dir_name=run.label,
            recorded_from=full.recorded_from or str(run.path.parent),
            sizing={k: v for k, v in full.sizing.items() if k != "probe" or run.calibration is None},
            loadtest={k: run.loadtest.get(k) for k in LOADTEST_FIELDS}, scrape_interval_s=run.scrape_interval_s,
            trace_file=copies[run.trace], trace_sha256=sha256(run.trace),
            calibration_file=copies.get(run.calibration) if run.calibration is not None else None,
            windows=[{k: w.get(k) for k in WINDOW_FIELDS} for w in full.windows],
            replicas={"workers": full.replicas.get("workers", [])},
            forwards=run_forwards(run), figures={k: full.figures.get(k) for k in KEPT_FIGURES})
        path = out_dir / run.label / RUN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        reduced.write(path)
        written.append(path)
    return written
