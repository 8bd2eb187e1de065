"""One simulated run of one policy: the schedule, the cluster, Prometheus and the autoscaler's own loop.

Arrivals come from loadtester.schedule.build_schedule (the load tester's code: same seed, same requests).
Every scrape interval (2 s, prometheus/prometheus.yml) the replicas are scraped into sim/prometheus.py's
emulator; every POLL_INTERVAL_S the real `autoscaler.loop.Loop.step()` runs on the simulated clock, with
the emulator behind `autoscaler.collector.PrometheusSource` as its metrics and the simulated cluster as
its scaler, so `decide()` and every policy are the production code. Its JSON decision lines are kept in
memory. The oracle (sim/oracle.py) scales the cluster itself, once a second.

Run names and what each sets are planning/runs.py's, as in the local comparison.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from autoscaler.config import Config
from autoscaler.loop import Loop
from comparison.events import decision_lines
from loadtester.schedule import Schedule
from planning.runs import ORACLE, check_run_name, run_spec
from sim import oracle
from sim.cluster import Cluster, ClusterSettings, Outcomes
from sim.engine import POLL, SCRAPE, Engine
from sim.profile import Profile
from sim.prometheus import PromEmulator
from sim.results import request_table, summarize_run

# The decision log's wall clock: simulated second 0 is this instant (any fixed time would do).
EPOCH_UNIX_S = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
ORACLE_STEP_S = 1.0
# The in-cluster Prometheus' scrape interval (prometheus/prometheus.yml, global.scrape_interval).
DEFAULT_SCRAPE_INTERVAL_S = 2.0
# What the cluster holds when the replay starts. START_MIN: MIN_REPLICAS, as a fresh deployment and the
# local stack start (the oracle still starts with what its plan asks for). START_FIRST_NEED: every run
# starts with the oracle's first count, the replicas the trace's first seconds need: a deployment that
# already serves the traffic, so a comparison of policies is not decided by a cold start none of them chose.
START_MIN = "min"
START_FIRST_NEED = "first-need"
STARTS = (START_MIN, START_FIRST_NEED)


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs besides the schedule and the policy's name."""

    profile: Profile
    config: Config                       # the autoscaler's settings (environment + overrides), any policy
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    seed: int = 0
    start: str = START_MIN               # the replicas every run starts with: START_MIN or START_FIRST_NEED


def policy_config(name: str, base: Config) -> Config:
    """The autoscaler settings of a named run (planning/runs.py) between `base`'s bounds; the oracle keeps
    `base` (its planner scales the cluster, not the autoscaler)."""
    spec = run_spec(check_run_name(name), base.min_replicas, base.max_replicas)
    if spec.policy == ORACLE:
        return base.validate()
    config = replace(base, policy=spec.policy, min_replicas=spec.min_replicas, max_replicas=spec.max_replicas)
    if spec.hpa_target_cpu is not None:
        config = replace(config, hpa_target_cpu=spec.hpa_target_cpu)
    return config.validate()


@dataclass
class RunResult:
    policy: str
    row: dict                          # the comparison's figures (comparison.table.row_of)
    result: dict                       # comparison.summary.run_figures: what the plots and reports read
    errors: dict                       # failures by kind
    decisions: list[dict]              # the autoscaler's decision lines (the oracle's, in their shape)
    events: list[dict]                 # applied scale events
    windows: list[dict]                # per 10 s window: requests, p95, SLO verdict
    ready_timeline: list[list[float]]  # [t, warmed-up replicas]
    target_timeline: list[list[float]]
    code: np.ndarray                   # per request: sim.replica outcome code
    latency_s: np.ndarray              # per request (NaN when lost)
    replica: np.ndarray                # per request: the pod that answered (-1 when lost)


class _Source:
    """The autoscaler's MetricsSource: the emulated Prometheus evaluated at the simulated now."""

    def __init__(self, emulator: PromEmulator, clock):
        self.emulator, self.clock = emulator, clock

    def collect(self):
        return self.emulator.collect(self.clock())


def run_policy(name: str, schedule: Schedule, settings: RunSettings, planned: np.ndarray | None = None) -> RunResult:
    """One run: the named policy through the autoscaler's loop, or, for the oracle or when `planned` (the
    replicas to ask for during each ORACLE_STEP_S, e.g. sim.oracle.lagged_plan's) is given, that plan
    applied to the cluster directly, once a step (then `name` only labels the run)."""
    config = policy_config(name, settings.config) if planned is None else settings.config.validate()
    engine = Engine()
    clock = engine.clock
    duration_s = schedule.duration_s
    outcomes = Outcomes(len(schedule))
    desired = _oracle_plan(schedule, settings, config) if name == ORACLE and planned is None else planned
    if desired is not None:
        initial = int(desired[0])
    elif settings.start == START_FIRST_NEED:
        initial = min(max(int(_oracle_plan(schedule, settings, config)[0]), config.min_replicas), config.max_replicas)
    else:
        initial = config.min_replicas
    cluster = Cluster(settings.profile, engine, schedule.offsets_s, outcomes, settings.cluster, initial,
                      seed=settings.seed)
    decisions: list[dict] = []
    wall = lambda: EPOCH_UNIX_S + clock()  # noqa: E731
    if desired is not None:
        def step() -> None:
            current = cluster.target
            want = int(desired[min(int(clock() / ORACLE_STEP_S), len(desired) - 1)])
            if want != current:
                cluster.set_replicas(want)
                decisions.append({"time": _iso(wall()), "event": "decision", "policy": name, "current": current,
                                  "desired": want, "direction": "up" if want > current else "down"})
        engine.every(ORACLE_STEP_S, POLL, step, until_s=duration_s)
        log = None
    else:
        emulator = PromEmulator(settings.scrape_interval_s, config.rate_window_s, config=config)
        engine.every(settings.scrape_interval_s, SCRAPE, lambda: emulator.scrape(clock(), cluster.scrape(clock())),
                     until_s=duration_s)
        log = io.StringIO()
        loop = Loop(config, _Source(emulator, clock), cluster, out=log, clock=clock, wall=wall)
        engine.every(config.poll_interval_s, POLL, loop.step, until_s=duration_s)
    engine.run(duration_s, cluster.route_until)
    cluster.route_until(float("inf"))   # arrivals at the very end (a duration cut) still get an answer
    cluster.finish()
    if log is not None:
        decisions = decision_lines(log.getvalue().splitlines())
    ready = cluster.ready_timeline + [[duration_s, cluster.ready_timeline[-1][1]]]
    target = cluster.target_timeline + [[duration_s, float(cluster.target)]]
    table = request_table(schedule.offsets_s, schedule.trace_second, outcomes.code, outcomes.latency_s)
    summary = summarize_run(name, ORACLE if desired is not None else config.policy, table, decisions,
                            {"workers": ready, "desired": target}, config.slo_p95_ms, duration_s, EPOCH_UNIX_S)
    return RunResult(policy=name, row=summary["row"], result=summary, errors=summary["requests"]["errors"],
                     decisions=decisions, events=summary["events"], windows=summary["windows"], ready_timeline=ready,
                     target_timeline=target, code=outcomes.code, latency_s=outcomes.latency_s,
                     replica=outcomes.replica)


def arrivals_per_step(schedule: Schedule) -> np.ndarray:
    """The schedule's arrival rate in each ORACLE_STEP_S (what a planner of sim/oracle.py reads)."""
    bins = max(1, int(np.ceil(schedule.duration_s / ORACLE_STEP_S)))
    return np.bincount(np.minimum((schedule.offsets_s / ORACLE_STEP_S).astype(np.int64), bins - 1),
                       minlength=bins) / ORACLE_STEP_S


def _oracle_plan(schedule: Schedule, settings: RunSettings, config: Config) -> np.ndarray:
    return oracle.plan(arrivals_per_step(schedule), settings.profile.capacity_within_slo_rps,
                       settings.profile.startup_bound_s(), config.min_replicas, config.max_replicas)


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
