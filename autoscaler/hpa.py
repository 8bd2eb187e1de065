"""The `hpa` policy: the Kubernetes HorizontalPodAutoscaler (autoscaling/v2) algorithm on CPU.

A port, for like-for-like comparisons where a real HPA cannot run (the local stack, the tests), of
kubernetes/kubernetes pkg/controller/podautoscaler:
- replica_calculator.go GetResourceReplicas: usage ratio = current utilization / target utilization,
  utilization in whole percent of the pods' requests (integer division, as upstream); no change
  within the tolerance (0.1); desired = ceil(ratio x ready pods); when unready pods exist and the
  ratio says scale up, they are counted as using 0% and the ratio is recomputed, and the result is
  dropped if it falls within tolerance or flips the direction ("missing metrics" rules);
- horizontal.go reconcileAutoscaler: spec replicas 0 disables scaling; above max -> max, below
  min -> min, without stabilization;
- horizontal.go stabilizeRecommendationWithBehaviors: the recommendation is clamped between the
  minimum of the recommendations in the scale-up window (default 0 s) and the maximum of those in
  the scale-down window (default 300 s);
- horizontal.go convertDesiredReplicasWithBehaviorRate + calculateScaleUpLimitWithScalingRules /
  calculateScaleDownLimitWithBehaviors with the default behavior: scale up by max(100%, 4 pods)
  per 15 s, scale down by 100% per 15 s, counted from the replicas at the start of the period.

The observation is aggregated (Prometheus' sum of worker CPU), not per pod: the CPU of the ready pods
is the sum over all of them, and pods that exist but are not ready are the "ignored" pods; the
aggregate cannot show pods without a metric, so the loop passes none (the rule is ported and tested). A replica
requests one CPU (the manifests' request), so utilization = CPU cores / ready replicas.

What horizontal.go keeps per HPA between syncs (recommendations, scale events) is its own `HpaState`,
carried in `State.policy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .config import Config
from .decision import Decision, Observation, State


SCALE_UP_PODS = 4        # default behavior.scaleUp.policies: {type: Pods, value: 4, periodSeconds: 15}
SCALE_UP_PERCENT = 100   # default behavior.scaleUp.policies: {type: Percent, value: 100, periodSeconds: 15}
SCALE_DOWN_PERCENT = 100  # default behavior.scaleDown.policies: {type: Percent, value: 100, periodSeconds: 15}
REQUEST_MILLICORES = 1000  # each replica requests one core


@dataclass(frozen=True)
class HpaState:
    """What the hpa policy remembers between polls (in `State.policy`): (t_s, replicas) pairs."""

    recommendations: tuple[tuple[float, int], ...] = ()  # for the scale-down stabilization window
    scale_up_events: tuple[tuple[float, int], ...] = ()   # replicas added, for the scale-up rate limit
    scale_down_events: tuple[tuple[float, int], ...] = ()  # replicas removed, for the scale-down rate limit


def utilization_ratio(cpu_millicores: int, pods: int, target_percent: int) -> tuple[float, int]:
    """metricsclient.GetResourceUtilizationRatio: (ratio, utilization in whole percent)."""
    utilization = (cpu_millicores * 100) // (pods * REQUEST_MILLICORES)
    return utilization / target_percent, utilization


def calculate_replicas(current: int, ready: int, unready: int, cpu_cores: float, target_cpu: float,
                       tolerance: float, missing: int = 0) -> int:
    """GetResourceReplicas for a CPU target.

    `ready`: pods with a metric that count; `unready`: pods ignored because they are not ready yet;
    `missing`: pods that exist but reported no metric. `cpu_cores` is the usage of the ready pods.
    """
    target_percent = round(target_cpu * 100)
    millicores = round(cpu_cores * 1000)
    ratio, _ = utilization_ratio(millicores, ready, target_percent)
    rebalance_ignored = unready > 0 and ratio > 1.0
    if not rebalance_ignored and missing == 0:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * ready)
    pods = ready
    if missing:
        pods += missing
        if ratio < 1.0:
            # On a scale-down, pods without metrics count as using 100% of their request ...
            millicores += missing * REQUEST_MILLICORES
        # ... and on a scale-up as using 0%.
    if rebalance_ignored:
        pods += unready  # unready pods count as using 0% on a scale-up
    new_ratio, _ = utilization_ratio(millicores, pods, target_percent)
    if (abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio)):
        return current  # too small a change, or the direction flipped
    replicas = math.ceil(new_ratio * pods)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def _change_in_period(events: tuple[tuple[float, int], ...], now_s: float, period_s: float) -> int:
    """getReplicasChangePerPeriod."""
    return sum(change for t, change in events if t > now_s - period_s)


def scale_up_limit(current: int, up_events, down_events, now_s: float, period_s: float) -> int:
    """calculateScaleUpLimitWithScalingRules with the default policies and selectPolicy Max."""
    start = current - _change_in_period(up_events, now_s, period_s) + _change_in_period(down_events, now_s, period_s)
    by_pods = start + SCALE_UP_PODS
    by_percent = math.ceil(start * (1 + SCALE_UP_PERCENT / 100))
    return max(by_pods, by_percent)


def scale_down_limit(current: int, up_events, down_events, now_s: float, period_s: float) -> int:
    """calculateScaleDownLimitWithBehaviors with the default policy and selectPolicy Max."""
    start = current - _change_in_period(up_events, now_s, period_s) + _change_in_period(down_events, now_s, period_s)
    return int(start * (1 - SCALE_DOWN_PERCENT / 100))


def decide_hpa(obs: Observation, state: State, config: Config, now_s: float) -> Decision:
    own: HpaState = state.policy
    current = obs.status.current
    details: dict[str, object] = {}
    if current == 0:
        return Decision(0, state, "hold: scaling disabled (0 replicas, HPA does not scale from zero)", "disabled")
    if current > config.max_replicas:
        return _record(obs, state, config, now_s, config.max_replicas,
                       f"scale-down: above MAX_REPLICAS {config.max_replicas}", "bounds", details)
    if current < config.min_replicas:
        return _record(obs, state, config, now_s, config.min_replicas,
                       f"scale-up: below MIN_REPLICAS {config.min_replicas}", "bounds", details)
    ready = obs.status.ready
    if ready <= 0:
        return Decision(current, state, "hold: no-data (no metrics for any ready pod)", "no-data")
    unready = max(current - ready, 0)
    cpu = obs.metrics.cpu_cores or 0.0
    proposed = calculate_replicas(current, ready, unready, cpu, config.hpa_target_cpu, config.hpa_tolerance)
    _, utilization = utilization_ratio(round(cpu * 1000), ready, round(config.hpa_target_cpu * 100))
    details.update(proposed=proposed, utilization_pct=utilization)
    util_text = f"cpu {utilization}% of request vs target {round(config.hpa_target_cpu * 100)}%"

    # stabilizeRecommendationWithBehaviors (scale-up window 0 s: only the current recommendation).
    down_cutoff = now_s - config.hpa_scale_down_stabilization_s
    window = tuple(r for r in own.recommendations if r[0] > down_cutoff)
    up_rec = proposed
    down_rec = max([proposed] + [r for _, r in window])
    stabilized = min(max(current, up_rec), down_rec)
    own = replace(own, recommendations=window + ((now_s, proposed),))
    details["stabilized"] = stabilized

    # convertDesiredReplicasWithBehaviorRate
    period = config.hpa_policy_period_s
    up_events = tuple(e for e in own.scale_up_events if e[0] > now_s - period)
    down_events = tuple(e for e in own.scale_down_events if e[0] > now_s - period)
    own = replace(own, scale_up_events=up_events, scale_down_events=down_events)
    state = replace(state, policy=own)
    desired, note = stabilized, ""
    if stabilized > current:
        limit = max(scale_up_limit(current, up_events, down_events, now_s, period), current)
        allowed = min(config.max_replicas, limit)
        if desired > allowed:
            desired = allowed
            note = ", scale-up rate limit" if limit < config.max_replicas else ", at MAX_REPLICAS"
    elif stabilized < current:
        limit = min(scale_down_limit(current, up_events, down_events, now_s, period), current)
        allowed = max(config.min_replicas, limit)
        if desired < allowed:
            desired = allowed
            note = ", scale-down rate limit" if limit > config.min_replicas else ", at MIN_REPLICAS"

    if desired > current:
        return _record(obs, state, config, now_s, desired, f"scale-up: {util_text}{note}", "cpu", details)
    if desired < current:
        return _record(obs, state, config, now_s, desired, f"scale-down: {util_text}{note}", "cpu", details)
    if proposed < current:
        return Decision(current, state, f"hold: stabilizing, max recommendation {stabilized} over "
                        f"{config.hpa_scale_down_stabilization_s:g}s ({util_text})", "stabilizing", details=details)
    if proposed > current:
        return Decision(current, state, f"hold: at MAX_REPLICAS {config.max_replicas} ({util_text})", "at-max",
                        details=details)
    return Decision(current, state, f"hold: within tolerance ({util_text})", "tolerance", details=details)


def _record(obs: Observation, state: State, config: Config, now_s: float, desired: int, reason: str,
            kind: str, details) -> Decision:
    """horizontal.go storeScaleEvent: remember the change for the rate limits of the next periods."""
    own: HpaState = state.policy
    change = desired - obs.status.current
    if change > 0:
        own = replace(own, scale_up_events=own.scale_up_events + ((now_s, change),))
    elif change < 0:
        own = replace(own, scale_down_events=own.scale_down_events + ((now_s, -change),))
    return Decision(desired, replace(state, policy=own), reason, kind, details=details)
