"""How fast is the service, against its own ceiling and a prototype-style baseline, on this machine?

    python -m bench.bench_service [--rounds 2] [--seconds 8] [--quick]

Measures, in one run:
  1. the in-process ceiling: decode + preprocess + model with no HTTP, for several batch sizes and
     splits of the cores into processes x torch threads;
  2. the service under gunicorn over HTTP at saturation (closed-loop concurrency sweep), p50/p99, run with
     the split of the cores the ceiling found best, and the CPU the load generator itself used;
  3. open-loop p99 at 70% of the service's max throughput vs. unloaded single-request latency;
  4. open-loop 2x overload: goodput and the p99 latency of the 503 answers;
  5. the prototype-style baseline (bench/prototype_app.py) at saturation, with its spread over the rounds
     (its oversubscribed threads make it swing from round to round).
The ceiling, service and baseline alternate within the run (this machine's speed drifts 10-20% from
one minute to the next) and the table reports ratios. Results also go to bench/results/service-*.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.clients import Sample, closed_loop, open_loop  # noqa: E402
from tests.support import free_port, http_ok, start_child, wait_until  # noqa: E402

IMAGES_DIR = REPO / "loadtester" / "images"


def bench_images() -> list[bytes]:
    files = sorted(p for p in IMAGES_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"no images in {IMAGES_DIR}")
    return [p.read_bytes() for p in files]


# --- 1. the in-process ceiling ---

def _ceiling_worker(batch: int, threads: int, seconds: float, images: list[bytes], loaded, start, results) -> None:
    import torch

    from inference.model import Classifier
    from inference.preprocess import preprocess

    torch.set_num_threads(threads)
    model = Classifier("random")
    model.warm_up(1, batch)
    loaded.put(os.getpid())
    start.wait()
    done, i = 0, 0
    deadline = time.perf_counter() + seconds
    begun = time.perf_counter()
    while time.perf_counter() < deadline:
        tensors = [preprocess(images[(i + k) % len(images)], 10**9) for k in range(batch)]
        model.probabilities(torch.stack(tensors))
        done += batch
        i += batch
    results.put(done / (time.perf_counter() - begun))


def ceiling(processes: int, threads: int, batch: int, seconds: float, images: list[bytes]) -> float:
    """Images/s of `processes` independent workers, each decoding, preprocessing and running batches."""
    ctx = mp.get_context("spawn")  # torch and OpenMP are not fork-safe
    loaded, start, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_ceiling_worker, args=(batch, threads, seconds, images, loaded, start, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    for _ in procs:  # every worker has loaded and warmed its model: start the clock for all at once
        loaded.get(timeout=300)
    start.set()
    rates = [results.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join(30)
    return sum(rates)


# --- servers ---

def start_service(tmp: Path, workers: int, threads: int = 1):
    port = free_port()
    env = {"MODEL_WEIGHTS": "random", "TORCH_THREADS": str(threads), "PORT": str(port), "BIND_HOST": "127.0.0.1",
           "WEB_CONCURRENCY": str(workers), "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}
    child = start_child("service", [sys.executable, "-m", "gunicorn", "-c", "inference/gunicorn.conf.py"], tmp,
                        env=env)
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout_s=300, what="the service")
    return child, port


def start_baseline(tmp: Path, workers: int):
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}",
            "--no-control-socket", "bench.prototype_app:app"]
    child = start_child("baseline", argv, tmp)
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout_s=300, what="the baseline")
    return child, port


def best_closed_loop(port: int, levels: list[int], seconds: float, images: list[bytes]) -> tuple[int, Sample]:
    results = [(c, closed_loop(port, c, seconds, images)) for c in levels]
    return max(results, key=lambda r: r[1].rate())


# --- the run ---

def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_service", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="times each candidate is measured (best kept)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measurement, s")
    parser.add_argument("--quick", action="store_true", help="one round of short measurements (a smoke run)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    if args.quick:
        args.rounds, args.seconds = 1, 4.0
    cpus = len(os.sched_getaffinity(0))
    images = bench_images()
    splits = sorted({(cpus, 1), (1, cpus)})
    ceiling_configs = [(p, t, b) for (p, t) in splits for b in ((1, 8, 16) if t == 1 else (8,))]
    levels = sorted({2 * cpus, 8 * cpus, 16 * cpus})
    best: dict[str, float] = {}
    detail: dict[str, dict] = {}
    baseline_rounds: list[float] = []

    def keep(name: str, value: float, info: dict) -> None:
        if value > best.get(name, -1):
            best[name], detail[name] = value, info

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp_name:
        tmp = Path(tmp_name)
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
            for p, t, b in ceiling_configs:
                rate = ceiling(p, t, b, args.seconds, images)
                print(f"  ceiling {p} proc x {t} thread, batch {b}: {rate:.1f} img/s", file=sys.stderr)
                keep(f"ceiling {p}x{t} b{b}", rate, {})
                keep("ceiling", rate, {"processes": p, "threads": t, "batch": b})
            # The service runs with the split of the cores the ceiling found best so far (workers x threads).
            split = detail["ceiling"]["processes"], detail["ceiling"]["threads"]
            child, port = start_service(tmp / f"service{r}", *split)
            try:
                c, sample = best_closed_loop(port, levels, args.seconds, images)
                print(f"  service ({split[0]} workers x {split[1]} threads): {sample.rate():.1f} req/s at "
                      f"concurrency {c}; load generator {sample.client_cores:.2f} cores", file=sys.stderr)
                keep("service", sample.rate(), {"concurrency": c, "p50_ms": sample.pct(50), "p99_ms": sample.pct(99),
                                                "non_200": len([s for s in sample.statuses if s != 200]),
                                                "workers": split[0], "threads": split[1],
                                                "client_cores": sample.client_cores})
            finally:
                child.stop()
            child, port = start_baseline(tmp / f"baseline{r}", cpus)
            try:
                c, sample = best_closed_loop(port, levels[:2], args.seconds, images)
                print(f"  baseline: {sample.rate():.1f} req/s at concurrency {c}", file=sys.stderr)
                baseline_rounds.append(sample.rate())
                keep("baseline", sample.rate(), {"concurrency": c, "p50_ms": sample.pct(50), "p99_ms": sample.pct(99)})
            finally:
                child.stop()

        split = detail["service"]["workers"], detail["service"]["threads"]
        child, port = start_service(tmp / "service-open", *split)
        url = f"http://127.0.0.1:{port}"
        try:
            unloaded = closed_loop(port, 1, args.seconds, images)
            max_rps = best["service"]
            at70 = open_loop(url, 0.7 * max_rps, max(10.0, 2 * args.seconds), seed=1)
            over = open_loop(url, 2.0 * max_rps, max(10.0, 2 * args.seconds), seed=2)
        finally:
            child.stop()

    ceiling_rps = best["ceiling"]
    rows = [
        ("1. in-process ceiling (best split/batch)", f"{ceiling_rps:.1f} img/s", "1.00",
         "{processes} proc x {threads} thread, batch {batch}".format(**detail["ceiling"])),
        *[(f"   ceiling {name.split(' ', 1)[1]}", f"{v:.1f} img/s", f"{v / ceiling_rps:.2f}", "")
          for name, v in best.items() if name.startswith("ceiling ")],
        ("2. service over HTTP at saturation", f"{best['service']:.1f} req/s", f"{best['service'] / ceiling_rps:.2f}",
         "{workers} workers x {threads} threads; p50 {p50_ms:.0f} ms, p99 {p99_ms:.0f} ms at concurrency "
         "{concurrency}; the load generator used {client_cores:.2f} cores".format(**detail["service"])),
        ("3. unloaded single-request latency", f"{unloaded.pct(50):.0f} ms p50", "",
         f"p99 {unloaded.pct(99):.0f} ms"),
        ("   open loop at 70% of max: p99", f"{at70.pct(99):.0f} ms", f"{at70.pct(99) / unloaded.pct(50):.2f}",
         f"x unloaded p50; {at70.rate():.1f} req/s ok, {len(at70.statuses) - at70.statuses.count(200)} not ok"),
        ("4. open loop at 2x max: goodput", f"{over.rate():.1f} req/s", f"{over.rate() / best['service']:.2f}",
         f"x max; {over.statuses.count(503)} answered 503, their p99 {over.pct(99, 503):.1f} ms; load generator "
         f"{over.client_cores:.2f} cores"),
        ("5. prototype-style baseline", f"{best['baseline']:.1f} req/s", f"{best['baseline'] / ceiling_rps:.2f}",
         f"best of {len(baseline_rounds)} rounds (spread {min(baseline_rounds):.1f}-{max(baseline_rounds):.1f}); "
         f"service / baseline = {best['service'] / max(best['baseline'], 1e-9):.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nmachine: {machine()}")
    print(f"{'measure':<{width}}  {'value':>14}  {'ratio':>6}  note")
    for name, value, ratio, note in rows:
        print(f"{name:<{width}}  {value:>14}  {ratio:>6}  {note}")
    targets = {
        "served >= 0.90 x ceiling": best["service"] / ceiling_rps >= 0.90,
        "served >= 1.5 x baseline": best["service"] >= 1.5 * best["baseline"],
        "p99 at 70% <= 2 x unloaded": at70.pct(99) <= 2 * unloaded.pct(50),
        "2x overload goodput >= 0.90 x max": over.rate() >= 0.90 * best["service"],
        "503 answers p99 <= 5 ms": over.pct(99, 503) <= 5.0 if over.statuses.count(503) else None,
    }
    print("\ntargets: " + "; ".join(f"{k}: {'met' if v else 'MISSED' if v is not None else 'n/a'}"
                                    for k, v in targets.items()))
    print(f"split of the cores: the ceiling was highest with {detail['ceiling']['processes']} process(es) x "
          f"{detail['ceiling']['threads']} thread(s) at batch {detail['ceiling']['batch']}; the service ran with "
          f"{split[0]} worker(s) x {split[1]} thread(s)")
    result = {"machine": machine(), "best": best, "detail": detail, "rows": rows, "targets": targets,
              "baseline_rounds_rps": baseline_rounds,
              "unloaded_p50_ms": unloaded.pct(50), "open70_p99_ms": at70.pct(99),
              "overload_goodput_rps": over.rate(), "overload_503_p99_ms": over.pct(99, 503)}
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"service-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"results: {out}")
    return result


if __name__ == "__main__":
    main()
