"""The runs of a real comparison, and the files each one points at.

A run directory is what `make compare` writes (one `<policy>-<n>/` per run with run.json,
loadtest/summary.json and prometheus/prometheus.yml) or a reduced copy of one (record.py), whose run.json
carries the load tester's parameters and the scrape interval inline and names the trace and the
calibration copied next to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from comparison.run_record import RUN_FILE, WINDOW_KEYS, RunRecord, RunRecordError

LOADTEST_FIELDS = ("trace", "arrivals", "seed", "scale", "speedup", "duration_s")


class CalibrationError(Exception):
    """Input that cannot be calibrated against; the message names the file and the problem."""


@dataclass(frozen=True)
class RealRun:
    label: str                  # the run's directory: static-min-1
    name: str                   # the policy as the comparison names it: static-min
    path: Path                  # its run.json
    record: RunRecord           # run.json
    loadtest: dict              # LOADTEST_FIELDS as the load tester ran
    scrape_interval_s: float
    trace: Path
    calibration: Path | None    # the probe's cached JSON (None: the probe embedded in sizing)

    @property
    def windows(self) -> list[dict]:
        return self.record.windows


def find_runs(run_dir: Path) -> list[Path]:
    """Every `<run>/run.json` under run_dir (or run_dir's own run.json), in name order."""
    if not run_dir.is_dir():
        raise CalibrationError(f"{run_dir}: no such directory")
    if (run_dir / RUN_FILE).is_file():
        return [run_dir / RUN_FILE]
    runs = sorted(p for p in run_dir.glob(f"*/{RUN_FILE}") if p.is_file())
    if not runs:
        raise CalibrationError(f"{run_dir}: no <run>/{RUN_FILE} in it (expected what `make compare` writes "
                               "or a reduced copy written by --record)")
    return runs


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such file ({what})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: {what} is not a JSON object")
    return data


def load_run(path: Path, root: Path) -> RealRun:
    try:
        record = RunRecord.read(path)
    except RunRecordError as exc:
        raise CalibrationError(str(exc)) from None
    if not record.windows:
        raise CalibrationError(f"{path}: windows must be a non-empty list of {{{', '.join(WINDOW_KEYS)}, ...}}")
    plan = record.plan
    run_dir = path.parent
    loadtest = record.loadtest
    if loadtest is None:
        summary = read_json(run_dir / "loadtest" / "summary.json", "the load tester's summary")
        try:
            loadtest = {k: summary["run"]["parameters"][k] for k in LOADTEST_FIELDS}
        except (KeyError, TypeError) as exc:
            raise CalibrationError(f"{run_dir / 'loadtest' / 'summary.json'}: no run.parameters.{exc}") from None
    try:
        same_scale = abs(float(loadtest["scale"]) - float(plan["scale"])) <= 1e-9
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{path}: the load tester's parameters are not usable ({type(exc).__name__}: "
                               f"{exc})") from None
    if not same_scale:
        raise CalibrationError(f"{path}: the plan's scale {plan['scale']} is not the load tester's {loadtest['scale']}")
    scrape = record.scrape_interval_s
    if scrape is None:
        scrape = _scrape_interval_s(run_dir / "prometheus" / "prometheus.yml")
    return RealRun(label=record.run_dir_name or run_dir.name, name=str(plan["name"]), path=path, record=record,
                   loadtest=loadtest, scrape_interval_s=float(scrape), trace=_trace_path(record, loadtest, path, root),
                   calibration=_calibration_path(record, path, root))


def _scrape_interval_s(config: Path) -> float:
    try:
        text = str((yaml.safe_load(config.read_text()) or {}).get("global", {}).get("scrape_interval", "1m"))
    except FileNotFoundError:
        raise CalibrationError(f"{config}: no such file (the run's Prometheus config, for its scrape "
                               "interval)") from None
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise CalibrationError(f"{config}: cannot read the scrape interval ({exc})") from None
    m = re.fullmatch(r"([0-9.]+)(ms|s|m)", text.strip())
    if not m:
        raise CalibrationError(f"{config}: scrape_interval {text!r} is not a duration like 1s")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _trace_path(record: RunRecord, loadtest: dict, path: Path, root: Path) -> Path:
    if record.trace_file:
        trace = root / record.trace_file
    else:
        trace = Path(str(record.plan.get("trace") or loadtest["trace"]))
    if not trace.is_file():
        raise CalibrationError(f"{path}: its trace {trace} is not a file")
    want = record.trace_sha256
    if want and sha256(trace) != want:
        raise CalibrationError(f"{trace}: not the trace the run replayed (sha256 {sha256(trace)[:12]}..., "
                               f"the run's {want[:12]}...)")
    return trace


def _calibration_path(record: RunRecord, path: Path, root: Path) -> Path | None:
    sizing = record.sizing
    if record.calibration_file:
        named = root / record.calibration_file
        if not named.is_file():
            raise CalibrationError(f"{path}: its calibration {named} is not a file")
        return named
    m = re.search(r"([^\s;()]+\.json)", str(sizing.get("source", "")))
    for candidate in ([Path(m.group(1)), root / Path(m.group(1)).name] if m else []):
        if candidate.is_file():
            return candidate
    if isinstance(sizing.get("probe"), dict):
        return None
    raise CalibrationError(f"{path}: the calibration it was sized from is gone (sizing.source: "
                           f"{sizing.get('source')!r}) and sizing has no probe")
