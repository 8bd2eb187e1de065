"""The calibration document (compare.py) as `python -m sim.calibrate` prints it: the inputs, the fitted
profile, the measured forwards, and per run and per policy the table against the goals."""

from __future__ import annotations

from pathlib import Path

from sim.calibration.agreement import GOALS


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def table_lines(doc: dict) -> list[str]:
    lines = ["| policy | run | replica-s real | sim | error | ok | windows in SLO real | sim | diff | ok "
             "| p95/window median error | ok | p95 bias: all, 1 worker, 2 workers |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|---|---|"]

    def bias(p95):
        parts = [p95.get("bias")] + [p95["by_workers"].get(n, {}).get("bias") for n in ("1", "2")]
        return ", ".join("-" if b is None else f"{b:+.0%}" for b in parts)

    def line(name, label, row):
        rs, win, p95, g = row["replica_seconds"], row["windows_in_slo"], row["p95_per_window"], row["goals"]
        err = "n/a" if rs["error"] is None else f"{rs['error']:+.1%}"
        med = "n/a" if p95["median_error"] is None else f"{p95['median_error']:.1%}"
        lines.append(f"| {name} | {label} | {rs['real']:g} | {rs['sim']:g} | {err} | {_ok(g['replica_seconds'])} "
                     f"| {win['real']:g} | {win['sim']:g} | {win['difference']:+g} | {_ok(g['windows_in_slo'])} "
                     f"| {med} | {_ok(g['p95_per_window'])} | {bias(p95)} |")

    for name, summary in doc["policies"].items():
        for row in doc["runs"]:
            if row["policy"] == name:
                line(name, row["run"], row)
        line(f"**{name}**", f"mean of {len(summary['runs'])}", summary)
    return lines


def report_lines(doc: dict) -> list[str]:
    inputs = doc["inputs"]
    lines = [f"calibration: {doc['run_dir']}: {len(doc['runs'])} runs, {inputs['simulations']} simulations; trace "
             f"{Path(inputs['trace']).name} x{inputs['loadtest']['scale']:g}, seed {inputs['loadtest']['seed']} "
             f"({inputs['loadtest']['arrivals']}), scrape every {inputs['scrape_interval_s']:g} s, shared-core "
             f"slowdown {inputs['shared_core_slowdown']:g}"]
    for p in doc["profiles"]:
        prof = p["profile"]
        lines.append(f"profile: {prof['source']}: model(b) = {prof['model_intercept_ms']:g} + "
                     f"{prof['model_per_image_ms']:g} x b ms ({prof['saturation_rps']:.1f} req/s in full batches), "
                     f"overhead {prof['overhead_ms']:g} ms, unloaded {prof['unloaded_ms']:.1f} ms, queue "
                     f"{prof['queue_limit']}, start-up {prof['startup_s']:g} s")
        steps = ", ".join(f"{s['offered_rps']:g}: {s['p95_ms'][0]:.0f}/{s['p95_ms'][1]:.0f}" for s in p["probe_replay"])
        lines.append(f"  the probe's open-loop steps replayed (req/s: measured/simulated p95 ms): {steps}")
    measured = doc.get("measured_forwards") or {}
    if measured:
        lines.append("measured in the runs' Server-Timing (batches regrouped): one worker's forward (ms) "
                     + ", ".join(f"{run} {m['one_worker_line_ms'][0]:g} + {m['one_worker_line_ms'][1]:g} x b"
                                 for run, m in measured.items()))
        k = [f"{run} {m['overlap_slowdown']:g}" for run, m in measured.items() if m.get("overlap_slowdown") is not None]
        up = [f"{run} x{m['startup_ratio']:g}" for run, m in measured.items() if m.get("startup_ratio") is not None]
        if k or up:
            lines.append(f"  forwards x(1 + k x overlapped share): k = {', '.join(k) or 'n/a'}; while a worker "
                         f"started: {', '.join(up) or 'n/a'} (the model: k = {doc['inputs']['shared_core_slowdown']:g} "
                         "for both, a starting worker counting as one busy forward)")
    lines += ["", *table_lines(doc), ""]
    g = GOALS
    missed = [name for name, s in doc["policies"].items() if not all(s["goals"].values())]
    lines.append(f"goals per policy (the repeats' mean): replica-seconds within {g['replica_seconds_error']:.0%}, "
                 f"windows in SLO within {g['windows_in_slo_difference']}, median p95-per-window error under "
                 f"{g['p95_median_error']:.0%}: " + ("all met" if not missed else f"MISSED by {', '.join(missed)}"))
    return lines
