"""The ideal shared batching queue the service benchmark compares its tail with, and the batch-time line it
shares with the simulator: hand-computed cases."""

from __future__ import annotations

import math

import pytest

from bench.ideal_queue import ideal_latencies_s, served_slowdown
from sim.batch_time import BatchTime

TEN_MS_PLUS_FIVE = BatchTime.through(0.010, 0.045, 8)  # 10 ms for one image, +5 ms per extra image


@pytest.mark.parametrize("arrivals, servers, max_batch, expected", [
    ([0.0], 1, 8, [0.010]),
    ([0.0, 1.0], 1, 8, [0.010, 0.010]),
    ([0.0, 0.001, 0.002], 1, 8, [0.010, 0.009 + 0.015, 0.008 + 0.015]),
    ([0.0, 0.0, 0.0], 1, 2, [0.015, 0.015, 0.025]),
    ([0.0, 0.0, 0.0], 3, 8, [0.020, 0.020, 0.020]),
    ([0.0, 0.001], 2, 8, [0.010, 0.010]),
], ids=["alone", "apart", "batched-behind-the-first", "batch-cap", "a-free-server-takes-all-waiting", "second-server"])
def test_ideal_latencies(arrivals, servers, max_batch, expected):
    assert list(ideal_latencies_s(arrivals, servers, max_batch, TEN_MS_PLUS_FIVE)) == pytest.approx(expected)


@pytest.mark.parametrize("batch, expected_s", [(1, 0.010), (2, 0.015), (8, 0.045)], ids=["one", "two", "full"])
def test_batch_time_through_two_measured_points(batch, expected_s):
    assert TEN_MS_PLUS_FIVE(batch) == pytest.approx(expected_s)


@pytest.mark.parametrize("model_s, preprocess_s, expected", [
    ([0.010], [0.0], 1.0),
    ([0.020], [0.0], 2.0),
    ([0.008], [0.002], 1.0),
    ([0.013, 0.013], [0.001, 0.001], 1.0),
    ([0.030, 0.030, 0.010], [0.0, 0.0, 0.0], (0.030 + 0.010) / (0.015 + 0.010)),
    ([], [], math.nan),
], ids=["one-at-the-ceiling", "one-twice-as-slow", "decoding-counts", "two-of-one-batch",
        "batches-by-forward-time", "no-answers"])
def test_served_slowdown(model_s, preprocess_s, expected):
    got = served_slowdown(model_s, preprocess_s, TEN_MS_PLUS_FIVE)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_scaled_batch_time():
    assert TEN_MS_PLUS_FIVE.scaled(1.5)(2) == pytest.approx(0.0225)


@pytest.mark.parametrize("line, images, expected_ms", [
    (BatchTime(9.524, 15.476), 1, 25.0),
    (BatchTime(9.524, 15.476), 8, 133.332),
    (BatchTime(8.0, 14.0), 4, 64.0),
], ids=["default-profile-one", "default-profile-full", "fitted-line"])
def test_batch_time_in_ms_and_seconds(line, images, expected_ms):
    assert line.forward_ms(images) == pytest.approx(expected_ms)
    assert line(images) == pytest.approx(expected_ms / 1000)
