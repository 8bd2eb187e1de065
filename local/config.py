"""Every option of the local stack, its default, unit and range, in one dataclass.

Each option is a command-line flag and, where it makes sense, an environment variable (flags win).
`load_options()` raises `OptionError` naming the option, the value and what is allowed; the command line
turns that into a message and exit status 2 before anything starts.

Nothing here is sized for one machine: the SLO, the autoscaler's capacity estimates, the queue, the
trace scale and the policy windows default to 0 ("derive it") and come from a measurement of one worker
on the machine the run is on (local/calibration.py, local/sizing.py). Setting one here overrides the
derived value.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping, Sequence

from inference.config import available_cpus

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRACE = REPO / "wl.txt"
MODES = ("demo", "compare")
POLICIES = ("slo", "hpa", "static")
# The comparison: name -> (policy, replicas it holds or HPA CPU target). The HPA targets are the two
# classic baselines, 50% and 90% CPU.
COMPARE_RUNS = ("static-min", "static-max", "hpa-50", "hpa-90", "slo")

# Quick mode: a slice of wl.txt with its step burst (seconds 115-204: 5 s of moderate load, the 45 s
# burst, 40 s of quiet in which the replicas come back down).
QUICK_SLICE = (115, 205)


class OptionError(ValueError):
    """A bad option; the message names the option, the value and what is allowed."""


def default_max_replicas(cpus: int | None = None) -> int:
    """One worker per CPU; above 2 CPUs one is left to the load tester, Prometheus and the autoscaler
    (together ~0.1-0.2 core at the demo's rates, which 2 cores absorb without reserving one)."""
    cpus = available_cpus() if cpus is None else cpus
    return cpus if cpus <= 2 else cpus - 1


def _opt(flag: str, unit: str, doc: str, env: str | None = None, lo: float | None = None, hi: float | None = None,
         choices: Sequence[str] | None = None, zero_means: str = "") -> dict:
    return {"flag": flag, "env": env, "unit": unit, "doc": doc, "lo": lo, "hi": hi,
            "choices": tuple(choices) if choices else None, "zero_means": zero_means}


@dataclass(frozen=True)
class Options:
    mode: str = field(default="demo", metadata=_opt(
        "mode", "", "`demo`: one run with one policy; `compare`: the same trace once per policy.", choices=MODES))
    quick: bool = field(default=False, metadata=_opt(
        "--quick", "", "replay a 90 s slice of the trace with its burst, with short policy windows (the "
        "end-to-end test uses it)."))
    verbose: bool = field(default=False, metadata=_opt(
        "-v", "", "also print every child's log on the console, prefixed with its name."))
    out: str = field(default="", metadata=_opt(
        "--out", "", "run directory.", zero_means="reports/<UTC time>"))
    service_port: int = field(default=8000, metadata=_opt(
        "--service-port", "port", "port of the inference service (gunicorn) on 127.0.0.1.", "SERVICE_PORT", 1, 65535))
    prometheus_port: int = field(default=9090, metadata=_opt(
        "--prometheus-port", "port", "port of Prometheus on 127.0.0.1.", "PROMETHEUS_PORT", 1, 65535))
    autoscaler_port: int = field(default=9100, metadata=_opt(
        "--autoscaler-port", "port", "port of the autoscaler's /metrics and /healthz on 127.0.0.1.",
        "AUTOSCALER_PORT", 1, 65535))
    policy: str = field(default="slo", metadata=_opt(
        "--policy", "", "policy of a demo run (compare runs all of them).", "POLICY", choices=POLICIES))
    policies: str = field(default=",".join(COMPARE_RUNS), metadata=_opt(
        "--policies", "", "comma-separated runs of a comparison, a subset of " + ", ".join(COMPARE_RUNS) + "."))
    min_replicas: int = field(default=1, metadata=_opt(
        "--min-replicas", "workers", "fewest workers; also the workers gunicorn starts with.", "MIN_REPLICAS",
        1, 64))
    max_replicas: int = field(default=0, metadata=_opt(
        "--max-replicas", "workers", "most workers.", "MAX_REPLICAS", 0, 64,
        zero_means="the CPUs available, less one above 2 CPUs (2 on a 2-core machine)"))
    hpa_target_cpu: float = field(default=0.5, metadata=_opt(
        "--hpa-target-cpu", "fraction", "CPU target of a demo run with --policy hpa.", "HPA_TARGET_CPU", 0.01, 1.0))
    slo_p95_ms: float = field(default=0.0, metadata=_opt(
        "--slo-ms", "ms", "latency objective: p95 of every 10 s window.", "SLO_P95_MS", 10, 60000,
        zero_means="derived from the measured batch time: 3 full batches + the unloaded latency"))
    worker_capacity_rps: float = field(default=0.0, metadata=_opt(
        "--worker-capacity-rps", "req/s", "saturation throughput of one worker; sizes the trace scale and the "
        "autoscaler's capacity estimate. Setting it skips the measurement.", "WORKER_CAPACITY_RPS", 0.5, 10000,
        zero_means="measured on this machine by the capacity probe (cached)"))
    recalibrate: bool = field(default=False, metadata=_opt(
        "--recalibrate", "", "measure one worker again instead of using the cached measurement (after the "
        "machine's load or the code changed)."))
    calibration_dir: str = field(default="", metadata=_opt(
        "--calibration-dir", "", "where measurements are cached, one file per machine and code version.",
        "CALIBRATION_DIR", zero_means=".cache/calibration in the repository"))
    repeat: int = field(default=2, metadata=_opt(
        "--repeat", "runs", "compare: runs of each policy, interleaved (A B A B), so the spread of every figure "
        "shows how far this machine's noise moves it.", "COMPARE_REPEAT", 1, 20))
    trace: str = field(default=str(DEFAULT_TRACE), metadata=_opt(
        "--trace", "", "workload trace, one line per second with the requests in that second.", "TRACE"))
    trace_scale: float = field(default=0.0, metadata=_opt(
        "--trace-scale", "factor", "multiply every rate of the trace by this.", "TRACE_SCALE", 0, 1000,
        zero_means="the trace's peak where it needs every worker (the quick slice's: two), from the measurement"))
    seed: int = field(default=0, metadata=_opt(
        "--seed", "", "seed of the Poisson arrivals; every run of a comparison uses the same one.", "SEED",
        0, 2**32 - 1))
    model_weights: str = field(default="random", metadata=_opt(
        "--model-weights", "", "the service's MODEL_WEIGHTS: random (no download; latency is the same), "
        "imagenet (needs torchvision's download or cache) or a .pth path.", "MODEL_WEIGHTS"))
    max_queue: int = field(default=0, metadata=_opt(
        "--max-queue", "images", "the service's MAX_QUEUE per worker.", "MAX_QUEUE", 8, 100000,
        zero_means="max(3 s, 1.5 worker start-ups) of one worker's measured work"))
    ready_timeout_s: float = field(default=180.0, metadata=_opt(
        "--ready-timeout", "s", "how long each part may take to become ready.", "READY_TIMEOUT_S", 5, 3600))

    # ------------------------------------------------------------------------------------------------
    def validate(self) -> "Options":
        for f in fields(self):
            _check(f, getattr(self, f.name))
        ports = {"--service-port": self.service_port, "--prometheus-port": self.prometheus_port,
                 "--autoscaler-port": self.autoscaler_port}
        if len(set(ports.values())) < len(ports):
            shown = ", ".join(f"{k}={v}" for k, v in ports.items())
            raise OptionError(f"ports must differ: {shown}")
        if self.max_replicas and self.max_replicas < self.min_replicas:
            raise OptionError(f"--max-replicas={self.max_replicas} must be >= --min-replicas={self.min_replicas}")
        unknown = [name for name in self.compare_runs if name not in COMPARE_RUNS]
        if unknown or not self.compare_runs:
            raise OptionError(f"--policies={self.policies!r}: expected a comma-separated subset of "
                              f"{', '.join(COMPARE_RUNS)}")
        if not Path(self.trace).is_file():
            raise OptionError(f"--trace={self.trace!r}: no such file")
        if self.model_weights not in ("random", "imagenet") and not Path(self.model_weights).is_file():
            raise OptionError(f"--model-weights={self.model_weights!r}: expected random, imagenet or an existing "
                              ".pth file")
        return self

    @property
    def max_replicas_effective(self) -> int:
        return self.max_replicas or max(default_max_replicas(), self.min_replicas)

    @property
    def compare_runs(self) -> list[str]:
        return [p.strip() for p in self.policies.split(",") if p.strip()]

    def run_dir(self) -> Path:
        if self.out:
            # Absolute: the children run in the repository, wherever this was started from.
            return Path(self.out).resolve()
        return REPO / "reports" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())

    def as_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["max_replicas_effective"] = self.max_replicas_effective
        return values


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check(f, value) -> None:
    meta = f.metadata
    name = meta["flag"]
    if meta["choices"] and value not in meta["choices"]:
        raise OptionError(f"{name}={value!r}: expected one of {', '.join(meta['choices'])}")
    if meta["zero_means"] and value == 0:
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool) and meta["lo"] is not None:
        if not math.isfinite(value) or not meta["lo"] <= value <= meta["hi"]:
            unit = f" {meta['unit']}" if meta["unit"] else ""
            raise OptionError(f"{name}={_fmt(value)}: expected {_fmt(meta['lo'])}..{_fmt(meta['hi'])}{unit}")


def _parse(f, raw: str, source: str):
    name = f.metadata["flag"]
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    text = raw.strip()
    try:
        if kind == "int":
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind == "float":
            return float(text)
    except ValueError:
        expected = "a whole number" if kind == "int" else "a number"
        raise OptionError(f"{name}={raw!r} (from {source}): expected {expected}") from None
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 itself; raise instead so one place prints and exits
        raise OptionError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m local", description=(
        "Run the elastic ResNet-18 stack on this machine (gunicorn workers as replicas, Prometheus, the "
        "autoscaler, the load tester replaying a trace) and write a report. Options with an environment "
        "variable can be set either way; flags win."))
    for f in fields(Options):
        meta = f.metadata
        default = f.default
        unit = f" [{meta['unit']}]" if meta["unit"] else ""
        zero = f" (0 or empty: {meta['zero_means']})" if meta["zero_means"] else ""
        env = f" Env: {meta['env']}." if meta["env"] else ""
        help_text = f"{meta['doc']}{unit} Default: {default!r}{zero}.{env}".replace("%", "%%")
        if f.name == "mode":
            parser.add_argument("mode", choices=MODES, help=help_text)
        elif f.type in (bool, "bool"):
            flags = ["-v", "--verbose"] if f.name == "verbose" else [meta["flag"]]
            parser.add_argument(*flags, dest=f.name, action="store_true", default=None, help=help_text)
        else:
            parser.add_argument(meta["flag"], dest=f.name, default=None, metavar=f.name.upper(), help=help_text)
    return parser


def load_options(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Options:
    """Defaults, then environment variables, then flags; validated. Raises OptionError."""
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(list(argv))
    values: dict[str, object] = {}
    for f in fields(Options):
        given = getattr(args, f.name)
        env = f.metadata["env"]
        if given is not None:
            values[f.name] = given if isinstance(given, bool) or f.name == "mode" else _parse(f, given, "command line")
        elif env and environ.get(env, "").strip():
            values[f.name] = _parse(f, environ[env], f"environment variable {env}")
    return replace(Options(), **values).validate()


def describe() -> list[tuple[str, str, str, str, str]]:
    """(flag, env var, default, unit, meaning) rows, for the README's option table."""
    rows = []
    for f in fields(Options):
        meta = f.metadata
        default = {"out": "`reports/<UTC time>`", "trace": "wl.txt (the repository's)"}.get(f.name, _fmt(f.default))
        if isinstance(f.default, bool):
            default = "on" if f.default else "off"
        if meta["zero_means"] and f.name not in ("out", "calibration_dir"):
            default = f"{default} = {meta['zero_means']}"
        elif f.name == "calibration_dir":
            default = meta["zero_means"]
        rows.append((meta["flag"], meta["env"] or "", default, meta["unit"], meta["doc"]))
    return rows


def options_table() -> list[str]:
    """The README's table of options, generated from the fields above (a test keeps the two equal)."""
    lines = ["| flag | env var | default | unit | meaning |", "|---|---|---|---|---|"]
    for flag, env, default, unit, doc in describe():
        lines.append(f"| `{flag}` | {f'`{env}`' if env else '-'} | {default} | {unit or '-'} | {doc} |")
    return lines
