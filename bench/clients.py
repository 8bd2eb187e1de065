"""The service benchmark's HTTP clients: closed loop (each client sends its next request when the last is
answered) and open loop (Poisson arrivals through the project's own load tester), with the CPU the load
generator itself used, so a table can say what share of the cores the service had."""

from __future__ import annotations

import http.client
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    latencies_s: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    scheduled_s: list[float] = field(default_factory=list)   # open loop: when each request was due
    # Open loop only, per answered request: from the send (not the scheduled time), and the load generator's
    # own lag between the two, which a latency counted from the scheduled time includes.
    from_send_s: list[float] = field(default_factory=list)
    send_lag_s: list[float] = field(default_factory=list)
    # Open loop only, per 200 answer: its Server-Timing `model` (its batch's forward) and `preprocess`.
    server_model_s: list[float] = field(default_factory=list)
    server_preprocess_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    client_cores: float = 0.0   # CPU the load generator (this process) used meanwhile, in cores

    def rate(self, status: int = 200) -> float:
        return sum(1 for s in self.statuses if s == status) / self.elapsed_s if self.elapsed_s else 0.0

    def pct(self, q: float, status: int = 200, measure: str = "latencies_s") -> float:
        """The q-th percentile in ms of `measure` (latencies_s, from_send_s or send_lag_s) over one status."""
        values = sorted(v for v, s in zip(getattr(self, measure), self.statuses) if s == status)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] * 1000


def post(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/jpeg"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def closed_loop(port: int, concurrency: int, seconds: float, images: list[bytes], warmup_s: float = 2.0) -> Sample:
    """`concurrency` clients, each sending its next request when the last one is answered."""
    sample = Sample()
    lock = threading.Lock()
    t_start = time.perf_counter() + warmup_s
    t_end = t_start + seconds

    def client(k: int) -> None:
        i = k
        while True:
            began = time.perf_counter()
            if began >= t_end:
                return
            status = post(port, images[i % len(images)])
            ended = time.perf_counter()
            i += concurrency
            if t_start <= ended <= t_end:  # throughput = completions inside the window
                with lock:
                    sample.latencies_s.append(ended - began)
                    sample.statuses.append(status)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sample.elapsed_s = seconds
    sample.client_cores = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    return sample


def open_loop(url: str, rate_rps: float, seconds: float, seed: int) -> Sample:
    """Poisson arrivals at `rate_rps` through the project's load tester (latency from the scheduled time)."""
    from loadtester import Options, run
    from loadtester.records import read_requests_csv

    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "constant.txt"
        trace.write_text("\n".join([f"{rate_rps:.3f}"] * int(seconds)) + "\n")
        out = Path(tmp) / "out"
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with open(os.devnull, "w") as quiet:
            run(Options(url=url, trace=trace, out=out, seed=seed, progress=False, timeout_s=60), console=quiet)
        sample = Sample(elapsed_s=float(int(seconds)),
                        client_cores=(time.process_time() - cpu0) / (time.perf_counter() - wall0))
        table = read_requests_csv(out / "requests.csv")
    answered = ~np.isnan(table.latency_ms) & (table.status != 0)
    sample.latencies_s = (table.latency_ms[answered] / 1000).tolist()
    sample.statuses = table.status[answered].tolist()
    sample.from_send_s = (table.service_ms[answered] / 1000).tolist()
    sample.send_lag_s = (table.send_lag_ms[answered] / 1000).tolist()
    timed = (answered & (table.status == 200) & ~np.isnan(table.server_model_ms)
             & ~np.isnan(table.server_preprocess_ms))
    sample.server_model_s = (table.server_model_ms[timed] / 1000).tolist()
    sample.server_preprocess_s = (table.server_preprocess_ms[timed] / 1000).tolist()
    sample.scheduled_s = table.scheduled_s[~np.isnan(table.scheduled_s)].tolist()
    return sample
