"""The table of named runs (planning/runs.py) that the local stack and the simulator both read."""

import pytest

from planning.runs import LOCAL_RUN_CHOICES, SIM_RUNS, RunNameError, RunSpec, check_run_name, run_spec


@pytest.mark.parametrize("name, expected", [
    ("static-min", RunSpec("static-min", "static", 1, 1, 1)),
    ("static-max", RunSpec("static-max", "static", 4, 4, 4)),
    ("static-2", RunSpec("static-2", "static", 2, 4, 2)),
    ("static-9", RunSpec("static-9", "static", 9, 9, 9)),
    ("hpa-50", RunSpec("hpa-50", "hpa", 1, 4, 1, 0.5)),
    ("hpa-100", RunSpec("hpa-100", "hpa", 1, 4, 1, 1.0)),
    ("hpa", RunSpec("hpa-70", "hpa", 1, 4, 1, 0.7)),
    ("static", RunSpec("static-min", "static", 1, 1, 1)),
    ("kpa", RunSpec("kpa", "kpa", 1, 4, 1)),
    ("slo", RunSpec("slo", "slo", 1, 4, 1)),
    ("oracle", RunSpec("oracle", "oracle", 1, 4, 1)),
], ids=["static-min", "static-max", "static-N-inside", "static-N-above-max", "hpa-N", "hpa-100", "bare-hpa",
        "bare-static", "kpa", "slo", "oracle"])
def test_each_name_sets_its_policy_bounds_and_target(name, expected):
    assert run_spec(name, 1, 4, hpa_target_cpu=0.7) == expected


@pytest.mark.parametrize("name", ["hpa-0", "hpa-101", "static-0", "static--1", "knative", "", "SLO", "hpa-5x"],
                         ids=["hpa-0", "hpa-101", "static-0", "static-negative", "unknown", "empty", "upper-case",
                              "hpa-not-a-number"])
def test_names_outside_the_table_are_refused_with_the_choices(name):
    with pytest.raises(RunNameError, match=r"expected one of static-min, .*hpa-N \(N in 1\.\.100\)"):
        check_run_name(name)
    with pytest.raises(RunNameError):
        run_spec(name, 1, 4)


def test_every_local_choice_is_a_simulator_run():
    assert set(LOCAL_RUN_CHOICES) <= set(SIM_RUNS)
