"""One replay from options to files: the Python API behind the command line.

    from loadtester import Options, run
    summary = run(Options(url="http://127.0.0.1:8000", out="runs/x", duration_s=60, progress=False))
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from dataclasses import replace

from loadtester.config import OptionError, Options, check_chosen_scale
from loadtester.fd_limit import raise_fd_limit
from loadtester.http_client import probe, resolve_target
from loadtester.images import load_images
from loadtester.plot import plot_timeline
from loadtester.progress import show_progress, write_status
from loadtester.prometheus import fetch_series, write_replicas_csv
from loadtester.records import write_requests_csv
from loadtester.replica_seconds import replica_cost
from loadtester.report import format_summary
from loadtester.schedule import build_schedule
from loadtester.sender import Replayer
from loadtester.stats import per_second_rates, summarize, window_stats
from loadtester.trace_sizing import TraceScale, choose_scale
from loadtester.workload import load_workload

# After Ctrl-C, how long requests already in flight may still finish before they are cancelled.
INTERRUPT_GRACE_S = 5.0


def run(options: Options | None = None, *, stop: threading.Event | None = None, console=None,
        **overrides) -> dict:
    """Replay the trace and write requests.csv, summary.json, timeline.png (and replicas.csv) in options.out.

    Raises OptionError, WorkloadError, ImageDirError (bad input) or UnreachableError before sending
    anything. `stop` (optional) ends the replay early like Ctrl-C does; the results so far are kept.
    Returns the summary written to summary.json.
    """
    options = options or Options()
    known = set(Options.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"run() got an unknown option {unknown[0]!r}; options are: {', '.join(sorted(known))}")
    options = replace(options, **overrides).validate()
    console = console or sys.stdout
    workload = load_workload(options.trace)
    photos = load_images(options.images)
    sized = trace_scale(options, workload.rates_rps)
    schedule = build_schedule(workload.rates_rps, seed=options.seed, arrivals=options.arrivals,
                              scale=sized.scale, speedup=options.speedup, duration_s=options.duration_s)
    target = resolve_target(options.url, options.endpoint)
    probe(target, timeout_s=min(5.0, options.timeout_s))
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError.not_allowed("--out", str(options.out),
                                      f"a directory that can be created ({exc.strerror})") from None

    print(f"replaying {options.trace} ({len(schedule)} requests over {schedule.duration_s:.0f} s, "
          f"{options.arrivals} arrivals, scale {sized.scale:g}, speedup {options.speedup:g}) "
          f"against {target.url}{target.path}; results in {options.out}/", file=sys.stderr, flush=True)
    print(f"trace scale {sized.scale:g} ({sized.how}): the trace's peak of {sized.peak_rps:.2f} req/s (highest "
          f"{sized.as_dict()['peak_window_s']:g} s mean) replayed at {sized.scaled_peak_rps:.2f} req/s",
          file=sys.stderr, flush=True)
    raise_fd_limit()  # each request in flight holds a socket; validate() allowed for the raised limit
    replayer = Replayer(target, schedule, photos, timeout_s=options.timeout_s, max_inflight=options.max_inflight)
    asyncio.run(_replay(replayer, options, stop))
    end_unix_s = time.time()

    table = replayer.result_table().quantized()
    duration_s = replayer.stopped_at_s if replayer.interrupted else schedule.duration_s
    out = options.out
    write_requests_csv(out / "requests.csv", table)
    summary = summarize(table, slo_ms=options.slo_ms, window_s=options.window_s, duration_s=duration_s)
    windows = window_stats(table, slo_ms=options.slo_ms, window_s=options.window_s)
    per_second = per_second_rates(table, duration_s=duration_s)
    files = ["requests.csv", "summary.json", "timeline.png"]
    problems: list[str] = []
    replicas: dict = {}
    if options.prometheus:
        replicas, problems = fetch_series(options.prometheus, replayer.start_unix_s, end_unix_s)
        if replicas:
            write_replicas_csv(out / "replicas.csv", replicas)
            files.append("replicas.csv")
    summary["run"] = {
        "parameters": options.as_dict(),
        "trace_seconds": workload.duration_s,
        "trace_requests": round(workload.total_requests, 3),
        "trace_scale": sized.as_dict(),
        "start_unix_s": round(replayer.start_unix_s, 3),
        "end_unix_s": round(end_unix_s, 3),
        "planned_duration_s": round(schedule.duration_s, 3),
        "planned_requests": len(schedule),
        "interrupted": replayer.interrupted,
        "images": [p.name for p in photos],
        "prometheus_problems": problems,
        "files": files,
    }
    summary["windows"] = windows
    summary["per_second"] = per_second
    summary["replicas"] = replicas
    summary["cost"] = replica_cost(replicas, end_unix_s - replayer.start_unix_s)
    try:
        plot_timeline(out / "timeline.png", per_second, windows, options.slo_ms, options.window_s,
                      replicas=replicas, title=f"{options.url}{options.endpoint}  trace {options.trace.name}  "
                                               f"scale {sized.scale:g}  speedup {options.speedup:g}")
    except Exception as exc:  # noqa: BLE001 - a plotting failure must not lose the numbers
        summary["run"]["files"].remove("timeline.png")
        summary["run"]["plot_problem"] = repr(exc)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary), file=console)
    print(f"results: {out}/ ({', '.join(summary['run']['files'])})", file=console)
    return summary


def trace_scale(options: Options, rates_rps) -> TraceScale:
    """The scale the options choose for this trace, held to --scale's range (raises OptionError)."""
    sized = choose_scale(rates_rps, options.speedup, scale=options.scale, peak_replicas=options.peak_replicas,
                         capacity_rps=options.capacity_rps, peak_rps=options.peak_rps)
    if options.peak_replicas is not None:
        check_chosen_scale(sized.scale, "--peak-replicas", options.peak_replicas)
    elif options.peak_rps is not None:
        check_chosen_scale(sized.scale, "--peak-rps", options.peak_rps)
    return sized


async def _replay(replayer: Replayer, options: Options, stop: threading.Event | None) -> None:
    loop = asyncio.get_running_loop()
    handled = []
    if threading.current_thread() is threading.main_thread():
        presses = []

        def on_signal() -> None:
            presses.append(1)
            if len(presses) == 1:
                print("\nstopping: no new requests; waiting up to "
                      f"{INTERRUPT_GRACE_S:g} s for those in flight (press Ctrl-C again to stop now)",
                      file=sys.stderr)
                replayer.request_stop()
            else:
                replayer.abort()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
            handled.append(sig)
    watchers = [asyncio.ensure_future(show_progress(replayer, options.window_s, options.progress))]
    if options.status_file is not None:
        watchers.append(asyncio.ensure_future(write_status(replayer, options.window_s, options.status_file)))
    try:
        await replayer.run(stop=stop, interrupt_drain_s=INTERRUPT_GRACE_S)
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for sig in handled:
            loop.remove_signal_handler(sig)

