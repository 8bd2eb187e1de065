"""The service benchmark's open-loop sample: each answer's latency from its scheduled time splits into the
load generator's own send lag and the time from the send, so a table can say which side a tail is on.

Runs the real load tester against the stub server (loadtester/stub_server.py) on 127.0.0.1; the stub
stands in for the service, whose speed does not matter here.
"""

from __future__ import annotations

import math

import pytest

from bench.clients import Sample, open_loop
from support import start_stub_server


@pytest.mark.parametrize("measure, status, expected_ms", [
    ("latencies_s", 200, 30.0),
    ("from_send_s", 200, 20.0),
    ("send_lag_s", 200, 10.0),
    ("latencies_s", 503, 5.0),
], ids=["from-scheduled", "from-send", "send-lag", "other-status"])
def test_percentile_of_each_measure(measure, status, expected_ms):
    sample = Sample(latencies_s=[0.030, 0.005], from_send_s=[0.020, 0.004], send_lag_s=[0.010, 0.001],
                    statuses=[200, 503])
    assert sample.pct(99, status, measure) == pytest.approx(expected_ms)


def test_no_answers_of_a_status_is_nan():
    assert math.isnan(Sample(latencies_s=[0.01], from_send_s=[0.01], send_lag_s=[0.0], statuses=[200]).pct(99, 503))


def test_open_loop_splits_latency_into_lag_and_from_send(tmp_path):
    delay_ms = 40.0
    stub = start_stub_server(tmp_path, delay_ms=delay_ms)
    try:
        sample = open_loop(stub.extra["url"], rate_rps=20.0, seconds=2.0, seed=1)
    finally:
        stub.stop()
    assert len(sample.statuses) > 10 and set(sample.statuses) == {200}
    assert len(sample.from_send_s) == len(sample.send_lag_s) == len(sample.latencies_s)
    for latency, from_send, lag in zip(sample.latencies_s, sample.from_send_s, sample.send_lag_s):
        assert lag >= 0
        assert from_send >= delay_ms / 1000  # the stub holds every answer that long after it arrives
        assert latency == pytest.approx(from_send + lag, abs=1e-4)  # the CSV rounds each value to a microsecond
    # Every 200 carries the stub's Server-Timing: its forward time is the delay, its decoding none.
    assert sample.server_model_s == [pytest.approx(delay_ms / 1000)] * len(sample.statuses)
    assert sample.server_preprocess_s == [0.0] * len(sample.statuses)
