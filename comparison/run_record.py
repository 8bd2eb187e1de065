"""One run's record, `run.json`: what the local stack writes after a run and the simulator's calibration
(sim/calibration/) reads. Both hold this one definition, so a field the calibration needs is a field here,
checked where it is written and where it is read.

    version          RUN_RECORD_VERSION (see there)
    name             the run as the comparison names it (static-min, hpa-50, slo, ...)
    plan             what ran: its policy, replica bounds (min_replicas, max_replicas), trace and scale
    sizing           what the run was sized from (planning/sizing.py's Sizing, with its probe and source)
    autoscaler_env   the autoscaler's environment as it ran
    requests, windows, replica_seconds, replicas, events, duration_s, start_unix_s
                     the measured figures comparison/summary.py defines
    figures          every other figure the reports show, as the writer computed it (flat in the JSON)

A reduced copy (`python -m sim.calibrate --record`) also carries inline what a full run directory keeps
in files of its own: `loadtest` (the load tester's parameters), `scrape_interval_s`, the `trace_file` and
`calibration_file` copied next to it with the trace's `trace_sha256`, and the measured `forwards`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

RUN_FILE = "run.json"
# Version 1: the fields above. A run.json without `version` (every one written before the record carried
# it, such as the recorded tests/fixtures/sim-calibration/) has the same fields and is read as version 1.
RUN_RECORD_VERSION = 1

_OBJECT, _LIST, _NUMBER, _TEXT, _INTEGER = "a JSON object", "a list", "a number", "a string", "an integer"
_TYPES = {_OBJECT: (dict,), _LIST: (list,), _NUMBER: (int, float), _TEXT: (str,), _INTEGER: (int,)}
# What every reader needs; the other fields may be absent (or null).
REQUIRED = ("plan", "sizing", "autoscaler_env", "windows", "replica_seconds", "requests")
# What a run's plan must say for anyone to replay it.
PLAN_FIELDS = {"name": _TEXT, "min_replicas": _INTEGER, "max_replicas": _INTEGER, "scale": _NUMBER}
WINDOW_KEYS = ("start_s", "p95_ms", "meets_slo")


class RunRecordError(ValueError):
    """A run.json that is not a run record; the message names the file and the field."""


@dataclass(frozen=True)
class RunRecord:
    # --- what ran ------------------------------------------------------------------------------------------
    name: str
    plan: dict
    sizing: dict
    autoscaler_env: dict
    # --- what it measured ----------------------------------------------------------------------------------
    requests: dict
    windows: list
    replica_seconds: float
    run_dir_name: str | None = None
    duration_s: float | None = None
    start_unix_s: float | None = None
    replicas: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    # --- what a reduced copy carries inline ----------------------------------------------------------------
    format: str | None = None
    recorded_from: str | None = None
    loadtest: dict | None = None
    scrape_interval_s: float | None = None
    trace_file: str | None = None
    trace_sha256: str | None = None
    calibration_file: str | None = None
    forwards: dict | None = None
    # --- everything else the writer reported ---------------------------------------------------------------
    figures: dict = field(default_factory=dict)
    version: int = RUN_RECORD_VERSION

    @classmethod
    def from_dict(cls, data: object, source: str | Path) -> "RunRecord":
        """The record in a run.json's object; `source` (its file) names it in every error."""
        if not isinstance(data, dict):
            raise RunRecordError(f"{source}: a run's figures is not a JSON object")
        version = data.get("version", 1)   # none: written before the record carried one, the same fields
        _check(source, "version", version, _INTEGER)
        if not 1 <= version <= RUN_RECORD_VERSION:
            raise RunRecordError(f"{source}: version {version} is not one this reader knows (1..{RUN_RECORD_VERSION})")
        missing = [f for f in REQUIRED if f not in data]
        if missing:
            raise RunRecordError(f"{source}: missing {', '.join(missing)}")
        for name, what in _FIELD_TYPES.items():
            if name in REQUIRED or data.get(name) is not None:
                _check(source, name, data[name], what)
        plan = data["plan"]
        missing = [f"plan.{f}" for f in PLAN_FIELDS if f not in plan]
        if missing:
            raise RunRecordError(f"{source}: missing {', '.join(missing)}")
        for name, what in PLAN_FIELDS.items():
            _check(source, f"plan.{name}", plan[name], what)
        if not all(isinstance(w, dict) and set(WINDOW_KEYS) <= set(w) for w in data["windows"]):
            raise RunRecordError(f"{source}: windows must be a list of {{{', '.join(WINDOW_KEYS)}, ...}}")
        typed = {f.name for f in fields(cls)} - {"figures", "version"}
        given = {k: v for k, v in data.items() if k in typed and v is not None}
        return cls(**{"name": plan["name"], **given}, version=version,
                   figures={k: v for k, v in data.items() if k not in typed and k != "version"})

    def to_dict(self) -> dict:
        """The record as run.json holds it: its fields and the other figures side by side."""
        out: dict = {"version": self.version}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("figures", "version") and value is not None:
                out[f.name] = value
        return {**out, **self.figures}

    @classmethod
    def read(cls, path: Path) -> "RunRecord":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunRecordError(f"{path}: no such file (a run's figures)") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunRecordError(f"{path}: cannot read a run's figures ({exc})") from None
        return cls.from_dict(data, path)

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


_FIELD_TYPES = {
    "name": _TEXT, "plan": _OBJECT, "sizing": _OBJECT, "autoscaler_env": _OBJECT, "requests": _OBJECT,
    "windows": _LIST, "replica_seconds": _NUMBER, "run_dir_name": _TEXT, "duration_s": _NUMBER,
    "start_unix_s": _NUMBER, "replicas": _OBJECT, "events": _LIST, "format": _TEXT, "recorded_from": _TEXT,
    "loadtest": _OBJECT, "scrape_interval_s": _NUMBER, "trace_file": _TEXT, "trace_sha256": _TEXT,
    "calibration_file": _TEXT, "forwards": _OBJECT,
}


def _check(source: str | Path, name: str, value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, _TYPES[what]):
        shown = f"={value!r}" if not isinstance(value, (dict, list)) else f" (a {type(value).__name__})"
        raise RunRecordError(f"{source}: {name}{shown} must be {what}")
