"""The simulator against a recorded real `make compare` (tests/fixtures/sim-calibration/, 2026-12-01, 2-core Zen 5).

The issue's goals, per policy (the mean of its two real repeats against the simulation of their common inputs):
replica-seconds within 10%, windows in SLO within one window, median p95-per-window error under 25%. A change
to the replica, profile or cluster model that breaks the agreement fails here.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from comparison.run_record import RUN_RECORD_VERSION
from loadtester.records import RequestTable, write_requests_csv
from sim import calibrate as cal
from sim.batch_regroup import regroup_batches
from sim.calibration.compare import calibrate
from sim.calibration.forwards import measure_forwards
from sim.calibration.inputs import run_inputs
from sim.calibration.record import record
from sim.calibration.runs import load_run

FIXTURE = Path(__file__).parent / "fixtures" / "sim-calibration"
POLICIES = ("static-min", "hpa-50", "slo")


@pytest.fixture(scope="module")
def doc():
    return calibrate(FIXTURE)


def test_the_fixture_is_small_and_complete():
    files = [p for p in FIXTURE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 300 * 1024
    assert {p.parent.name for p in FIXTURE.glob("*/run.json")} == {f"{p}-{n}" for p in POLICIES for n in (1, 2)}
    assert (FIXTURE / "README.md").is_file()
    # The trace is the repository's wl.txt, which the runs replayed.
    assert (FIXTURE / "wl.txt").read_bytes() == (Path(__file__).parent.parent / "wl.txt").read_bytes()


@pytest.mark.parametrize("policy", POLICIES)
def test_the_simulator_meets_the_goals_per_policy(doc, policy):
    summary = doc["policies"][policy]
    assert summary["runs"] == [f"{policy}-1", f"{policy}-2"]
    assert summary["goals"] == {"replica_seconds": True, "windows_in_slo": True, "p95_per_window": True}, summary
    assert abs(summary["replica_seconds"]["error"]) <= 0.10
    assert abs(summary["windows_in_slo"]["difference"]) <= 1
    assert summary["p95_per_window"]["median_error"] < 0.25
    assert summary["p95_per_window"]["windows_compared"] == 60


@pytest.mark.parametrize("policy", ["hpa-50", "slo"])
def test_the_windows_with_two_workers_agree_too(doc, policy):
    # Where the workers share the cores. Without the shared-core slowdown these windows' p95 is 27% low
    # (median over both repeats); with it 12-13%.
    two = doc["policies"][policy]["p95_per_window"]["by_workers"]["2"]
    assert two["windows"] >= 20
    assert two["median_error"] < 0.2 and abs(two["bias"]) < 0.2


def test_the_simulation_is_given_exactly_what_the_run_had():
    run = load_run(FIXTURE / "slo-1" / "run.json", FIXTURE)
    schedule, settings = run_inputs(run)
    assert len(schedule) == run.record.requests["scheduled"] == 7728
    assert settings.scrape_interval_s == 1.0 and settings.seed == 0
    p = settings.profile
    assert p.pod_overhead_s == 0.0 and p.startup_s == 2.56 and p.queue_limit == 222
    assert p.model_s(8) * 1000 == pytest.approx(121.63, abs=0.01)
    c = settings.config
    assert (c.policy, c.min_replicas, c.max_replicas, c.slo_p95_ms) == ("slo", 1, 2, 450.0)
    assert (c.capacity_rps_per_replica, c.target_inflight_per_replica, c.poll_interval_s) == (51.84, 5.79, 2.0)
    cluster = settings.cluster
    assert (cluster.routing, cluster.removal_lag_s, cluster.shared_core_slowdown) == ("random", 0.0, 0.2)


def test_repeats_share_one_simulation(doc):
    assert doc["inputs"]["simulations"] == 3
    by_policy = {}
    for row in doc["runs"]:
        by_policy.setdefault(row["policy"], set()).add(row["simulation"])
    assert all(len(s) == 1 for s in by_policy.values())


def _full_run_dir(tmp_path: Path) -> Path:
    """The fixture laid out as `make compare` writes it: load tester summary, Prometheus config, the trace and
    the calibration named by the plan and sizing.source."""
    root = tmp_path / "compare"
    trace = tmp_path / "wl.txt"
    shutil.copyfile(FIXTURE / "wl.txt", trace)
    cache = tmp_path / "cache" / "capacity-38f8d2e5cbe8886c.json"
    cache.parent.mkdir()
    shutil.copyfile(FIXTURE / cache.name, cache)
    for path in FIXTURE.glob("*/run.json"):
        data = json.loads(path.read_text())
        run = root / path.parent.name
        (run / "loadtest").mkdir(parents=True)
        (run / "prometheus").mkdir()
        params = dict(data.pop("loadtest"), trace=str(trace))
        (run / "loadtest" / "summary.json").write_text(json.dumps({"run": {"parameters": params}}))
        (run / "prometheus" / "prometheus.yml").write_text("global:\n  scrape_interval: 1s\n")
        for key in ("format", "scrape_interval_s", "trace_file", "trace_sha256", "calibration_file", "forwards"):
            data.pop(key, None)
        data["plan"]["trace"] = str(trace)
        data["sizing"]["source"] = f"measured now (2026-12-01 13:39:21 UTC; cached in {cache})"
        (run / "run.json").write_text(json.dumps(data))
    return root


def _figures(doc: dict) -> dict:
    return {r["run"]: (r["replica_seconds"], r["windows_in_slo"], r["p95_per_window"]["median_error"])
            for r in doc["runs"]}


def test_a_full_run_directory_gives_the_same_figures(doc, tmp_path):
    assert _figures(calibrate(_full_run_dir(tmp_path))) == _figures(doc)


def test_recording_a_reduced_copy_round_trips(doc, tmp_path):
    out = tmp_path / "copy"
    written = record(FIXTURE, out)
    assert {p.name for p in written} >= {"wl.txt", "capacity-38f8d2e5cbe8886c.json", "run.json"}
    again = calibrate(out)
    assert _figures(again) == _figures(doc)
    # The fixture's run.json files predate the record's version and are read as version 1; a copy carries it.
    assert all("version" not in json.loads(p.read_text()) for p in FIXTURE.glob("*/run.json"))
    assert {json.loads(p.read_text())["version"] for p in out.glob("*/run.json")} == {RUN_RECORD_VERSION}
    assert again["measured_forwards"] == doc["measured_forwards"]


def test_the_command_prints_the_table_and_writes_json(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "calibration.json"
    assert cal.main([str(FIXTURE), "--json", str(path)], stdout=out, stderr=err) == 0, err.getvalue()
    text = out.getvalue()
    assert "| **slo** | mean of 2 |" in text and "all met" in text
    written = json.loads(path.read_text())
    assert set(written["policies"]) == set(POLICIES) and len(written["runs"]) == 6


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "fx"
    shutil.copytree(FIXTURE, root)
    return root


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("breakage, words", [
    (lambda root: shutil.rmtree(root), "no such directory"),
    (lambda root: [shutil.rmtree(p.parent) for p in root.glob("*/run.json")], "no <run>/run.json in it"),
    (lambda root: (root / "slo-1" / "run.json").write_text("{"), "cannot read a run's figures"),
    (lambda root: _edit(root / "slo-1" / "run.json", lambda d: d.pop("windows")), "missing windows"),
    (lambda root: (root / "wl.txt").write_text("1\n2\n"), "not the trace the run replayed"),
    (lambda root: _edit(root / "slo-1" / "run.json", lambda d: d["loadtest"].update(seed=7)), "not the same arrivals"),
    (lambda root: _edit(root / "slo-1" / "run.json", lambda d: d["autoscaler_env"].update(MIN_REPLICAS="0")),
     "autoscaler_env: MIN_REPLICAS=0"),
    (lambda root: _edit(root / "slo-1" / "run.json", lambda d: d["plan"].update(max_replicas=3)),
     "the run's plan 1..3"),
    (lambda root: _edit(root / "slo-1" / "run.json", lambda d: d["plan"].update(name="nope")), "unknown policy 'nope'"),
    (lambda root: (root / "capacity-38f8d2e5cbe8886c.json").unlink(), "its calibration"),
    (lambda root: _edit(root / "slo-1" / "run.json", lambda d: d.update(version=2)),
     "slo-1/run.json: version 2 is not one this reader knows"),
    (lambda root: _edit(root / "slo-1" / "run.json", lambda d: d["plan"].update(min_replicas="1")),
     "slo-1/run.json: plan.min_replicas='1' must be an integer"),
    (lambda root: _edit(root / "slo-1" / "run.json", lambda d: d.update(windows=[])), "windows must be a non-empty"),
], ids=["no-dir", "no-runs", "bad-json", "no-windows", "other-trace", "other-seed", "bad-env", "other-bounds",
        "bad-policy", "no-calibration", "newer-version", "bad-plan-type", "empty-windows"])
def test_bad_input_exits_2_naming_the_problem(tmp_path, breakage, words):
    root = _copy(tmp_path)
    breakage(root)
    out, err = io.StringIO(), io.StringIO()
    assert cal.main([str(root)], stdout=out, stderr=err) == 2
    assert err.getvalue().startswith(f"{cal.PROG}: error: ") and words in err.getvalue(), err.getvalue()


def test_a_negative_slowdown_is_refused():
    err = io.StringIO()
    assert cal.main([str(FIXTURE), "--shared-core-slowdown", "-1"], stdout=io.StringIO(), stderr=err) == 2
    assert "--shared-core-slowdown=-1 must be >= 0" in err.getvalue()


# --- measuring the forwards from a run's Server-Timing ------------------------------------------------------------
def _batch_table(batches: list[tuple[float, int, float]]) -> RequestTable:
    """Requests answered in batches: (forward start s, images, forward ms), each answered 1 ms after its forward."""
    rows = []
    for start, images, forward_ms in batches:
        for _ in range(images):
            rows.append((start - 0.01, start + forward_ms / 1000 + 0.001, forward_ms))
    sent = np.array([r[0] for r in rows])
    done = np.array([r[1] for r in rows])
    model = np.array([r[2] for r in rows])
    n = len(rows)
    return RequestTable(trace_second=sent.astype(np.int64), image=np.full(n, "a.jpg", dtype=object),
                        scheduled_s=sent, sent_s=sent, latency_ms=(done - sent) * 1000, service_ms=(done - sent) * 1000,
                        status=np.full(n, 200), kind=np.full(n, "ok", dtype=object), server_queue_ms=np.full(n, 1.0),
                        server_preprocess_ms=np.full(n, 1.0), server_model_ms=model)


def test_measure_forwards_recovers_the_line_the_overlap_slowdown_and_the_start_up(tmp_path):
    line = lambda b: 8.0 + 14.0 * b  # noqa: E731
    batches, t = [], 0.0
    for k in range(400):                      # one worker alone: sizes 1..8 in turn, 10 ms apart
        b = 1 + k % 8
        batches.append((t, b, line(b)))
        t += line(b) / 1000 + 0.01
    t += 1.0
    for k in range(200):                      # two workers' forwards side by side, each overlapped all along:
        batches.append((t, 2, line(2) * 1.25))           # x (1 + 0.25 x 1)
        batches.append((t, 2, line(2) * 1.25 + 0.001))   # (another worker's: its own Server-Timing value)
        t += 0.3
    up = t + 1.0                              # a scale-up: forwards x1.4 while the worker starts
    for k in range(20):
        batches.append((up + 0.4 + k * 0.1, 4, line(4) * 1.4))
    csv = tmp_path / "requests.csv"
    write_requests_csv(csv, _batch_table(batches))
    m = measure_forwards(csv, [{"t_s": up, "direction": "up"}], startup_s=2.6, max_workers=2.0)
    assert m["batches"] == len(batches)
    assert m["one_worker_line_ms"] == pytest.approx([8.0, 14.0], abs=0.05)
    assert m["overlap_slowdown"] == pytest.approx(0.25, abs=0.01)
    assert m["startup_ratio"] == pytest.approx(1.4, abs=0.01) and m["startup_batches"] == 20
    # A run that never had two workers says nothing about sharing.
    assert measure_forwards(csv, [], startup_s=2.6, max_workers=1.0)["overlap_slowdown"] is None


@pytest.mark.parametrize("forward_ms, done_s, sizes, forwards", [
    ([10.0, 10.0, 12.0], None, [2, 1], [10.0, 12.0]),
    ([10.0, 12.0, 10.0], [0.0, 0.1, 0.005], [2, 1], [10.0, 12.0]),
    ([10.0, 10.0], [0.0, 1.0], [1, 1], [10.0, 10.0]),
    ([], None, [], []),
], ids=["equal-forwards-without-times", "answered-together", "same-forward-a-second-apart", "no-answers"])
def test_answers_regroup_into_their_batches(forward_ms, done_s, sizes, forwards):
    batches = regroup_batches(forward_ms, done_s)
    assert batches.sizes.tolist() == sizes and batches.forward.tolist() == forwards
