"""`python -m sim.matrix` (`make simulate`): the default matrix's cases, and a tiny matrix run end to end
into one summary (seconds, not the minutes of the default one)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from comparison.targets import SIM_GOALS
from loadtester.workload import load_workload
from sim import cli
from sim.matrix import DEFAULT_CASES, Case, case_argv, main, run_matrix
from sim.profile import default_profile
from planning.runs import SIM_RUNS as POLICIES

REPO = Path(__file__).resolve().parent.parent


def test_the_default_matrix_is_wl_txt_at_three_scales_and_both_real_traces():
    names = [c.name for c in DEFAULT_CASES]
    assert names == ["wl-x1", "wl-x10", "wl-x50", "twitter-1h", "nasa-1d"]
    for case in DEFAULT_CASES:
        assert case.trace.is_file(), case.trace
    traces = REPO / "sim" / "traces"
    readme = (traces / "README.md").read_text()
    assert "Twitter" in readme and "Internet Traffic Archive" in readme
    for case in DEFAULT_CASES[3:]:
        assert case.trace.parent == traces
        flags = dict(zip(case.flags[::2], case.flags[1::2]))
        assert 20 <= int(flags["--peak-replicas"]) <= 100


def test_every_case_parses_as_python_m_sim_with_the_replicas_its_10_s_peak_needs(tmp_path):
    capacity = default_profile().capacity_within_slo_rps
    for case in DEFAULT_CASES:
        argv = case_argv(case, tmp_path / case.name, policies=",".join(POLICIES), seed=0, duration_s=None,
                         profile=None)
        args = cli.read_options(argv)
        assert args.policies == ",".join(POLICIES) and args.seed == 0
        plan = cli.prepare(args, {})
        rates = load_workload(case.trace).rates_rps
        peak_10_s = cli.peak_rate_rps(rates, args.speedup, 10.0) * plan["scale"]
        assert args.max_replicas == max(2, cli.replicas_for_peak(peak_10_s, capacity))
        assert (args.max_replicas - 0.5) * capacity >= peak_10_s
        assert plan["settings"].config.max_replicas == args.max_replicas
        if args.peak_replicas is not None:    # the 60 s peak needs N; a 10 s one needs as many or more
            assert cli.replicas_for_peak(plan["trace"]["scaled_peak_rps"], capacity) == args.peak_replicas
            assert args.peak_replicas <= args.max_replicas <= 100


@pytest.fixture
def tiny(tmp_path) -> list[Case]:
    step = tmp_path / "step.txt"
    step.write_text("20\n" * 30 + "150\n" * 40 + "20\n" * 30)
    flat = tmp_path / "flat.txt"
    flat.write_text("40\n" * 60)
    return [Case("step", step, ("--peak-replicas", "4"), "a step"), Case("flat", flat, ("--scale", "2"), "flat")]


def test_a_tiny_matrix_writes_one_summary_with_slos_four_goals_per_trace(tiny, tmp_path):
    out = tmp_path / "out"
    stdout = io.StringIO()
    summary = run_matrix(tiny, out, policies="hpa-50,kpa,slo,oracle", seed=3, stdout=stdout, command="test")
    doc = json.loads((out / "summary.json").read_text())
    assert doc == json.loads(json.dumps(summary))
    assert list(doc["cases"]) == ["step", "flat"] and list(doc["goals"]) == list(SIM_GOALS)
    for name, case in doc["cases"].items():
        assert [t["goal"] for t in case["targets"]] == list(SIM_GOALS)
        assert all(t["verdict"] in ("PASS", "MISS") for t in case["targets"])
        assert list(case["runs"]) == ["hpa-50", "kpa", "slo", "oracle"]
        assert case["trace"]["seed"] == 3
        assert (out / name / "comparison.json").is_file() and (out / name / "comparison.png").is_file()
        # The summary's verdicts are the case's own comparison's.
        assert json.loads((out / name / "comparison.json").read_text())["targets"] == case["targets"]
    # The 40 s step's 60 s mean needs 4 replicas; a 10 s window of it, all at the step's rate, needs 6.
    assert doc["cases"]["step"]["replicas"] == [1, 6]
    assert doc["cases"]["flat"]["replicas"] == [1, 2]     # 80 req/s needs 2 at 54 per replica
    md = (out / "summary.md").read_text()
    assert md.count("\n| step | ") == 1 and md.count("\n| flat | ") == 1
    assert "![step](step/comparison.png)" in md
    assert "| trace | requests | replicas | >= 99% windows in SLO |" in stdout.getvalue()


def test_the_command_line_runs_a_cut_of_the_default_matrix(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    code = main(["--cases", "wl-x1", "--duration", "40", "--policies", "static-min,slo", "--out", str(tmp_path / "m")],
                environ={}, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    doc = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert list(doc["cases"]) == ["wl-x1"] and doc["cases"]["wl-x1"]["trace"]["duration_s"] == 40
    # Without hpa-50, kpa and the oracle, three of the goals cannot be judged.
    assert [t["verdict"] for t in doc["cases"]["wl-x1"]["targets"]][1:] == ["n/a"] * 3


@pytest.mark.parametrize("argv, words", [
    (["--cases", "wl-x2"], "--cases=wl-x2: expected a subset of wl-x1"),
    (["--cases", "wl-x1", "--policies", "slo,best"], "wl-x1: --policies: unknown policy 'best'"),
    (["--cases", "wl-x1", "--duration", "-1"], "--duration=-1: expected a number > 0 s"),
], ids=["unknown-case", "unknown-policy", "negative-duration"])
def test_bad_input_exits_2_before_anything_runs(tmp_path, argv, words):
    out, err = io.StringIO(), io.StringIO()
    assert main(argv + ["--out", str(tmp_path / "m")], environ={}, stdout=out, stderr=err) == 2
    assert words in err.getvalue()
    assert not (tmp_path / "m").exists()
