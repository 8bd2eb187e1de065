"""The Deployment and its Service on simulated time: pods start, become ready, are removed and drain;
requests are spread over the endpoints. Implements the autoscaler's Scaler protocol (status, set_replicas).

What it models, and from what:
- a scale-up creates pods that become ready after a start-up drawn from the profile (a worker's
  measured start plus the pod overhead, seeded), and only then receive requests and are scraped;
- a scale-down removes, as the ReplicaSet controller ranks them, pods that are not ready yet first, then
  the most recently ready; a removed pod turns Terminating at once (no longer counted as ready), stays in
  the Service's endpoints for `removal_lag_s` (kube-proxy's propagation; the manifests' 5 s preStop pause
  keeps it serving meanwhile), then gets no new requests and finishes what it holds before it exits;
- routing: kube-proxy picks a random endpoint per connection, and the service disables keep-alive, so per
  request (`random`); `least-outstanding` is the option a request-aware balancer gives, modelled in its
  fluid limit: every `balance_step_s` the arrivals are split so each endpoint ends with the same number
  outstanding (water-filling over the counts at the step's start), evenly interleaved in time;
- requests that find no endpoint at all are lost (connection refused);
- workers sharing one machine's cores (`shared_core_slowdown` > 0: the local stack, where 1..2 gunicorn
  workers, the load tester and Prometheus run on the same 2 cores; 0, the default, is pods on cores of
  their own): every CONTENTION_STEP_S (an event of its own) each warm replica's forwards are stretched to
  1 + shared_core_slowdown x (the other warm replicas' model-thread busy share over the last step, plus 1
  for every pod still starting: a forking worker loads and warms up its model on the same cores).
  Measured in a recorded `make compare` (tests/fixtures/sim-calibration/, 2-core Zen 5;
  sim/calibration/forwards.py regroups the Server-Timing into batches): a forward overlapped by the other worker's
  took 1 + k x the overlapped share longer, k = 0.17-0.27 over the four runs with two workers (about 2,800
  to 3,200 overlapped batches each), and while a second worker started the serving one's forwards took
  1.15-1.44x (mean 1.24, 6 start-ups); alone next to the load tester and Prometheus, a worker ran at its
  one-worker speed (0.98-1.01x in the 5 s before each scale-up). The calibration uses 0.2 for both
  (sim/calibration/inputs.py).

`status()` reads like the scale subresource: current = spec.replicas, ready = ready pods that are not
terminating, live = every pod that exists (starting, ready, terminating).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from autoscaler.scaling import ScalerStatus
from sim.engine import LIFECYCLE, Engine
from sim.profile import Profile
from sim.scrape import TargetSample
from sim.replica import LOST, PENDING, Replica

ROUTINGS = ("random", "least-outstanding")
# How often the shared-core slowdown is re-estimated (the local Prometheus' scrape interval).
CONTENTION_STEP_S = 1.0

STARTING, READY, LEAVING, DRAINING, GONE = "starting", "ready", "leaving", "draining", "gone"


@dataclass(frozen=True)
class ClusterSettings:
    routing: str = "random"
    removal_lag_s: float = 1.0      # a terminating pod's time in the endpoints (kube-proxy's sync, ~1 s)
    balance_step_s: float = 1.0     # least-outstanding: how often the split is recomputed
    shared_core_slowdown: float = 0.0   # forwards stretch by this x the other workers' busy share (see above)


class Outcomes:
    """Every scheduled request's fate, in arrays (the run's compact record): code, latency, replica."""

    def __init__(self, n: int):
        self.code = np.full(n, PENDING, dtype=np.int8)
        self.latency_s = np.full(n, np.nan)
        self.replica = np.full(n, -1, dtype=np.int32)

    def record(self, request_ids: np.ndarray, codes: np.ndarray, latency_s: np.ndarray, replica_id: int) -> None:
        self.code[request_ids] = codes
        self.latency_s[request_ids] = latency_s
        self.replica[request_ids] = replica_id

    def lose(self, request_ids: np.ndarray) -> None:
        self.code[request_ids] = LOST


@dataclass
class Pod:
    id: int
    created_s: float
    state: str = STARTING
    ready_s: float | None = None
    removed_s: float | None = None
    gone_s: float | None = None
    replica: Replica | None = field(default=None, repr=False)


class Cluster:
    def __init__(self, profile: Profile, engine: Engine, arrivals_s: np.ndarray, outcomes: Outcomes,
                 settings: ClusterSettings = ClusterSettings(), initial_replicas: int = 1, seed: int = 0):
        if settings.routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, not {settings.routing!r}")
        if not settings.shared_core_slowdown >= 0:
            raise ValueError(f"shared_core_slowdown must be >= 0, not {settings.shared_core_slowdown!r}")
        self.profile = profile
        self.engine = engine
        self.settings = settings
        self.outcomes = outcomes
        self._arrivals_s = arrivals_s
        self._cursor = 0                                  # first arrival not yet routed
        self._routed_until_s = 0.0
        seeds = np.random.SeedSequence(seed).spawn(2)
        self._route_rng = np.random.default_rng(seeds[0])
        self._startup_rng = np.random.default_rng(seeds[1])
        self.pods: list[Pod] = []
        self.endpoints: list[Pod] = []                    # ready or leaving, in the order they got ready
        self.target = 0
        self.ready_timeline: list[list[float]] = []       # [t, warmed-up pods]: what replica-seconds integrate
        self.target_timeline: list[list[float]] = []      # [t, spec.replicas]
        self._contended_s = engine.now_s                  # the last shared-core step
        self._busy_at: dict[int, float] = {}              # each replica's busy seconds then
        if settings.shared_core_slowdown > 0:
            engine.every(CONTENTION_STEP_S, LIFECYCLE, self._contend, start_s=engine.now_s + CONTENTION_STEP_S)
        for _ in range(initial_replicas):
            pod = self._new_pod(0.0)
            self._make_ready(pod)
        self.target = initial_replicas
        self._note()

    # --- the Scaler protocol ------------------------------------------------------------------------
    def status(self) -> ScalerStatus:
        ready = sum(1 for p in self.pods if p.state == READY)
        live = sum(1 for p in self.pods if p.state != GONE)
        return ScalerStatus(current=self.target, ready=ready, live=live)

    def set_replicas(self, replicas: int) -> None:
        now = self.engine.now_s
        active = [p for p in self.pods if p.state in (STARTING, READY)]
        if replicas > len(active):
            delays = self.profile.startup_draws_s(self._startup_rng, replicas - len(active))
            for delay in delays:
                pod = self._new_pod(now)
                self.engine.at(now + float(delay), LIFECYCLE, lambda pod=pod: self._on_started(pod))
        elif replicas < len(active):
            starting = sorted((p for p in active if p.state == STARTING), key=lambda p: -p.created_s)
            ready = sorted((p for p in active if p.state == READY), key=lambda p: -p.ready_s)
            for pod in (starting + ready)[:len(active) - replicas]:
                self._remove(pod, now)
        self.target = replicas
        self._note()

    # --- lifecycle ------------------------------------------------------------------------------------
    def _new_pod(self, now_s: float) -> Pod:
        pod = Pod(id=len(self.pods), created_s=now_s)
        self.pods.append(pod)
        return pod

    def _make_ready(self, pod: Pod) -> None:
        now = self.engine.now_s
        pod.state, pod.ready_s = READY, now
        pod.replica = Replica(pod.id, self.profile, now, self.outcomes)
        self.endpoints.append(pod)

    def _on_started(self, pod: Pod) -> None:
        if pod.state != STARTING:   # removed while it was starting
            return
        self._make_ready(pod)
        self._note()

    def _remove(self, pod: Pod, now_s: float) -> None:
        pod.removed_s = now_s
        if pod.state == STARTING:
            pod.state, pod.gone_s = GONE, now_s
            return
        pod.state = LEAVING
        self.engine.at(now_s + self.settings.removal_lag_s, LIFECYCLE, lambda: self._on_left(pod))

    def _on_left(self, pod: Pod) -> None:
        self.endpoints.remove(pod)
        pod.state = DRAINING
        done_s = pod.replica.drain()
        self.engine.at(max(done_s, self.engine.now_s), LIFECYCLE, lambda: self._on_gone(pod))

    def _on_gone(self, pod: Pod) -> None:
        pod.state, pod.gone_s = GONE, self.engine.now_s
        self._note()

    def _note(self) -> None:
        t = self.engine.now_s
        warm = float(sum(1 for p in self.pods if p.state in (READY, LEAVING, DRAINING)))
        for timeline, value in ((self.ready_timeline, warm), (self.target_timeline, float(self.target))):
            if timeline and timeline[-1][0] == t:
                timeline[-1][1] = value
            elif not timeline or timeline[-1][1] != value:
                timeline.append([t, value])

    # --- requests ---------------------------------------------------------------------------------------
    def route_until(self, t_s: float) -> None:
        """Hand every arrival before t_s to the endpoints of now (they are fixed until the next event)."""
        if t_s <= self._routed_until_s:
            return
        if self.settings.routing == "least-outstanding":
            step = self.settings.balance_step_s
            t = self._routed_until_s
            last_s = float(self._arrivals_s[-1]) if len(self._arrivals_s) else t
            while t + step < t_s and t <= last_s:
                t = (math.floor(t / step) + 1) * step
                self._route_chunk(min(t, t_s))
        self._route_chunk(t_s)

    # --- sharing the machine's cores ------------------------------------------------------------------------
    def _contend(self) -> None:
        """Each warm replica's slowdown from what the others did since the last step (sharing the cores)."""
        t_s = self.engine.now_s
        warm = [p for p in self.pods if p.state in (READY, LEAVING, DRAINING)]
        starting = sum(1 for p in self.pods if p.state == STARTING)
        span = t_s - self._contended_s
        share = {}
        for pod in warm:
            pod.replica.advance(t_s)
            busy = pod.replica.busy_s(t_s)
            share[pod.id] = min(max((busy - self._busy_at.get(pod.id, 0.0)) / span, 0.0), 1.0)
            self._busy_at[pod.id] = busy
        total = sum(share.values()) + starting
        for pod in warm:
            pod.replica.set_slowdown(1.0 + self.settings.shared_core_slowdown * (total - share[pod.id]))
        self._contended_s = t_s

    def _route_chunk(self, t_s: float) -> None:
        begin = self._cursor
        end = int(np.searchsorted(self._arrivals_s, t_s, side="left"))
        start_s, self._routed_until_s = self._routed_until_s, t_s
        self._cursor = end
        if end <= begin:
            return
        ids = np.arange(begin, end, dtype=np.int64)
        targets = self.endpoints
        if not targets:
            self.outcomes.lose(ids)
            return
        if len(targets) == 1:
            targets[0].replica.add_arrivals(self._arrivals_s[begin:end], ids)
            return
        if self.settings.routing == "random":
            choice = self._route_rng.integers(0, len(targets), size=end - begin)
        else:
            choice = self._balanced(targets, end - begin, start_s)
        order = np.argsort(choice, kind="stable")
        bounds = np.searchsorted(choice[order], np.arange(len(targets) + 1))
        times = self._arrivals_s[begin:end]
        for k, pod in enumerate(targets):
            mine = order[bounds[k]:bounds[k + 1]]
            if len(mine):
                pod.replica.add_arrivals(times[mine], ids[mine])

    def _balanced(self, targets: list[Pod], n: int, at_s: float) -> np.ndarray:
        """Endpoint per arrival: water-filling of the outstanding counts, evenly interleaved."""
        for pod in targets:
            pod.replica.advance(at_s)
        outstanding = np.array([pod.replica.outstanding(at_s) for pod in targets], dtype=np.float64)
        share = _water_fill(outstanding, n)
        who = np.repeat(np.arange(len(targets)), share)
        rank = np.concatenate([(np.arange(k) + 0.5) / k for k in share if k]) if n else np.empty(0)
        return who[np.argsort(rank, kind="stable")]

    # --- Prometheus' view ------------------------------------------------------------------------------
    def scrape(self, t_s: float) -> dict[str, TargetSample]:
        """Every pod that serves /metrics now (warmed up, until it exits), keyed by a stable target id."""
        out = {}
        for pod in self.pods:
            if pod.state in (READY, LEAVING, DRAINING):
                pod.replica.advance(t_s)
                out[f"pod-{pod.id}"] = pod.replica.sample(t_s)
        return out

    def finish(self) -> None:
        """After the last arrival: every replica finishes what it holds, so every request has its outcome."""
        for pod in self.pods:
            if pod.replica is not None:
                pod.replica.drain()


def _water_fill(levels: np.ndarray, n: int) -> np.ndarray:
    """Integers summing to n that raise the lowest levels first, so levels + share end as equal as can be."""
    order = np.argsort(levels, kind="stable")
    lv = levels[order]
    k = len(lv)
    # The water level: the largest L with sum(max(0, L - lv)) <= n, found over the sorted levels.
    csum = np.cumsum(lv)
    level = lv[-1] + (n - (lv[-1] * k - csum[-1])) / k
    for j in range(1, k + 1):
        need = lv[j - 1] * j - csum[j - 1]   # raising the lowest j to lv[j-1]
        if need > n:
            j -= 1
            level = (n + csum[j - 1]) / j
            break
    share_sorted = np.maximum(np.floor(level - lv), 0).astype(np.int64)
    rest = n - int(share_sorted.sum())
    # Whole requests left over go to the lowest levels after the split.
    if rest > 0:
        after = lv + share_sorted
        for idx in np.argsort(after, kind="stable")[:rest]:
            share_sorted[idx] += 1
    share = np.empty(k, dtype=np.int64)
    share[order] = share_sorted
    return share
