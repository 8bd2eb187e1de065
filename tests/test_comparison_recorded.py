"""`python -m comparison RUN_DIR ...`: load tester runs recorded against a deployment, compared with the table
and plot of `make compare` (comparison/recorded.py, comparison/cli.py).

The runs are recorded for real: the load tester's command line replays a trace against the stub server and
reads the replica series from a real Prometheus, which scrapes a small exporter of `inference_workers` whose
count the test changes while a replay runs (two workers throughout for one run; one, two, then one again for
the other), as a cluster's pods would come and go.
"""

from __future__ import annotations

import csv
import json
import subprocess
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from comparison.events import series_events
from comparison.recorded import RecordedRunError, parse_run_argument, read_run
from comparison.table import row_of, table_lines
from support import (PYTHON, REPO, LocalHTTPServer, scrape_config, start_child, start_prometheus, start_stub_server,
                     wait_until)

TRACE = "5\n" * 12   # 60 requests over 12 s


class WorkersExporter(LocalHTTPServer):
    """/metrics with one gauge, `inference_workers`, at whatever count the test sets."""

    def __init__(self, workers: int):
        self.workers = workers
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = f"# TYPE inference_workers gauge\ninference_workers {exporter.workers}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


def _workers_in_prometheus(url: str) -> float | None:
    result = requests.get(f"{url}/api/v1/query", params={"query": "sum(inference_workers)"},
                          timeout=5).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _replay_argv(stub_url: str, prometheus_url: str, trace, out) -> list[str]:
    return [PYTHON, "loadtester/load_tester.py", "--url", stub_url, "--trace", str(trace), "--out", str(out),
            "--prometheus", prometheus_url, "--arrivals", "uniform", "--seed", "3", "--no-progress"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two runs of one trace: `static-max` with two workers throughout, `slo` scaled 1 -> 2 -> 1 while it ran."""
    tmp = tmp_path_factory.mktemp("recorded")
    trace = tmp / "trace.txt"
    trace.write_text(TRACE)
    exporter = WorkersExporter(2)
    stub = start_stub_server(tmp, delay_ms=10)
    prometheus = None
    try:
        prometheus = start_prometheus(tmp, scrape_config(exporter.port))
        prom_url = prometheus.extra["url"]

        def settle(count: int) -> None:
            exporter.workers = count
            wait_until(lambda: _workers_in_prometheus(prom_url) == count, timeout_s=60,
                       what=f"Prometheus to scrape {count} workers")

        def answered() -> int:
            return requests.get(f"{stub.extra['url']}/stats", timeout=5).json()["requests"]

        settle(2)
        proc = subprocess.run(_replay_argv(stub.extra["url"], prom_url, trace, tmp / "static-max"), cwd=REPO,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr

        settle(1)
        before = answered()
        child = start_child("loadtester", _replay_argv(stub.extra["url"], prom_url, trace, tmp / "slo"),
                            tmp / "logs")
        try:
            wait_until(lambda: answered() >= before + 10, timeout_s=60, what="the replay's 10th request")
            settle(2)
            wait_until(lambda: answered() >= before + 25, timeout_s=60, what="the replay's 25th request")
            settle(1)
            assert child.proc.wait(180) == 0, child.log()
        finally:
            child.stop()
        yield {"dirs": {"static-max": tmp / "static-max", "slo": tmp / "slo"}, "tmp": tmp}
    finally:
        if prometheus is not None:
            prometheus.stop()
        stub.stop()
        exporter.close()


def _summary(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "comparison", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.slow
def test_the_load_tester_records_replica_seconds_of_the_workers_series(recorded):
    for name, workers in (("static-max", {2.0}), ("slo", {1.0, 2.0})):
        summary = _summary(recorded["dirs"][name])
        assert {v for _, v in summary["replicas"]["workers"]} == workers, name
        run = summary["run"]
        duration_s = run["end_unix_s"] - run["start_unix_s"]
        cost = summary["cost"]
        assert cost["series"] == "workers"
        if name == "static-max":
            assert cost["replica_seconds"] == pytest.approx(2 * duration_s, abs=0.1)
        else:
            assert duration_s < cost["replica_seconds"] < 2 * duration_s


@pytest.mark.slow
def test_two_recorded_runs_make_the_table_of_make_compare(recorded, tmp_path):
    dirs = recorded["dirs"]
    out = tmp_path / "comparison"
    proc = _compare(f"static-max={dirs['static-max']}", f"slo={dirs['slo']}", f"slo={dirs['slo']}", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "comparison.json").read_text())
    rows = data["runs"]
    assert list(rows) == ["static-max", "slo"]

    for name in ("static-max", "slo"):
        summary, row = _summary(dirs[name]), rows[name]
        latency = summary["latency_ms"]
        assert (row["p50_ms"], row["p95_ms"], row["p99_ms"]) == (latency["p50"], latency["p95"], latency["p99"])
        assert row["windows_in_slo"] == summary["slo"]["window_attainment"]
        assert row["failed"] == summary["requests"]["failed"] == 0
        # The cost the comparison shows is the one the load tester recorded for the run.
        assert row["replica_seconds"] == summary["cost"]["replica_seconds"]
    assert (rows["static-max"]["scale_events"], rows["static-max"]["reversals"]) == (0, 0)
    slo = data["repeats"]["slo"][0]
    assert (slo["scale_ups"], slo["scale_downs"], slo["reversals"]) == (1, 1, 1)
    assert rows["slo"]["repeats"] == 2

    # The same table as `make compare`: the columns and cells that comparison/table.py makes of these rows,
    # on the console and in comparison.md, and the CSV's columns are a comparison row's.
    table = table_lines(rows)
    assert table[0] == table_lines({"x": data["repeats"]["slo"][0]})[0]
    assert "\n".join(table) in proc.stdout
    assert (out / "comparison.md").read_text().startswith("\n".join(table) + "\n")
    with open(out / "comparison.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == list(data["repeats"]["slo"][0]) + ["repeat"]
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["load"]["seed"] == 3 and data["load"]["scale"] == 1.0


@pytest.mark.slow
def test_the_local_stacks_report_makes_the_same_table_of_the_same_runs(recorded, tmp_path):
    """local/report.py (`make compare`) handed the recorded runs' figures writes the table the command did."""
    from local.config import Options
    from local.machine import describe_machine
    from local.report import write_comparison
    from planning.sizing import derive

    runs = [read_run(name, path) for name, path in recorded["dirs"].items()]
    results = {run.name: [{**run.figures(), "name": run.name, "run_dir_name": run.name,
                           "plan": {"policy": run.name.split("-")[0]}}] for run in runs}
    local = write_comparison(tmp_path / "local", Options(mode="compare"),
                             derive(None, quick=True, max_replicas=2, worker_capacity_rps=20.0), results,
                             describe_machine(), "trace.txt", "test")
    out = tmp_path / "cli"
    proc = _compare(*(f"{name}={path}" for name, path in recorded["dirs"].items()), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "comparison.md").read_text().startswith("\n".join(local["table"]) + "\n")


@pytest.mark.slow
def test_runs_of_different_loads_are_not_compared(recorded, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    summary = _summary(recorded["dirs"]["slo"])
    summary["run"]["parameters"]["seed"] = 4
    (other / "summary.json").write_text(json.dumps(summary))
    proc = _compare(str(recorded["dirs"]["slo"]), str(other), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "seed=4" in proc.stderr and "seed=3" in proc.stderr and "Traceback" not in proc.stderr


# --- without recording: the command's refusals and the scale events of a series ---------------------------

def _write_summary(path, **changes) -> None:
    summary = {"requests": {"scheduled": 1, "ok": 1, "failed": 0, "errors": {}}, "latency_ms": {}, "slo": {},
               "run": {"parameters": {}, "start_unix_s": 0.0, "end_unix_s": 1.0},
               "replicas": {"workers": [[0.0, 1.0]]}}
    summary.update(changes)
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps(summary))


@pytest.mark.parametrize("setup,words", [
    (lambda d: None, "no such directory"),
    (lambda d: d.mkdir(), "summary.json: no such file"),
    (lambda d: (d.mkdir(), (d / "summary.json").write_text("{")), "summary.json: cannot read it"),
    (lambda d: _write_summary(d, run={"parameters": {}}), "not a load tester's summary (missing run.start_unix_s, "
                                                          "run.end_unix_s)"),
    (lambda d: _write_summary(d, replicas={}), "no workers series"),
], ids=["missing-dir", "no-summary", "bad-json", "not-a-summary", "no-replica-series"])
def test_a_directory_that_is_no_recorded_run_is_refused_naming_it(tmp_path, setup, words):
    run_dir = tmp_path / "run"
    setup(run_dir)
    with pytest.raises(RecordedRunError) as err:
        read_run("run", run_dir)
    assert str(run_dir) in str(err.value) and words in str(err.value)
    proc = _compare(str(run_dir), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("text,expected", [
    ("runs/slo-1", ("slo-1", "runs/slo-1")),
    ("slo=runs/x", ("slo", "runs/x")),
    ("hpa-50=/tmp/a=b", ("hpa-50", "/tmp/a=b")),
], ids=["dir-named-after-its-folder", "named", "equals-sign-in-the-path"])
def test_run_arguments(text, expected):
    name, path = parse_run_argument(text)
    assert (name, str(path)) == expected


@pytest.mark.parametrize("text", ["=runs/x", "slo="], ids=["no-name", "no-dir"])
def test_a_malformed_run_argument_is_refused(text):
    with pytest.raises(RecordedRunError):
        parse_run_argument(text)


@pytest.mark.parametrize("points,expected", [
    ([], []),
    ([[0, 1], [1, 1], [2, 1]], []),
    ([[0, 1], [5, 3], [9, 3]], [(5, "up", 1, 3)]),
    ([[0, 1], [3, 2], [6, 1]], [(3, "up", 1, 2), (6, "down", 2, 1)]),
    ([[6, 1], [0, 1], [3, 2]], [(3, "up", 1, 2), (6, "down", 2, 1)]),          # out of order
    ([[0, 2], [1, float("nan")], [2, 2]], []),                                  # a missing sample is no event
], ids=["empty", "constant", "one-step-of-two", "up-then-down", "unsorted", "nan-gap"])
def test_scale_events_of_a_replica_series(points, expected):
    events = series_events(points)
    assert [(e["t_s"], e["direction"], e["from"], e["to"]) for e in events] == expected


def test_a_row_of_recorded_figures_has_the_comparisons_columns():
    """Recorded figures give every figure a comparison row reads (comparison/table.py row_of)."""
    from comparison.summary import run_figures

    summary = {"requests": {"scheduled": 2, "ok": 2, "failed": 0, "errors": {}},
               "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0}, "throughput": {},
               "slo": {"window_attainment": 1.0, "windows_met": 1, "windows": 1, "window_s": 10}}
    figures = run_figures(summary, [], {"workers": [[0, 1], [4, 2]]}, 0.0, 10.0, events_from="replicas")
    row = row_of("slo", "slo", figures)
    assert (row["replica_seconds"], row["scale_events"], row["mean_replicas"]) == (16.0, 1, 1.6)
    with pytest.raises(ValueError):
        run_figures(summary, [], {}, 0.0, 10.0, events_from="guess")
