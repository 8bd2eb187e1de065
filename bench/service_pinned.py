"""Row (a) of the service benchmark: the unit of a replica, with the load generator out of its way.

One worker with one thread runs on one core; the load generator (this process's threads) runs on another;
the ceiling is measured on the worker's core, and the ideal queue has one server. So the load generator's
own CPU is outside the figures, and the comparison is the same on any machine with two or more cores.
(The benchmark's other rows run two workers sharing every core with the load generator.)

Pinning uses the calling thread's CPU affinity (Linux applies sched_setaffinity to one thread): processes
and threads started while it is set inherit it. Goodput is the 200s answered, from their scheduled time,
within the service's wait budget (MAX_QUEUE_WAIT_MS, at least two full batches' forwards) plus one full
batch's forward at the ceiling measured on that core. Per second. (Admission promises the forward's end
within the budget; the extra forward is the HTTP work's share.) At 2x a tenth of the load comes from
bench/probe.py, a process of its own that times the service's 503s without the load generator's event loop;
its 200s count towards goodput like the load generator's.
At saturation it also splits the worker's CPU per request (service_parts.front_cpu): the model thread, and
of the other threads what is not decoding: the HTTP front (gunicorn, Flask, metrics, JSON).
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from pathlib import Path

from bench import probe
from bench.clients import Sample, open_loop
from bench.cpu_quota import PERIOD_US, cpu_group, joined
from bench.service_parts import (Candidate, bench_image_paths, best_closed_loop, ceiling, decode_cpu_ms, front_cpu,
                                 ideal_p99_ms, start_service)
from inference.config import ServiceConfig

MAX_BATCH = ServiceConfig().max_batch_size   # the service's default, which row (a) serves with
# The share of the 2x overload sent by the probe (bench/probe.py), which times the 503s without the load
# generator's event loop in the figure; the load generator sends the rest, so the total stays 2x.
PROBE_SHARE = 0.1


@contextmanager
def pinned(cores: set[int]):
    """Run the block (and whatever it starts) on `cores` only."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def goodput_within_s(ceiling_ips: dict[int, float]) -> float:
    """The wait budget the service admits by, plus one forward: a full batch at the measured ceiling."""
    batch_s = MAX_BATCH / ceiling_ips[MAX_BATCH]
    return max(ServiceConfig().max_queue_wait_ms / 1000.0, 2 * batch_s) + batch_s


def goodput_rps(within_s: float, elapsed_s: float, *samples: Sample) -> float:
    """The 200s answered within `within_s`, per second of `elapsed_s`, over the samples of one run (the load
    generator's and the probe's)."""
    good = sum(1 for sample in samples for status, latency in zip(sample.statuses, sample.latencies_s)
               if status == 200 and latency <= within_s)
    return good / elapsed_s if elapsed_s else 0.0


def run_pinned(candidate: Candidate, images: list[bytes], seconds: float, work_dir: Path,
               extra_env: dict[str, str] | None = None, cpu_fraction: float | None = None,
               quota_period_us: int = PERIOD_US) -> dict | None:
    """Row (a) for `candidate` (the service's settings with `extra_env`), or None on a machine with one core.
    With `cpu_fraction`, the worker (and its ceiling) get that share of their core as a CFS quota per
    `quota_period_us` (bench/cpu_quota.py; raises QuotaUnavailable where none can be set)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    server, client = {cores[-1]}, {cores[0]}
    open_s = max(10.0, 2 * seconds)
    with cpu_group(cpu_fraction, period_us=quota_period_us) if cpu_fraction else nullcontext() as group:
        with pinned(server), joined(group) if group else nullcontext():
            ceiling_ips = {b: ceiling(candidate, 1, 1, b, seconds, images) for b in (1, MAX_BATCH)}
            decode_ms = decode_cpu_ms(images)
            child, port = start_service(work_dir / ("pinned-quota" if group else "pinned"), candidate, 1, 1, extra_env)
        url = f"http://127.0.0.1:{port}"
        try:
            with pinned(client):
                concurrency, saturated = best_closed_loop(port, [2, 8, 16], seconds, images)
                max_rps = saturated.rate()
                cpu = front_cpu(child.proc.pid, port, concurrency, seconds, images, decode_ms)
                at70 = open_loop(url, 0.7 * max_rps, open_s, seed=1)
                prober = probe.start(port, PROBE_SHARE * max_rps, open_s, 3, bench_image_paths())
                over = open_loop(url, (2.0 - PROBE_SHARE) * max_rps, open_s, seed=2)
                probed = probe.as_sample(probe.collect(prober, timeout_s=open_s + 120), over.elapsed_s)
        finally:
            child.stop()
    ideal70 = ideal_p99_ms(at70, 1, ceiling_ips, MAX_BATCH)
    within_s = goodput_within_s(ceiling_ips)
    goodput = goodput_rps(within_s, over.elapsed_s, over, probed)
    return {
        "server_core": cores[-1], "client_core": cores[0], "ceiling_img_s": ceiling_ips,
        "max_rps": max_rps, "concurrency": concurrency, "of_ceiling": max_rps / max(ceiling_ips.values()),
        "open70_p99_ms": at70.pct(99), "open70_ideal_p99_ms": ideal70, "open70_client_cores": at70.client_cores,
        "goodput_within_s": within_s, "overload_goodput_rps": goodput, "overload_goodput_of_max": goodput / max_rps,
        "overload_503": over.statuses.count(503), "overload_200_p99_ms": over.pct(99),
        "overload_503_from_send_p99_ms": over.pct(99, 503, "from_send_s"),
        "overload_503_send_lag_p99_ms": over.pct(99, 503, "send_lag_s"),
        "probe_503": probed.statuses.count(503), "probe_503_p50_ms": probed.pct(50, 503),
        "probe_503_p99_ms": probed.pct(99, 503),
        "cpu_per_request_ms": cpu, "cpu_fraction": cpu_fraction,
        "quota_period_ms": quota_period_us / 1000 if cpu_fraction else None,
    }


def label(a: dict) -> str:
    """(a), or (a, 0.5 core) for the variant under a CPU quota (with its period where not the kernel's 100 ms)."""
    if not a.get("cpu_fraction"):
        return "(a)"
    period = a.get("quota_period_ms")
    return f"(a, {a['cpu_fraction']:g} core" + (f" per {period:g} ms)" if period and period != PERIOD_US / 1000 else ")")


def pinned_rows(name: str, a: dict | None, why_not: str = "one core only: no core to pin the load generator to"
                ) -> list[tuple[str, str, str, str]]:
    if a is None:
        return [(f"{name}, row (a)", "n/a", "", why_not)]
    has_503 = a["overload_503"] > 0
    r = label(a)
    return [
        (f"{name}, {r} 1 worker x 1 thread on core {a['server_core']}", f"{a['max_rps']:.1f} req/s",
         f"{a['of_ceiling']:.2f}", f"x its ceiling on that core ({max(a['ceiling_img_s'].values()):.1f} img/s); "
         f"load generator on core {a['client_core']}, concurrency {a['concurrency']}"),
        (f"   {r} open loop at 70%: p99", f"{a['open70_p99_ms']:.0f} ms",
         f"{a['open70_p99_ms'] / a['open70_ideal_p99_ms']:.2f}",
         f"x the ideal single-server queue's p99 ({a['open70_ideal_p99_ms']:.0f} ms)"),
        (f"   {r} open loop at 2x: goodput", f"{a['overload_goodput_rps']:.1f} req/s",
         f"{a['overload_goodput_of_max']:.2f}",
         f"x max (200s within {a['goodput_within_s'] * 1000:.0f} ms: wait budget + one forward); 200s' p99 {a['overload_200_p99_ms']:.0f} ms; "
         f"{a['overload_503']} answered 503"
         + (f", their p99 {a['overload_503_from_send_p99_ms']:.1f} ms from the send (send lag p99 "
            f"{a['overload_503_send_lag_p99_ms']:.1f} ms)" if has_503 else "")),
        (f"   {r} open loop at 2x: 503 p99 (probe)", f"{a['probe_503_p99_ms']:.1f} ms", "",
         f"from connect() to the first byte, {a['probe_503']} 503s to a blocking probe in its own process "
         f"({PROBE_SHARE:g} of the 2x; p50 {a['probe_503_p50_ms']:.1f} ms)"),
        (f"   {r} saturated: CPU per request", f"{a['cpu_per_request_ms']['front_ms']:.2f} ms", "",
         f"outside decoding and the model thread (model thread {a['cpu_per_request_ms']['model_thread_ms']:.1f} ms, "
         f"other threads {a['cpu_per_request_ms']['other_threads_ms']:.2f} ms of which decoding "
         f"{a['cpu_per_request_ms']['decode_ms']:.2f} ms)"),
    ]


def pinned_targets(a: dict | None) -> dict[str, bool | None]:
    if a is None:
        return {}
    r = label(a)
    return {
        f"{r} served >= 0.90 x its ceiling": a["of_ceiling"] >= 0.90,
        f"{r} p99 at 70% <= 1.5 x ideal single-server p99": a["open70_p99_ms"] <= 1.5 * a["open70_ideal_p99_ms"],
        f"{r} 2x overload goodput >= 0.90 x max": a["overload_goodput_of_max"] >= 0.90,
        f"{r} 503 p99 from the send (probe) <= 5 ms": a["probe_503_p99_ms"] <= 5.0 if a["probe_503"] else None,
        f"{r} CPU per request outside decoding and the model thread <= 1.5 ms": a["cpu_per_request_ms"]["front_ms"] <= 1.5,
    }
