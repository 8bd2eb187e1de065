"""The `kpa` policy: Knative Serving's Knative Pod Autoscaler, ported for like-for-like comparison.

A port of the decider `(*autoscaler).Scale` in knative/serving pkg/autoscaler/scaling/autoscaler.go, with
Knative's defaults (config-autoscaler): a 60 s stable window, a panic window of 10% of it (6 s), panic at
200% of the ready pods' capacity, target utilization 70%, max scale-up rate 1000, max scale-down rate 2,
scale-to-zero off (MIN_REPLICAS >= 1 here), no scale-down delay and no activation scale. Step by step:

    ready           = max(1, ready pods)
    max_scale_up    = ceil(KPA_MAX_SCALE_UP_RATE x ready)
    max_scale_down  = floor(ready / KPA_MAX_SCALE_DOWN_RATE)
    target          = per-replica target x KPA_TARGET_UTILIZATION
    dspc, dppc      = ceil(stable mean / target), ceil(panic mean / target)
    desired_stable  = clamp(dspc, max_scale_down, max_scale_up); desired_panic likewise from dppc
    over_threshold  = dppc / ready >= KPA_PANIC_THRESHOLD
    panic starts (or is extended) while over the threshold, and ends once it has not been for a stable window;
    in panic the count is the highest of desired_stable, desired_panic and every count since panic began
    (no scale-down while panicking); otherwise it is desired_stable.

The metric is Knative's default, concurrency (the service's in-flight requests; per-replica target
TARGET_INFLIGHT_PER_REPLICA), or requests per second with KPA_METRIC=rps (CAPACITY_RPS_PER_REPLICA).
Knative averages per-second buckets over each window; here the windows average the polls that fall in them,
the same for evenly spaced polls. Like Knative's newly created autoscaler, a first decision with more
than one ready replica starts in panic, so a restart does not scale down on an empty history. MIN_REPLICAS
and MAX_REPLICAS bound the result, as Knative's min-scale and max-scale annotations do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .config import Config
from .decision import Decision, Observation, State, clamp



@dataclass(frozen=True)
class KpaState:
    samples: tuple[tuple[float, float], ...] = ()  # (t_s, observed metric) within the stable window
    panic_since_s: float | None = None             # Knative's panicTime: the last poll over the threshold
    max_panic_pods: int = 0
    started: bool = False                          # a first decision has been made


def _window_mean(samples: tuple[tuple[float, float], ...], since_s: float) -> float:
    values = [v for t, v in samples if t > since_s] or [samples[-1][1]]
    return sum(values) / len(values)


def decide_kpa(obs: Observation, state: State, config: Config, now_s: float) -> Decision:
    kpa: KpaState = state.policy
    rps = config.kpa_metric == "rps"
    value = obs.metrics.rate_rps if rps else obs.metrics.inflight
    per_replica = config.capacity_rps_per_replica if rps else config.target_inflight_per_replica
    current = obs.status.current
    if value is None or per_replica <= 0:
        why = f"no {'request rate' if rps else 'in-flight'} data" if value is None else (
            f"{'CAPACITY_RPS_PER_REPLICA' if rps else 'TARGET_INFLIGHT_PER_REPLICA'}=0")
        return Decision(current, state, f"hold: no-data ({why})", "no-data")

    ready = max(1, obs.status.ready)
    panic_since, max_panic = kpa.panic_since_s, kpa.max_panic_pods
    if not kpa.started and obs.status.ready > 1:
        panic_since, max_panic = now_s, obs.status.ready
    samples = tuple(s for s in kpa.samples if s[0] > now_s - config.kpa_stable_window_s) + ((now_s, value),)
    panic_window_s = config.kpa_stable_window_s * config.kpa_panic_window_percent / 100.0
    stable = _window_mean(samples, now_s - config.kpa_stable_window_s)
    panic = _window_mean(samples, now_s - panic_window_s)

    max_scale_up = math.ceil(config.kpa_max_scale_up_rate * ready)
    max_scale_down = math.floor(ready / config.kpa_max_scale_down_rate)
    target = per_replica * config.kpa_target_utilization
    dspc = math.ceil(stable / target - 1e-9)  # float noise (2.0000000001) must not cost a pod
    dppc = math.ceil(panic / target - 1e-9)
    desired_stable = int(min(max(dspc, max_scale_down), max_scale_up))
    desired_panic = int(min(max(dppc, max_scale_down), max_scale_up))

    over_threshold = dppc / ready >= config.kpa_panic_threshold
    if over_threshold:
        panic_since = now_s  # begins, or is extended
    elif panic_since is not None and panic_since + config.kpa_stable_window_s < now_s:
        panic_since, max_panic = None, 0  # the surge has made its way into the stable window
    desired = desired_stable
    if panic_since is not None:
        desired = max(desired, desired_panic, max_panic)
        max_panic = desired
    target_count = clamp(desired, config.min_replicas, config.max_replicas)

    mode = "panic" if panic_since is not None else "stable"
    unit = "rps" if rps else "in flight"
    text = (f"{mode}: stable {stable:.1f} / panic {panic:.1f} {unit} at target {target:.2f}/replica -> "
            f"{desired_stable} / {desired_panic} pods")
    new_state = replace(state, policy=KpaState(samples, panic_since, max_panic, True))
    details = {"stable": round(stable, 3), "panic": round(panic, 3), "desired_stable": desired_stable,
               "desired_panic": desired_panic, "max_scale_up": max_scale_up, "max_scale_down": max_scale_down}
    if target_count > current:
        verb = "scale-up"
    elif target_count < current:
        verb = "scale-down"
    else:
        verb = "hold"
    bounded = "" if target_count == desired else f", bounded from {desired}"
    return Decision(target_count, new_state, f"{verb}: {text}{bounded}", mode, mode == "panic", details)
