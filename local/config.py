"""Every option of the local stack, its default, unit and range, in one dataclass.

Each option is a command-line flag and, where it makes sense, an environment variable (flags win).
`load_options()` raises `OptionError` naming the option, the value and what is allowed; the command line
turns that into a message and exit status 2 before anything starts. Reading, parsing, the per-field
checks and their wording are the shared ones of settings/; this module keeps the fields and the checks
between them.

Nothing here is sized for one machine: the SLO, the autoscaler's capacity estimates, the queue, the
trace scale and the policy windows default to 0 ("derive it") and come from a measurement of one worker
on the machine the run is on (local/calibration.py, planning/sizing.py). Setting one here overrides the
derived value.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping, Sequence

from autoscaler.policy_names import POLICY_NAMES
from inference.config import available_cpus
from planning.runs import LOCAL_COMPARE_RUNS, LOCAL_RUN_CHOICES
from settings import SettingError, add_flags, check_fields, read_values, setting, shown_default, specs

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRACE = REPO / "wl.txt"
MODES = ("demo", "compare")
# The comparison's runs (planning/runs.py says what each sets). The HPA targets are the two classic
# baselines, 50% and 90% CPU. kpa (Knative's KPA, its upstream windows) is a run to ask for: the default
# comparison is already about an hour.
COMPARE_RUNS = LOCAL_COMPARE_RUNS
COMPARE_CHOICES = LOCAL_RUN_CHOICES

# Quick mode: a slice of wl.txt with its step burst (seconds 115-204: 5 s of moderate load, the 45 s
# burst, 40 s of quiet in which the replicas come back down).
QUICK_SLICE = (115, 205)


class OptionError(SettingError):
    """A bad option; the message names the option, the value and what is allowed."""


def default_max_replicas(cpus: int | None = None) -> int:
    """One worker per CPU; above 2 CPUs one is left to the load tester, Prometheus and the autoscaler
    (together ~0.1-0.2 core at the demo's rates, which 2 cores absorb without reserving one)."""
    cpus = available_cpus() if cpus is None else cpus
    return cpus if cpus <= 2 else cpus - 1


@dataclass(frozen=True)
class Options:
    mode: str = setting("demo", flag="mode", choices=MODES, doc=(
        "`demo`: one run with one policy; `compare`: the same trace once per policy."))
    quick: bool = setting(False, flag="--quick", switch=True, doc=(
        "replay a 90 s slice of the trace with its burst, with short policy windows (the end-to-end test uses it)."))
    verbose: bool = setting(False, flag="-v", flag_aliases=("--verbose",), switch=True, doc=(
        "also print every child's log on the console, prefixed with its name."))
    out: str = setting("", flag="--out", zero_means="reports/<UTC time>", default_text="`reports/<UTC time>`",
                       doc="run directory.")
    service_port: int = setting(8000, flag="--service-port", env="SERVICE_PORT", unit="port", lo=1, hi=65535,
                                doc="port of the inference service (gunicorn) on 127.0.0.1.")
    prometheus_port: int = setting(9090, flag="--prometheus-port", env="PROMETHEUS_PORT", unit="port", lo=1,
                                   hi=65535, doc="port of Prometheus on 127.0.0.1.")
    autoscaler_port: int = setting(9100, flag="--autoscaler-port", env="AUTOSCALER_PORT", unit="port", lo=1,
                                   hi=65535, doc="port of the autoscaler's /metrics and /healthz on 127.0.0.1.")
    policy: str = setting("slo", flag="--policy", env="POLICY", choices=POLICY_NAMES, doc=(
        "policy of a demo run (compare runs all of them)."))
    policies: str = setting(",".join(COMPARE_RUNS), flag="--policies", doc=(
        "comma-separated runs of a comparison, a subset of " + ", ".join(COMPARE_CHOICES) + "."))
    min_replicas: int = setting(1, flag="--min-replicas", env="MIN_REPLICAS", unit="workers", lo=1, hi=64, doc=(
        "fewest workers; also the workers gunicorn starts with."))
    max_replicas: int = setting(0, flag="--max-replicas", env="MAX_REPLICAS", unit="workers", lo=0, hi=64,
                                zero_means="the CPUs available, less one above 2 CPUs (2 on a 2-core machine)",
                                doc="most workers.")
    hpa_target_cpu: float = setting(0.5, flag="--hpa-target-cpu", env="HPA_TARGET_CPU", unit="fraction", lo=0.01,
                                    hi=1.0, doc="CPU target of a demo run with --policy hpa.")
    slo_p95_ms: float = setting(0.0, flag="--slo-ms", env="SLO_P95_MS", unit="ms", lo=10, hi=60000,
                                zero_means="derived from the measured batch time: 3 full batches + the unloaded "
                                           "latency",
                                doc="latency objective: p95 of every 10 s window.")
    worker_capacity_rps: float = setting(
        0.0, flag="--worker-capacity-rps", env="WORKER_CAPACITY_RPS", unit="req/s", lo=0.5, hi=10000,
        zero_means="measured on this machine by the capacity probe (cached)", doc=(
            "saturation throughput of one worker; sizes the trace scale and the autoscaler's capacity "
            "estimate. Setting it skips the measurement."))
    recalibrate: bool = setting(False, flag="--recalibrate", switch=True, doc=(
        "measure one worker again instead of using the cached measurement (after the machine's load or the "
        "code changed)."))
    calibration_dir: str = setting("", flag="--calibration-dir", env="CALIBRATION_DIR",
                                   zero_means=".cache/calibration in the repository", doc=(
                                       "where measurements are cached, one file per machine and code version."))
    repeat: int = setting(2, flag="--repeat", env="COMPARE_REPEAT", unit="runs", lo=1, hi=20, doc=(
        "compare: runs of each policy, interleaved (A B A B), so the spread of every figure shows how far this "
        "machine's noise moves it."))
    trace: str = setting(str(DEFAULT_TRACE), flag="--trace", env="TRACE", default_text="wl.txt (the repository's)",
                         doc="workload trace, one line per second with the requests in that second.")
    trace_scale: float = setting(0.0, flag="--trace-scale", env="TRACE_SCALE", unit="factor", lo=0, hi=1000,
                                 zero_means="the trace's peak where it needs every worker (the quick slice's: "
                                            "two), from the measurement",
                                 doc="multiply every rate of the trace by this.")
    seed: int = setting(0, flag="--seed", env="SEED", lo=0, hi=2**32 - 1, doc=(
        "seed of the Poisson arrivals; every run of a comparison uses the same one."))
    model_weights: str = setting("random", flag="--model-weights", env="MODEL_WEIGHTS", doc=(
        "the service's MODEL_WEIGHTS: random (no download; latency is the same), imagenet (needs torchvision's "
        "download or cache) or a .pth path."))
    max_queue: int = setting(0, flag="--max-queue", env="MAX_QUEUE", unit="images", lo=8, hi=100000,
                             zero_means="max(3 s, 1.5 worker start-ups) of one worker's measured work, as "
                                        "the service's MAX_QUEUE_WAIT_MS and as this count",
                             doc="the service's MAX_QUEUE per worker; given, the service admits by this count "
                                 "alone (MAX_QUEUE_WAIT_MS=0).")
    ready_timeout_s: float = setting(180.0, flag="--ready-timeout", env="READY_TIMEOUT_S", unit="s", lo=5,
                                     hi=3600, doc="how long each part may take to become ready.")

    # ------------------------------------------------------------------------------------------------
    def validate(self) -> "Options":
        """A copy with every value converted to its field's type and checked; raises OptionError."""
        checked = replace(self, **check_fields(self, OptionError))
        checked._check_relations()
        return checked

    def _check_relations(self) -> None:
        ports = {"--service-port": self.service_port, "--prometheus-port": self.prometheus_port,
                 "--autoscaler-port": self.autoscaler_port}
        if len(set(ports.values())) < len(ports):
            shown = ", ".join(f"{k}={v}" for k, v in ports.items())
            raise OptionError(f"ports must differ: {shown}")
        if self.max_replicas and self.max_replicas < self.min_replicas:
            raise OptionError(f"--max-replicas={self.max_replicas} must be >= --min-replicas={self.min_replicas}")
        unknown = [name for name in self.compare_runs if name not in COMPARE_CHOICES]
        if unknown or not self.compare_runs:
            raise OptionError(f"--policies={self.policies!r}: expected a comma-separated subset of "
                              f"{', '.join(COMPARE_CHOICES)}")
        if len(set(self.compare_runs)) < len(self.compare_runs):
            raise OptionError(f"--policies={self.policies!r}: a run is named twice")
        if not Path(self.trace).is_file():
            raise OptionError(f"--trace={self.trace!r}: no such file")
        if self.model_weights not in ("random", "imagenet") and not Path(self.model_weights).is_file():
            raise OptionError(f"--model-weights={self.model_weights!r}: expected random, imagenet or an existing "
                              ".pth file")

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 itself; raise instead so one place prints and exits
        raise OptionError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m local", description=(
        "Run the elastic ResNet-18 stack on this machine (gunicorn workers as replicas, Prometheus, the "
        "autoscaler, the load tester replaying a trace) and write a report. Options with an environment "
        "variable can be set either way; flags win."))
    add_flags(parser, Options)
    return parser


def load_options(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Options:
    """Defaults, then environment variables, then flags; validated. Raises OptionError."""
    args = build_parser().parse_args(list(argv))
    values = read_values(Options, environ, args, blank_env_is_unset=True, error=OptionError)
    return replace(Options(), **values).validate()


def describe() -> list[tuple[str, str, str, str, str]]:
    """(flag, env var, default, unit, meaning) rows, for the docs' option table."""
    return [(spec.flag, spec.env or "", shown_default(spec), spec.unit, spec.doc) for spec in specs(Options)]


def options_table() -> list[str]:
    """The docs' table of options (docs/local-stack.md), from the fields above; tests/test_docs.py keeps the
    two equal."""
    lines = ["| flag | env var | default | unit | meaning |", "|---|---|---|---|---|"]
    for flag, env, default, unit, doc in describe():
        lines.append(f"| `{flag}` | {f'`{env}`' if env else '-'} | {default} | {unit or '-'} | {doc} |")
    return lines
