"""The named runs of a comparison and what each one sets: one table for the local stack and the simulator.

    static-min, static-max   POLICY=static holding MIN_REPLICAS or MAX_REPLICAS
    static-N                 POLICY=static holding N replicas (N >= 1; the simulator)
    hpa-N                    POLICY=hpa with HPA_TARGET_CPU = N/100 (N in 1..100)
    kpa, slo                 those policies between the bounds
    oracle                   the lower bound of cost: scaled by a planner that knows the future (the simulator)

The local stack also accepts its --policy spellings `hpa` (at --hpa-target-cpu) and `static` (static-min).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What `make compare` replays by default, and what it may replay (kpa on request).
LOCAL_COMPARE_RUNS = ("static-min", "static-max", "hpa-50", "hpa-90", "slo")
LOCAL_RUN_CHOICES = ("static-min", "static-max", "hpa-50", "hpa-90", "kpa", "slo")
# What the simulator compares by default: the local comparison's runs, kpa, and the oracle.
SIM_RUNS = ("static-min", "static-max", "hpa-50", "hpa-90", "kpa", "slo", "oracle")
ORACLE = "oracle"

_PATTERN = re.compile(r"^(static-min|static-max|kpa|slo|oracle|hpa-(\d{1,3})|static-(\d{1,5}))$")


class RunNameError(ValueError):
    """A run name that is not in the table above."""


@dataclass(frozen=True)
class RunSpec:
    """What a named run sets. `policy` is the autoscaler's POLICY, or ORACLE for the simulator's planner."""

    name: str
    policy: str
    min_replicas: int
    max_replicas: int
    initial_replicas: int
    hpa_target_cpu: float | None = None


def check_run_name(name: str) -> str:
    m = _PATTERN.match(name)
    if not m or (m.group(2) and not 1 <= int(m.group(2)) <= 100) or (m.group(3) and int(m.group(3)) < 1):
        raise RunNameError(f"unknown policy {name!r}: expected one of {', '.join(SIM_RUNS)}, hpa-N (N in 1..100) "
                           "or static-N (N >= 1)")
    return name


def run_spec(name: str, min_replicas: int, max_replicas: int, hpa_target_cpu: float = 0.5) -> RunSpec:
    """The run `name` between the deployment's bounds; `hpa_target_cpu` is what the bare name `hpa` runs at."""
    lo, hi = min_replicas, max_replicas
    if name == "hpa":
        return RunSpec(f"hpa-{hpa_target_cpu * 100:g}", "hpa", lo, hi, lo, hpa_target_cpu)
    if name == "static":
        name = "static-min"
    check_run_name(name)
    if name == "static-min":
        return RunSpec(name, "static", lo, lo, lo)
    if name == "static-max":
        return RunSpec(name, "static", hi, hi, hi)
    if name.startswith("static-"):
        n = int(name[len("static-"):])
        # The maximum stays the deployment's so that N above it is still a valid setting.
        return RunSpec(name, "static", n, max(n, hi), n)
    if name.startswith("hpa-"):
        return RunSpec(name, "hpa", lo, hi, lo, int(name[len("hpa-"):]) / 100)
    return RunSpec(name, name, lo, hi, lo)
