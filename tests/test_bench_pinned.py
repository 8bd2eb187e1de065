"""Row (a) of the service benchmark: what it pins, how it counts goodput, and how it splits a worker's CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.clients import Sample
from bench.service_parts import bench_images, decode_cpu_ms, front_cpu
from bench.service_pinned import goodput_rps, goodput_within_s, label, pinned
from tests.support import start_gunicorn


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to pin to one of them")
def test_pinning_holds_for_what_the_block_starts_and_ends_with_it():
    before = os.sched_getaffinity(0)
    core = max(before)
    with pinned({core}):
        assert os.sched_getaffinity(0) == {core}
        child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                               capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == str([core])
    assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("row, expected", [
    ({"cpu_fraction": None, "quota_period_ms": None}, "(a)"),
    ({"cpu_fraction": 0.5, "quota_period_ms": 100.0}, "(a, 0.5 core)"),
    ({"cpu_fraction": 0.5, "quota_period_ms": 10.0}, "(a, 0.5 core per 10 ms)"),
], ids=["whole-core", "half-core-kernel-period", "half-core-short-period"])
def test_a_rows_label_names_its_quota_and_a_period_that_is_not_the_kernels(row, expected):
    assert label(row) == expected


@pytest.mark.parametrize("answers, expected_rps", [
    ([([200, 200, 200], [0.2, 0.9, 1.0])], 1.5),
    ([([200, 200], [1.01, 3.0])], 0.0),
    ([([503, 503, 200], [0.001, 0.002, 0.5])], 0.5),
    ([([], [])], 0.0),
    ([([200, 503], [0.5, 0.001]), ([200, 200, 0], [0.3, 1.5, 0.01])], 1.0),
], ids=["within-the-limit-counts", "late-answers-do-not", "503s-never-count", "nothing-answered",
        "the-probes-answers-count-too"])
def test_goodput_counts_200s_within_the_limit_per_second(answers, expected_rps):
    samples = [Sample(statuses=statuses, latencies_s=latencies) for statuses, latencies in answers]
    assert goodput_rps(1.0, 2.0, *samples) == pytest.approx(expected_rps)


@pytest.mark.parametrize("ceiling_ips, expected_s", [
    ({1: 30.0, 8: 32.0}, 0.5 + 0.25),
    ({1: 60.0, 8: 80.0}, 0.5 + 0.1),
    ({1: 8.0, 8: 10.0}, 1.6 + 0.8),
], ids=["budget-plus-a-forward", "fast-cpu", "slow-cpu-budget-is-two-batches"])
def test_goodput_limit_is_the_wait_budget_plus_one_forward(ceiling_ips, expected_s):
    assert goodput_within_s(ceiling_ips) == pytest.approx(expected_s)


def test_a_saturated_workers_cpu_is_split_into_the_model_thread_decoding_and_the_front(tmp_path):
    """front_cpu against a real one-worker service: the busiest thread is the model thread, and what the other
    threads use per request holds at least the decoding, measured in-process on the same images."""
    images = bench_images()
    server = start_gunicorn(tmp_path, workers=1)
    try:
        cpu = front_cpu(server.proc.pid, server.extra["port"], 8, 3.0, images, decode_cpu_ms(images, rounds=5))
    finally:
        server.stop()
    assert cpu["requests"] >= 8
    assert cpu["model_thread_ms"] > cpu["other_threads_ms"] > cpu["decode_ms"] > 0
    assert cpu["front_ms"] == pytest.approx(cpu["other_threads_ms"] - cpu["decode_ms"])
