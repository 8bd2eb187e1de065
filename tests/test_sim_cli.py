"""`python -m sim`: bad input exits 2 naming the flag; a run writes comparison.json with its schema."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main, peak_rate_rps
from sim.profile import default_profile

ROW_KEYS = {"run", "policy", "p50_ms", "p95_ms", "p99_ms", "windows_in_slo", "windows_met", "windows", "requests", "ok",
            "failed", "rejected_503", "connection_losses", "replica_seconds", "mean_replicas", "scale_events",
            "scale_ups", "scale_downs", "reversals"}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def trace(tmp_path) -> Path:
    path = tmp_path / "trace.txt"
    path.write_text("# a small step\n" + "20\n" * 30 + "150\n" * 60 + "20\n" * 30)
    return path


def run_cli(*argv, environ=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), environ=environ if environ is not None else {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args, flag, words", [
    (["--trace", "{missing}"], "--trace", "no such file"),
    (["--trace", "{bad_line}"], "--trace", "not a number"),
    (["--trace", "{trace}", "--scale", "0"], "--scale=0", "expected a number > 0"),
    (["--trace", "{trace}", "--scale", "-2"], "--scale=-2", "expected a number > 0"),
    (["--trace", "{trace}", "--scale", "2", "--peak-replicas", "3"], "--peak-replicas", "not allowed with"),
    (["--trace", "{trace}", "--policies", "slo,fastest"], "--policies", "unknown policy 'fastest'"),
    (["--trace", "{trace}", "--profile", "{not_json}"], "--profile", "not JSON"),
    (["--trace", "{trace}", "--profile", "{wrong_shape}"], "--profile", "neither a sim profile"),
    (["--trace", "{trace}", "--profile", "{bad_field}"], "--profile", "model_per_image_ms=-1"),
    (["--trace", "{trace}", "--profile", "{unknown_field}"], "--profile", "unknown field(s) ['gpus']"),
    (["--trace", "{trace}", "--peak-replicas", "0"], "--peak-replicas=0", "expected an integer >= 1"),
    (["--trace", "{trace}", "--max-replicas", "0"], "--max-replicas=0", "expected an integer >= 1"),
    (["--arrivals", "poisson"], "--trace", "required"),
], ids=["missing-trace", "bad-trace-line", "zero-scale", "negative-scale", "scale-and-peak-replicas",
        "unknown-policy", "profile-not-json", "profile-wrong-shape", "profile-bad-value", "profile-unknown-field",
        "zero-peak-replicas", "zero-max-replicas", "no-trace-flag"])
def test_bad_input_exits_2_naming_the_flag(tmp_path, trace, capsys, args, flag, words):
    files = {"missing": tmp_path / "nope.txt", "bad_line": tmp_path / "bad.txt", "trace": trace,
             "not_json": tmp_path / "p1.json", "wrong_shape": tmp_path / "p2.json", "bad_field": tmp_path / "p3.json",
             "unknown_field": tmp_path / "p4.json"}
    files["bad_line"].write_text("10\n12\nlots\n")
    files["not_json"].write_text("{not json")
    files["wrong_shape"].write_text('{"hello": 1}')
    files["bad_field"].write_text('{"format": "sim-profile", "model_per_image_ms": -1}')
    files["unknown_field"].write_text('{"format": "sim-profile", "gpus": 2}')
    code, out, err = run_cli(*[a.format(**files) for a in args], "--out", str(tmp_path / "out"))
    err += capsys.readouterr().err                       # argparse's own messages
    assert code == 2
    assert flag in err and words in err, err
    assert not (tmp_path / "out").exists()


def test_a_bad_autoscaler_variable_exits_2_naming_it(trace, tmp_path):
    code, _, err = run_cli("--trace", str(trace), "--out", str(tmp_path / "o"), environ={"POLL_INTERVAL_S": "-1"})
    assert code == 2 and "POLL_INTERVAL_S" in err


def test_a_run_writes_the_comparison(trace, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_cli("--trace", str(trace), "--policies", "static-min,slo,oracle", "--out", str(out_dir),
                             "--max-replicas", "4")
    assert code == 0, err
    doc = json.loads((out_dir / "comparison.json").read_text())
    assert set(doc) == {"runs", "repeats", "targets", "indistinguishable", "trace", "scale", "profile", "settings"}
    assert list(doc["runs"]) == ["static-min", "slo", "oracle"]
    for name, row in doc["runs"].items():
        assert set(row) == ROW_KEYS
        assert (row["run"], doc["repeats"][name]) == (name, [row])
        assert row["requests"] == doc["trace"]["requests"]
        assert 0.0 <= row["windows_in_slo"] <= 1.0
    assert (doc["runs"]["static-min"]["policy"], doc["runs"]["oracle"]["policy"]) == ("static", "oracle")
    # The simulator's four goals, judged by comparison/targets.py: without hpa-50 and kpa those are n/a.
    assert [(t["goal"], t["verdict"] == "n/a") for t in doc["targets"]] == [
        ("windows", False), ("cost_vs_hpa_50", True), ("beats_kpa", True), ("near_oracle", False)]
    assert doc["scale"] == 1.0
    assert doc["settings"]["autoscaler"]["max_replicas"] == 4
    assert doc["settings"]["autoscaler"]["slo_p95_ms"] == default_profile().slo_ms
    assert (out_dir / "comparison.png").stat().st_size > 10_000
    assert (out_dir / "comparison.csv").read_text().splitlines()[0].startswith("run,policy,")
    assert "| oracle |" in (out_dir / "comparison.md").read_text()
    assert "| oracle |" in out and "replica-s vs oracle" in out and "| target | measured | result |" in out
    # The step overloads one replica: static-min fails where the oracle does not.
    assert doc["runs"]["static-min"]["failed"] > 0 and doc["runs"]["oracle"]["failed"] == 0


@pytest.mark.parametrize("seeds, same", [((3, 3), True), ((3, 4), False)], ids=["same-seed", "other-seed"])
def test_the_comparison_is_a_function_of_its_inputs(trace, tmp_path, seeds, same):
    texts = []
    for k, seed in enumerate(seeds):
        out_dir = tmp_path / f"out{k}"
        code, _, err = run_cli("--trace", str(trace), "--policies", "hpa-50,kpa,oracle", "--seed", str(seed),
                               "--out", str(out_dir))
        assert code == 0, err
        texts.append((out_dir / "comparison.json").read_text())
    assert (texts[0] == texts[1]) is same


@pytest.mark.parametrize("n", [2, 5], ids=["two", "five"])
def test_peak_replicas_scales_the_peak_to_need_n_replicas(tmp_path, n):
    path = tmp_path / "flat-peak.txt"
    path.write_text("5\n" * 60 + "40\n" * 120 + "5\n" * 60)
    out_dir = tmp_path / "out"
    code, _, err = run_cli("--trace", str(path), "--peak-replicas", str(n), "--policies",
                           f"static-{n - 1},static-{n}", "--out", str(out_dir))
    assert code == 0, err
    doc = json.loads((out_dir / "comparison.json").read_text())
    capacity = default_profile().capacity_within_slo_rps
    assert peak_rate_rps([5] * 60 + [40] * 120 + [5] * 60) == 40.0      # a 60 s mean, not a noisy second
    assert math.ceil(doc["trace"]["scaled_peak_rps"] / capacity) == n
    assert doc["settings"]["autoscaler"]["max_replicas"] == n
    # Through the simulated cluster: n replicas hold the SLO at the peak, n - 1 do not.
    assert doc["runs"][f"static-{n}"]["windows_in_slo"] == 1.0
    assert doc["runs"][f"static-{n - 1}"]["windows_in_slo"] < 1.0


def test_python_m_sim_runs(trace, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sim", "--trace", str(trace), "--policies", "static-max",
                           "--out", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| static-max |" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sim", "--trace", str(tmp_path / "none.txt")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--trace" in proc.stderr


def test_the_default_scrape_interval_is_the_clusters():
    from autoscaler.config import Config
    from loadtester.export_trace_cli import ExportOptions
    from local.prometheus_config import scrape_interval_s
    from sim.cli import DEFAULT_SCRAPE_INTERVAL_S

    cluster_s = scrape_interval_s(REPO / "prometheus" / "prometheus.yml")
    assert DEFAULT_SCRAPE_INTERVAL_S == ExportOptions.scrape_interval_s == Config.poll_interval_s == cluster_s
