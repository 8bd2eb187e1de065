"""The ideal shared batching queue the service benchmark compares its tail with: hand-computed cases."""

from __future__ import annotations

import pytest

from bench.ideal_queue import ideal_latencies_s, linear_batch_time

TEN_MS_PLUS_FIVE = linear_batch_time(0.010, 0.045, 8)  # 10 ms for one image, +5 ms per extra image


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
def test_linear_batch_time(batch, expected_s):
    assert TEN_MS_PLUS_FIVE(batch) == pytest.approx(expected_s)
