"""Load tester runs recorded against any deployment (a cluster, an HPA baseline), compared as `make compare`
compares the local stack's runs: the same figures (comparison/summary.py), the same table, targets and files
(comparison/table.py) and the same plot (comparison/plots.py).

A run is one load tester output directory: its summary.json holds the replay's figures and the replica
series the load tester read from Prometheus after the replay (`--prometheus URL`). Without the autoscaler's
decision lines, replica-seconds and scale events both come from the `workers` series: replica-seconds is its
integral over the replay (the figure the load tester's own summary shows), a scale event each change of it.

Runs are named on the command line (`NAME=DIR`, or DIR for its folder's name); a name given several times is
one run repeated, shown as the median and the range. Runs are only compared when they replayed the same
load: the same trace, arrivals, seed, scale, speedup and length, judged against the same SLO and windows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from comparison.plots import plot_comparison
from comparison.summary import run_figures
from comparison.table import row_of, write_comparison

SUMMARY_FILE = "summary.json"
# The load tester's parameters that must be the same in every run compared, and what the run replayed.
SAME_LOAD = ("trace", "arrivals", "seed", "speedup", "duration_s", "slo_ms", "window_s")


class RecordedRunError(ValueError):
    """A run that cannot be compared; the message names the directory or file and what is wrong."""


@dataclass(frozen=True)
class RecordedRun:
    name: str
    path: Path
    summary: dict

    @property
    def parameters(self) -> dict:
        return self.summary["run"]["parameters"]

    @property
    def scale(self) -> float:
        """The scale the replay used: the one its sizing chose, else --scale (summaries written before the
        load tester recorded its choice), else 1."""
        chosen = self.summary["run"].get("trace_scale") or {}
        if chosen.get("scale") is not None:
            return float(chosen["scale"])
        return float(self.parameters.get("scale") or 1.0)

    def load(self) -> dict:
        """What the run replayed and was judged against: equal for every run compared."""
        return {**{key: self.parameters.get(key) for key in SAME_LOAD}, "scale": self.scale}

    def figures(self) -> dict:
        """comparison/summary.py's figures; cost and scale events from the workers series."""
        run = self.summary["run"]
        start, end = run["start_unix_s"], run["end_unix_s"]
        result = run_figures(self.summary, [], self.summary.get("replicas", {}), start, end - start,
                             workers_source="prometheus", events_from="replicas")
        result["run_dir"] = str(self.path)
        return result


def parse_run_argument(text: str) -> tuple[str, Path]:
    """`NAME=DIR` or `DIR` (named after its folder)."""
    name, sep, path = text.partition("=")
    if not sep:
        return Path(text).resolve().name, Path(text)
    if not name or not path:
        raise RecordedRunError(f"{text!r}: expected NAME=DIR or DIR (a load tester's output directory)")
    return name, Path(path)


def read_run(name: str, path: Path) -> RecordedRun:
    """The run in `path`; raises RecordedRunError naming what is missing."""
    file = path / SUMMARY_FILE
    if not path.is_dir():
        raise RecordedRunError(f"{path}: no such directory (a load tester's --out)")
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordedRunError(f"{file}: no such file: {path} is not a load tester's output directory") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordedRunError(f"{file}: cannot read it ({exc})") from None
    missing = [key for key in ("requests", "latency_ms", "slo", "run") if not isinstance(summary.get(key), dict)]
    missing += [f"run.{key}" for key in ("parameters", "start_unix_s", "end_unix_s")
                if key not in summary.get("run", {})]
    if missing:
        raise RecordedRunError(f"{file}: not a load tester's summary (missing {', '.join(missing)})")
    if not (summary.get("replicas") or {}).get("workers"):
        raise RecordedRunError(f"{file}: no workers series: replica-seconds and scale events come from it; run the "
                               "load tester with --prometheus URL (a Prometheus that scrapes the service)")
    return RecordedRun(name, path, summary)


def check_same_load(runs: list[RecordedRun]) -> dict:
    """The load every run replayed; raises RecordedRunError naming the first setting two runs differ in."""
    first = runs[0]
    for run in runs[1:]:
        mine, theirs = first.load(), run.load()
        for key in mine:
            if mine[key] != theirs[key]:
                raise RecordedRunError(
                    f"{run.name} ({run.path}) replayed {key}={theirs[key]!r}, {first.name} ({first.path}) "
                    f"{key}={mine[key]!r}: only runs of the same load are compared (same trace, arrivals, seed, "
                    "scale, speedup and length, same SLO and windows)")
    return first.load()


def policy_of(name: str) -> str:
    """A run name's policy as the comparison's runs spell it: static-min -> static, hpa-50 -> hpa, slo -> slo."""
    return name.split("-", 1)[0]


def compare_recorded(runs: list[RecordedRun], out_dir: Path) -> dict:
    """comparison.json, .csv, .md and .png of `runs` in `out_dir`; comparison.table.write_comparison's outcome."""
    load = check_same_load(runs)
    results: dict[str, list[dict]] = {}
    for run in runs:
        results.setdefault(run.name, []).append(run.figures())
    per_run = {name: [row_of(name, policy_of(name), r) for r in repeats] for name, repeats in results.items()}
    context = {"source": "recorded load tester runs", "load": load,
               "run_dirs": {name: [r["run_dir"] for r in repeats] for name, repeats in results.items()}}
    outcome = write_comparison(out_dir, per_run, context)
    trace_name = Path(str(load["trace"])).name
    plot_comparison(out_dir / "comparison.png", {name: repeats[0] for name, repeats in results.items()},
                    float(load["slo_ms"]), f"recorded runs: {trace_name} x{load['scale']:g}, seed {load['seed']}, "
                    f"SLO p95 {load['slo_ms']:g} ms")
    return outcome
