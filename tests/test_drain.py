"""The seconds-per-image estimate admission plans with (inference/drain.py): a running mean plus twice the
running mean deviation, with RFC 6298's gains (1/8 for the mean, 1/4 for the deviation)."""

from __future__ import annotations

import pytest

from inference.drain import PerImageEstimate


@pytest.mark.parametrize("samples, expected", [
    ([], None),
    ([0.02], 0.02),
    ([0.02] * 10, 0.02),
    ([0.02, 0.04], 0.0225 + 2 * 0.005),                 # mean + 1/8 of 0.02, deviation 1/4 of 0.02
    ([0.05, 0.02], 0.04625 + 2 * 0.0075),               # a faster batch widens the margin too
    ([0.04] + [0.02] * 40, pytest.approx(0.02, rel=0.03)),
    ([0.02, 0.04] * 20, pytest.approx(0.052, abs=0.001)),  # mean 0.03, margin about 0.022
], ids=["none-before-the-first", "first-sample-is-the-estimate", "steady-batches-have-no-margin",
        "a-slow-batch-moves-the-mean-an-eighth-and-adds-a-margin", "a-fast-batch-widens-the-margin-too",
        "a-steady-cpu-returns-to-its-own-time", "throttled-alternating-batches-keep-a-margin"])
def test_the_estimate_is_the_mean_plus_twice_the_deviation(samples, expected):
    estimate = PerImageEstimate()
    returned = [estimate.add(sample) for sample in samples]
    assert estimate.seconds == (pytest.approx(expected) if isinstance(expected, float) else expected)
    assert returned[-1:] == ([estimate.seconds] if samples else [])
