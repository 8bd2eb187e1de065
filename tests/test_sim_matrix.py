"""`python -m sim.matrix` (`make simulate`): the default matrix's cases, and a tiny matrix run end to end
into one summary (seconds, not the minutes of the default one)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from comparison.targets import SIM_GOALS
from loadtester.workload import load_workload
from sim import cli
from sim.matrix import DEFAULT_CASES, Case, case_argv, main, max_replicas, run_matrix
from sim.profile import default_profile
from sim.replay_shape import coarse_rates
from planning.runs import SIM_RUNS as POLICIES

REPO = Path(__file__).resolve().parent.parent


def test_the_default_matrix_is_wl_txt_at_three_scales_both_real_traces_and_one_case_without_headroom():
    names = [c.name for c in DEFAULT_CASES]
    assert names == ["wl-x1", "wl-x10", "wl-x50", "twitter-1h", "nasa-1d", "wl-x10-no-headroom"]
    by_name = {c.name: c for c in DEFAULT_CASES}
    assert [c.name for c in DEFAULT_CASES if c.headroom is not None] == ["wl-x10-no-headroom"]
    assert by_name["wl-x10-no-headroom"].headroom == 1.0
    assert by_name["wl-x10-no-headroom"].flags == by_name["wl-x10"].flags
    for case in DEFAULT_CASES:
        assert case.trace.is_file(), case.trace
    traces = REPO / "sim" / "traces"
    readme = (traces / "README.md").read_text()
    assert "Twitter" in readme and "Internet Traffic Archive" in readme
    for case in DEFAULT_CASES[3:5]:
        assert case.trace.parent == traces
        flags = dict(zip(case.flags[::2], case.flags[1::2]))
        assert 20 <= int(flags["--peak-replicas"]) <= 100


def test_every_case_parses_as_python_m_sim_with_headroom_over_what_its_10_s_peak_needs(tmp_path):
    headroom = 1.5
    capacity = default_profile().capacity_within_slo_rps
    for case in DEFAULT_CASES:
        argv = case_argv(case, tmp_path / case.name, policies=",".join(POLICIES), seed=0, duration_s=None,
                         profile=None, headroom=headroom)
        args = cli.read_options(argv)
        assert args.policies == ",".join(POLICIES) and args.seed == 0
        assert args.start == "first-need"   # every run starts as the oracle does
        plan = cli.prepare(args, {})
        assert plan["warnings"] == [], case.name   # no case replays a log's counting noise scaled up
        rates = load_workload(case.trace).rates_rps
        if args.coarse_s:   # the 10 s peak of what is replayed: the log's coarse means
            rates = coarse_rates(rates, args.coarse_s)
        peak_10_s = cli.peak_rate_rps(rates, args.speedup, 10.0) * plan["scale"]
        need = cli.replicas_for_peak(peak_10_s, capacity)
        factor = 1.0 if case.name == "wl-x10-no-headroom" else headroom
        assert args.max_replicas == max(2, math.ceil(factor * need - 1e-9))
        assert (args.max_replicas - 0.5) * capacity >= factor * peak_10_s
        assert plan["settings"].config.max_replicas == args.max_replicas
        if args.peak_replicas is not None:    # the 60 s peak needs N; a 10 s one needs as many or more
            assert cli.replicas_for_peak(plan["trace"]["scaled_peak_rps"], capacity) == args.peak_replicas
            assert args.peak_replicas * headroom <= args.max_replicas <= 100 * headroom


@pytest.mark.parametrize("flags, headroom, expected", [
    (("--scale", "2"), 1.0, 2),        # 80 req/s: 80 / 54 + 0.5 rounds up to 2
    (("--scale", "2"), 1.5, 3),
    (("--scale", "2"), 1.2, 3),        # 2.4 rounds up
    (("--scale", "0.1"), 1.5, 2),      # 1 replica x 1.5 rounds up to 2
    (("--scale", "0.1"), 1.0, 2),      # never under 2
    (("--scale", "2"), 10.0, 20),
], ids=["none", "1.5", "rounds-up", "one-replica", "at-least-2", "most"])
def test_max_replicas_is_the_headroom_times_the_10_s_need_rounded_up(tmp_path, flags, headroom, expected):
    flat = tmp_path / "flat.txt"
    flat.write_text("40\n" * 60)
    assert max_replicas(Case("flat", flat, flags, "flat"), None, headroom) == expected
    # A case's own headroom wins over the matrix's.
    assert max_replicas(Case("flat", flat, flags, "flat", headroom=1.0), None, headroom) == \
        max_replicas(Case("flat", flat, flags, "flat"), None, 1.0)


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
    assert summary["headroom"] == 1.5
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
    # The 40 s step's 60 s mean needs 4 replicas; a 10 s window of it, all at the step's rate, needs 6: with
    # 1.5x headroom 9.
    assert doc["cases"]["step"]["replicas"] == [1, 9]
    assert doc["cases"]["flat"]["replicas"] == [1, 3]     # 80 req/s needs 2 at 54 per replica; x1.5 is 3
    assert [c["headroom"] for c in doc["cases"].values()] == [1.5, 1.5]
    md = (out / "summary.md").read_text()
    assert md.count("\n| step | ") == 2 and md.count("\n| flat | ") == 2   # the goals, and what was possible
    assert "![step](step/comparison.png)" in md
    assert "| trace | requests | replicas | >= 99% windows in SLO |" in stdout.getvalue()
    # Beside slo's windows, the oracle's and static-max's (not run here: '-'), and their replica-seconds.
    assert "| trace | replicas (headroom) | slo windows | oracle windows | static-max windows | slo replica-s |" \
        in stdout.getvalue()
    for name, case in doc["cases"].items():
        slo, oracle = case["runs"]["slo"], case["runs"]["oracle"]
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} | 1..{case['replicas'][1]} (x1.5) |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2:] == [f"{slo['windows_in_slo']:.1%} ({slo['windows_met']}/{slo['windows']})",
                             f"{oracle['windows_in_slo']:.1%} ({oracle['windows_met']}/{oracle['windows']})", "-",
                             f"{slo['replica_seconds']:.0f}", f"{oracle['replica_seconds']:.0f}", "-"]
    # Where slo's cost above the oracle and its misses come from, per case, in the JSON and the page.
    for name, case in doc["cases"].items():
        lines = case["attribution"]
        assert lines[0].startswith("replica-s above the oracle: ")
        missed = case["runs"]["slo"]["windows"] - case["runs"]["slo"]["windows_met"]
        assert sum(line.startswith("missed window ") for line in lines) == missed
        assert all(f"- {line}" in md for line in lines)


def test_the_command_line_runs_a_cut_of_the_default_matrix(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    code = main(["--cases", "wl-x1", "--duration", "40", "--policies", "static-min,slo", "--out", str(tmp_path / "m")],
                environ={}, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    doc = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert list(doc["cases"]) == ["wl-x1"] and doc["cases"]["wl-x1"]["trace"]["duration_s"] == 40
    # Without hpa-50, kpa and the oracle, three of the goals cannot be judged.
    assert [t["verdict"] for t in doc["cases"]["wl-x1"]["targets"]][1:] == ["n/a"] * 3
    assert err.getvalue() == ""   # wl.txt is a designed shape: no counting noise to warn of


@pytest.mark.parametrize("argv, environ, headroom", [
    ([], {}, 1.5),
    (["--headroom", "2"], {}, 2.0),
    ([], {"SIM_HEADROOM": "3"}, 3.0),
    (["--headroom", "2"], {"SIM_HEADROOM": "3"}, 2.0),
], ids=["default", "flag", "env", "flag-wins"])
def test_the_headroom_comes_from_the_flag_or_sim_headroom(tmp_path, argv, environ, headroom):
    out, err = io.StringIO(), io.StringIO()
    code = main(["--cases", "wl-x1,wl-x10-no-headroom", "--duration", "10", "--policies", "static-max",
                 "--out", str(tmp_path / "m"), *argv], environ=environ, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    doc = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert doc["headroom"] == headroom
    assert doc["cases"]["wl-x1"]["headroom"] == headroom and doc["cases"]["wl-x10-no-headroom"]["headroom"] == 1.0
    need = 2   # wl.txt's highest 10 s mean, 32.5 req/s: 32.5 / 54 + 0.5 rounds up to 2
    assert doc["cases"]["wl-x1"]["replicas"] == [1, math.ceil(headroom * need)]
    # Without headroom, wl.txt x10 gets only what its highest 10 s mean needs: 325 / 54 + 0.5 -> 7.
    assert doc["cases"]["wl-x10-no-headroom"]["replicas"] == [1, 7]


def test_a_scaled_log_of_few_counts_is_warned_of_before_anything_runs(tmp_path):
    noisy = tmp_path / "noisy.txt"
    noisy.write_text("".join(f"{n}\n" for n in [0, 1, 2, 1, 0, 3, 1, 1, 0, 2] * 6))   # 1.1 counted a second
    err = io.StringIO()
    summary = run_matrix([Case("noisy", noisy, ("--scale", "20"), "a noisy log")], tmp_path / "m",
                         policies="static-min", stdout=io.StringIO(), stderr=err)
    assert err.getvalue().startswith(f"sim.matrix: warning: noisy: {noisy} is a log of 1.1 requests a second")
    assert "x20" in err.getvalue() and "--coarse-s 480" in err.getvalue()
    assert summary["cases"]["noisy"]["warnings"] == [err.getvalue().split("noisy: ", 1)[1].strip()]
    assert summary["cases"]["noisy"]["trace"]["counting_noise"]["mean_count_per_s"] == 1.1
    assert "Warning: " in (tmp_path / "m" / "summary.md").read_text()


@pytest.mark.parametrize("argv, words", [
    (["--cases", "wl-x2"], "--cases=wl-x2: expected a subset of wl-x1"),
    (["--cases", "wl-x1", "--policies", "slo,best"], "wl-x1: --policies: unknown policy 'best'"),
    (["--cases", "wl-x1", "--duration", "-1"], "--duration=-1: expected a number > 0 s"),
    (["--cases", "wl-x1", "--headroom", "0.9"], "--headroom=0.9: expected a number in 1..10 factor"),
    (["--cases", "wl-x1", "--headroom", "11"], "--headroom=11: expected a number in 1..10 factor"),
    (["--cases", "wl-x1", "--headroom", "lots"], "--headroom='lots': expected a number in 1..10 factor"),
], ids=["unknown-case", "unknown-policy", "negative-duration", "headroom-below-1", "headroom-above-10",
        "headroom-not-a-number"])
def test_bad_input_exits_2_before_anything_runs(tmp_path, argv, words):
    out, err = io.StringIO(), io.StringIO()
    assert main(argv + ["--out", str(tmp_path / "m")], environ={}, stdout=out, stderr=err) == 2
    assert words in err.getvalue()
    assert not (tmp_path / "m").exists()


def test_a_bad_sim_headroom_exits_2_naming_the_variable(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main(["--cases", "wl-x1", "--out", str(tmp_path / "m")], environ={"SIM_HEADROOM": "0.5"}, stdout=out,
                stderr=err) == 2
    assert "SIM_HEADROOM=0.5: expected a number in 1..10 factor" in err.getvalue()
    assert not (tmp_path / "m").exists()
