"""End to end: the load tester against the real service (gunicorn, random weights) scraped by a real
Prometheus, through the command line, for a few seconds."""

from __future__ import annotations

import csv

import json
import subprocess

import numpy as np
import pytest
import requests

from loadtester import read_requests_csv, summarize
from loadtester.plot import plot_timeline
from support import PYTHON, REPO, scrape_config, start_gunicorn, start_prometheus, wait_until
from test_loadtester_plot import REPLICAS, png_size

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    service = start_gunicorn(tmp, workers=1)
    try:
        prometheus = start_prometheus(tmp, scrape_config(service.extra["port"]))
    except BaseException:
        service.stop()
        raise
    yield service, prometheus
    prometheus.stop()
    service.stop()


def _workers_scraped(prometheus_url: str) -> bool:
    result = requests.get(f"{prometheus_url}/api/v1/query", params={"query": "sum(inference_workers)"},
                          timeout=5).json()["data"]["result"]
    return bool(result) and float(result[0]["value"][1]) >= 1


def test_replay_against_the_real_service(stack, tmp_path):
    service, prometheus = stack
    wait_until(lambda: _workers_scraped(prometheus.extra["url"]), timeout_s=60,
               what="Prometheus to scrape the service's inference_workers")
    trace = tmp_path / "trace.txt"
    trace.write_text("# six quiet seconds\n" + "3\n" * 6)
    out = tmp_path / "out"
    proc = subprocess.run([PYTHON, "loadtester/load_tester.py", "--url", service.extra["url"], "--trace", str(trace),
                           "--out", str(out), "--prometheus", prometheus.extra["url"], "--no-progress",
                           "--arrivals", "uniform", "--slo-ms", "2000"],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["replicas.csv", "requests.csv", "summary.json", "timeline.png"]

    table = read_requests_csv(out / "requests.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert len(table) == 18
    assert table.kind.tolist() == ["ok"] * 18, summary["requests"]["errors"]
    assert (table.status == 200).all()
    # The service's Server-Timing header made it into every row, and its parts fit inside the latency.
    for column in (table.server_queue_ms, table.server_preprocess_ms, table.server_model_ms):
        assert np.isfinite(column).all()
    assert (table.server_preprocess_ms + table.server_model_ms <= table.service_ms).all()

    recomputed = summarize(table, slo_ms=2000.0, duration_s=summary["throughput"]["duration_s"])
    for key in ("requests", "throughput", "latency_ms", "slo", "sender_lag_ms", "server_timing_ms"):
        assert recomputed[key] == summary[key], key
    assert summary["latency_ms"]["p50"] > 0

    replicas = read_replicas_csv(out / "replicas.csv")
    assert replicas == summary["replicas"]
    assert {value for _, value in replicas["workers"]} == {1.0}
    assert replicas["workers"][0][0] <= 2.0, "the series covers the start of the run"

    # timeline.png is listed once and has the replica panel: it is the size of the same data drawn with the
    # fetched series (a picture without them is shorter, tests/test_loadtester_plot.py).
    assert summary["run"]["files"].count("timeline.png") == 1
    drawn = plot_timeline(tmp_path / "redrawn.png", summary["per_second"], summary["windows"], 2000.0,
                          summary["slo"]["window_s"], replicas=summary["replicas"])
    assert drawn[REPLICAS] == ["workers"]
    assert png_size(out / "timeline.png") == png_size(tmp_path / "redrawn.png")


def read_replicas_csv(path) -> dict:
    """replicas.csv (t_s, series, value rows) read back into {series: [[t_s, value], ...]}."""
    series: dict[str, list[list[float]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            series.setdefault(row["series"], []).append([float(row["t_s"]), float(row["value"])])
    return series
