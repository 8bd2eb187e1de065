"""timeline.png, the one timeline of a run: which panels and series it draws from what the run recorded."""

from __future__ import annotations

import struct

import pytest

from loadtester.plot import plot_timeline

LOAD = "requests/s"
LATENCY = "latency ms (10-s windows)"
ERRORS = "errors % (10-s windows)"
REPLICAS = "replicas / workers"
ALL_SERIES = {"workers": [[0.0, 1.0], [20.0, 2.0]], "desired_replicas": [[0.0, 1.0], [15.0, 2.0]],
              "current_replicas": [[0.0, 1.0], [16.0, 2.0]]}


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def draw(path, replicas: dict | None) -> dict[str, list[str]]:
    windows = [{"start_s": 10.0 * k, "requests": 20, "p50_ms": 40.0, "p95_ms": 90.0 + 50 * k, "p99_ms": 120.0,
                "error_rate": 0.0, "meets_slo": k < 2} for k in range(3)]
    per_second = {"second": list(range(30)), "offered_rps": [2.0] * 30, "achieved_rps": [2.0] * 30}
    return plot_timeline(path, per_second, windows, slo_ms=150.0, window_s=10.0, replicas=replicas, title="t")


@pytest.mark.parametrize("replicas, replica_panel", [
    (ALL_SERIES, ["workers", "desired_replicas", "current_replicas"]),
    ({"workers": ALL_SERIES["workers"]}, ["workers"]),
    ({}, None),
    (None, None),
], ids=["stack-all-series", "workers-only", "prometheus-without-series", "no-prometheus"])
def test_the_timeline_draws_the_replica_series_it_was_given(tmp_path, replicas, replica_panel):
    drawn = draw(tmp_path / "timeline.png", replicas)
    assert (tmp_path / "timeline.png").is_file()
    expected = {LOAD: ["offered (scheduled)", "achieved (ok responses)"],
                LATENCY: ["p50", "p95", "p99", "SLO 150 ms"], ERRORS: []}
    if replica_panel is not None:
        expected[REPLICAS] = replica_panel
    assert drawn == expected


def test_the_replica_panel_makes_the_picture_taller(tmp_path):
    """What tests of whole runs check a written timeline.png against: its size says whether it has replicas."""
    draw(tmp_path / "with.png", ALL_SERIES)
    draw(tmp_path / "without.png", None)
    (width, with_px), (same_width, without_px) = png_size(tmp_path / "with.png"), png_size(tmp_path / "without.png")
    assert width == same_width and with_px > without_px
