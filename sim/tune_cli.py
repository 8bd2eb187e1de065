"""`python -m sim tune --trace FILE --slo-ms MS [...]`: the slo policy's settings tuned to a trace, checked on
the part of it they were not tuned on, against hpa and kpa tuned the same way and the oracle.

The replay is `python -m sim`'s (sim/cli.py prepares it from the same flags: sizing, profile, environment);
what is searched, how a run is scored and which setting wins are sim/tune.py's. Every candidate runs in this
process (sim/run.py), one after the other. Prints one line per trial, the held-out table and goals, and the
settings as the KEY=VALUE lines the capacity probe's --env-file writes (loadtester/capacity_report.py); with
--out also DIR/autoscaler.env (those lines: kustomize's configMapGenerator `envs:`, as k8s/kustomization.yaml
merges k8s/autoscaler-measured.env, and `env $(cat ...)` read them) and DIR/tune.json (every trial and
score). Bad input exits 2 with a message naming the flag.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import MISSING, dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence, TextIO

from autoscaler.config import Config, load_config
from loadtester.capacity_report import env_file_text
from settings import add_flags, format_number, read_values, setting, specs
from sim import cli
from sim.cli import SimOptions, UsageError
from sim.run import START_FIRST_NEED, RunSettings, run_policy
from sim.tune import (HPA_KNOBS, KPA_KNOBS, SLO_KNOBS, Knob, Part, Score, coordinate_search, held_out_goals,
                      score_span, split_at_s, split_problem, split_schedule)
from sim.tune_report import ENV_FILE, JSON_FILE, report_lines, tune_json

PROG = "python -m sim tune"


def _as_sim(name: str, **changes):
    """A field declared as `python -m sim`'s `name` is (flag, type, range), with `changes`."""
    f = SimOptions.__dataclass_fields__[name]
    declared = {**f.metadata, **changes}
    return setting(declared.pop("default", f.default), **declared)


@dataclass(frozen=True)
class TuneOptions:
    """The flags of `python -m sim tune`; those of a `python -m sim` replay are declared as its."""

    trace: str = _as_sim("trace")
    slo_ms: float = _as_sim("slo_ms", default=MISSING,
                            doc="the p95 latency SLO the 10 s windows are judged by (SLO_P95_MS of the result)")
    profile: str | None = _as_sim("profile")
    peak_replicas: int | None = _as_sim("peak_replicas")
    scale: float | None = _as_sim("scale")
    max_replicas: int | None = _as_sim("max_replicas")
    speedup: float = _as_sim("speedup")
    coarse_s: int | None = _as_sim("coarse_s")
    arrivals: str = _as_sim("arrivals")
    seed: int = _as_sim("seed")
    start: str = _as_sim("start", default=START_FIRST_NEED, doc=(
        "the replicas each part's replay starts with: first-need (what its first seconds need, as make simulate "
        "starts: a deployment already serving; the held-out part then joins the traffic running) or min "
        "(MIN_REPLICAS, a fresh deployment)"))
    tune_fraction: float = setting(0.5, flag="--tune-fraction", metavar="F", lo=0.05, hi=0.95, doc=(
        "tune on the first F of the replay and report on the rest (split at a 10 s window boundary)"))
    warmup_s: float = setting(120.0, flag="--warmup-s", metavar="S", unit="s", lo=0, doc=(
        "the first S seconds of each part's replay are not scored: the tuned part starts the trace, the held-out "
        "part is replayed from S seconds before the split"))
    out: str | None = setting(None, flag="--out", metavar="DIR", doc=(
        f"also write DIR/{ENV_FILE} (the settings as KEY=VALUE lines) and DIR/{JSON_FILE} (every trial)"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=(
        "Tune the slo policy's settings to a trace: search them on its first part for the fewest replica-seconds "
        "that keep >= 99% of 10 s windows within the SLO, and report them on the rest against hpa and kpa tuned "
        "the same way and the oracle."))
    add_flags(parser, TuneOptions)  # values stay text: read_values() converts and checks them
    return parser


def sim_argv(options: TuneOptions) -> list[str]:
    """The `python -m sim` flags that replay what is tuned (all of the trace); not where its files go."""
    shared = {spec.name: spec for spec in specs(SimOptions) if spec.name != "out"}
    argv = []
    for spec in specs(TuneOptions):
        value = getattr(options, spec.name)
        if spec.name in shared and value is not None and value != shared[spec.name].default:
            argv += [shared[spec.name].flag, format_number(value)]
    return argv


def prepare(options: TuneOptions, environ: Mapping[str, str]) -> dict:
    """The replay and its split, checked before anything runs. Raises UsageError."""
    out = Path(options.out) if options.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out={options.out}: exists and is not a directory")
    argv = sim_argv(options)
    plan = cli.prepare(cli.read_options(argv + ["--policies", "slo"]), environ)
    schedule = plan["schedule"]
    split_s = split_at_s(schedule.duration_s, options.tune_fraction)
    problem = split_problem(schedule.duration_s, split_s, options.warmup_s)
    if problem:
        raise UsageError(f"--tune-fraction={options.tune_fraction:g} with --warmup-s={options.warmup_s:g}: {problem}")
    tuned, held = split_schedule(schedule, split_s, options.warmup_s)
    return {"argv": argv, "plan": plan, "split_s": split_s, "tuned": tuned, "held": held,
            "out": out}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    parser = build_parser()
    args = cli.parse_args(parser, argv)
    if isinstance(args, int):
        return args
    try:
        options = TuneOptions(**read_values(TuneOptions, {}, args, error=UsageError))
        job = prepare(options, os.environ if environ is None else environ)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=stderr)
        return 2
    started = time.perf_counter()
    outcome = tune(job, stdout)
    outcome["wall_s"] = round(time.perf_counter() - started, 1)
    for line in report_lines(outcome):
        print(line, file=stdout)
    if job["out"] is not None:
        job["out"].mkdir(parents=True, exist_ok=True)
        (job["out"] / ENV_FILE).write_text(env_file_text(outcome["env"]))
        (job["out"] / JSON_FILE).write_text(json.dumps(tune_json(outcome), indent=1) + "\n")
        print(f"tune: wrote {job['out'] / ENV_FILE} and {job['out'] / JSON_FILE}", file=stdout)
        print(f"tune: replay it: env $(cat {job['out'] / ENV_FILE}) python -m sim {' '.join(job['argv'])} "
              f"--policies slo,oracle --out {job['out'] / 'replay'}", file=stdout)
    print(f"tune: {outcome['wall_s']:g} s", file=stdout)
    return 0


def tune(job: dict, stdout: TextIO) -> dict:
    """Search each policy's knobs on the tuned part, then score the winners on the held-out part."""
    plan, tuned, held = job["plan"], job["tuned"], job["held"]
    settings: RunSettings = plan["settings"]
    base = settings.config
    print(f"tune: {plan['trace']['path']} x{plan['scale']:g}, {len(plan['schedule'])} requests over "
          f"{plan['schedule'].duration_s:g} s; replicas {base.min_replicas}..{base.max_replicas}, SLO p95 "
          f"{base.slo_p95_ms:g} ms; tuned on [0, {job['split_s']:g}) s (scored from {tuned.score_from_s:g} s), "
          f"reported on [{job['split_s']:g}, {plan['schedule'].duration_s:g}) s", file=stdout, flush=True)
    searches = {}
    for policy, knobs in (("slo", SLO_KNOBS), ("hpa", HPA_KNOBS), ("kpa", KPA_KNOBS)):
        def evaluate(values: dict, policy=policy, knobs=knobs) -> Score:
            return _timed_score(policy, knobs, values, tuned, settings, stdout, "tuned part")
        best, trials = coordinate_search({k.name: getattr(base, k.name) for k in knobs}, knobs, evaluate)
        searches[policy] = {"knobs": knobs, "best": best, "trials": trials}
    held_scores: dict[str, Score] = {}
    for policy in ("slo", "hpa", "kpa"):
        values = dict(searches[policy]["best"].settings)
        held_scores[policy] = _timed_score(policy, searches[policy]["knobs"], values, held, settings, stdout,
                                           "held out")
    start = {k.name: float(getattr(base, k.name)) for k in SLO_KNOBS}
    if start == dict(searches["slo"]["best"].settings):
        held_scores["slo-current"] = held_scores["slo"]
    else:
        held_scores["slo-current"] = _timed_score("slo", SLO_KNOBS, start, held, settings, stdout, "held out")
    held_scores["oracle"] = _timed_score("oracle", (), {}, held, settings, stdout, "held out")
    slo_values = dict(searches["slo"]["best"].settings)
    return {"plan": plan, "split_s": job["split_s"], "tuned": tuned, "held": held, "searches": searches,
            "start": start, "held_out": held_scores, "goals": held_out_goals(held_scores),
            "env": env_values(base, slo_values)}


def run_name(policy: str, values: Mapping[str, float]) -> str:
    """The planning/runs.py name of a candidate (hpa's target is part of its name)."""
    return f"hpa-{round(values['hpa_target_cpu'] * 100)}" if policy == "hpa" else policy


def _timed_score(policy: str, knobs: Sequence[Knob], values: Mapping[str, float], part: Part,
                 settings: RunSettings, stdout: TextIO, where: str) -> Score:
    started = time.perf_counter()
    config = replace(settings.config, **values)
    result = run_policy(run_name(policy, values), part.schedule, replace(settings, config=config))
    score = score_span(result.windows, result.ready_timeline, part.score_from_s, part.score_to_s)
    shown = " ".join(f"{k.key}={format_number(values[k.name])}" for k in knobs) or "-"
    print(f"tune: {where}: {policy} {shown}: {score.text()} ({time.perf_counter() - started:.1f} s)", file=stdout,
          flush=True)
    return score


def env_values(base: Config, tuned: Mapping[str, float]) -> dict[str, str]:
    """The autoscaler's variables for the tuned slo policy: the policy, its bounds and SLO, the per-replica
    figures the replay assumed (the keys the capacity probe's --env-file writes) and the tuned knobs. Loaded
    back through the autoscaler's own validation, so a file it writes is one the autoscaler starts with."""
    config = replace(base, policy="slo", **tuned).validate()
    names = ("policy", "min_replicas", "max_replicas", "slo_p95_ms", "capacity_rps_per_replica",
             "target_inflight_per_replica", *tuned)
    env_of = {spec.name: spec.env for spec in specs(Config)}
    values = {env_of[name]: format_number(getattr(config, name)) for name in names}
    load_config([], values)
    return values


if __name__ == "__main__":
    raise SystemExit(main())
