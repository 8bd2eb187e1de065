"""report.md of a demo run and of a comparison, and the console lines printed at a run's end.

The comparison's table, targets and plot are comparison/'s (the simulator reports the same); what is the
local stack's own is what ran, on what machine, how it was sized, and the runs' folders.
"""

from __future__ import annotations

import json
from pathlib import Path

from comparison.plots import plot_comparison
from comparison.table import row_of, write_comparison as write_comparison_files
from comparison.targets import target_lines
from loadtester.capacity_report import CapacityReport, table_lines
from loadtester.report import format_summary

from local.config import Options
from local.machine import machine_line
from planning.sizing import Sizing, derivation_lines

# A run's one timeline, relative to its folder: the load tester's picture (loadtester/plot.py), linked rather
# than redrawn so the report and the load tester's files show the same series.
TIMELINE = "loadtest/timeline.png"


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def results_rows(result: dict) -> list[tuple[str, str]]:
    req, lat, slo = result["requests"], result["latency_ms"], result["slo"]
    errors = ", ".join(f"{k} {v}" for k, v in req["errors"].items() if v) or "none"
    return [
        ("requests scheduled / ok", f"{req['scheduled']} / {req['ok']}"),
        ("failed requests", f"{req['failed']} ({errors})"),
        ("latency p50 / p95 / p99 / max", f"{_ms(lat['p50'])} / {_ms(lat['p95'])} / {_ms(lat['p99'])} / "
                                          f"{_ms(lat['max'])} ms"),
        (f"SLO: {slo['window_s']:g} s windows with p95 <= {slo['slo_ms']:g} ms",
         f"{_pct(slo['window_attainment'])} ({slo['windows_met']}/{slo['windows']})"),
        ("SLO: requests ok within the SLO", _pct(slo["request_attainment"])),
        ("replica-seconds (cost)", f"{result['replica_seconds']:.0f} (mean {result['mean_replicas']:.2f} workers "
                                   f"over {result['duration_s']:.0f} s, from {result['replica_seconds_source']})"),
        ("autoscaler decisions", f"{result['decisions']}: {result['scale_ups']} up, {result['scale_downs']} down, "
                                 f"{result['reversals']} direction reversals"),
    ]


def decisions_line(result: dict) -> str:
    return (f"autoscaler: {result['decisions']} decisions, {result['scale_ups']} scale-ups, "
            f"{result['scale_downs']} scale-downs, {result['reversals']} reversals; cost "
            f"{result['replica_seconds']:.0f} replica-seconds (mean {result['mean_replicas']:.2f} workers)")


def console_summary(run_dir: Path, result: dict) -> str:
    summary = json.loads((run_dir / "loadtest" / "summary.json").read_text())
    return format_summary(summary) + "\n" + decisions_line(result)


def events_table(result: dict, limit: int = 40) -> list[str]:
    events = result["events"]
    if not events:
        return ["No scale events."]
    lines = ["| t (s) | direction | workers | reason |", "|---:|---|---|---|"]
    for e in events[:limit]:
        lines.append(f"| {e['t_s']:.0f} | {e['direction']} | {e['from']} -> {e['to']} | {e['reason']} |")
    if len(events) > limit:
        lines.append(f"| ... | | | {len(events) - limit} more in decisions.jsonl |")
    return lines


def missed_windows(result: dict) -> list[str]:
    """The windows that missed the SLO with what was happening then: the first thing to read when tuning."""
    workers = result["replicas"].get("workers") or result["decision_ready"]
    window_s = result["slo"]["window_s"]
    offered_rps = result["per_second"].get("offered_rps", [])
    rows = []
    for w in result["windows"]:
        if not w["requests"] or w["meets_slo"]:
            continue
        lo, hi = w["start_s"], w["start_s"] + window_s
        during = [v for t, v in workers if lo <= t < hi]
        offered = offered_rps[int(lo):int(hi)]
        near = [f"{e['direction']} at {e['t_s']:.0f}s" for e in result["events"] if lo - 15 <= e["t_s"] < hi]
        ready = f"{min(during):.0f}-{max(during):.0f}" if during else "-"
        rate = f"{sum(offered) / len(offered):.1f}" if offered else "-"
        rows.append(f"| {lo:.0f}-{hi:.0f} | {rate} | {_ms(w['p95_ms'])} | {100 * (w['error_rate'] or 0):.1f}% | "
                    f"{ready} | {', '.join(near) or '-'} |")
    if not rows:
        return ["Every window met the SLO."]
    return ["| window (s) | offered req/s | p95 ms | errors | ready workers | scale events (from 15 s before) |",
            "|---|---:|---:|---:|---|---|"] + rows


def what_ran(options: Options, sizing: Sizing, plan_text: str, trace_text: str, machine: dict,
             command: str) -> list[str]:
    t = sizing.timings
    return [
        f"- command: `{command}`",
        f"- machine: {machine_line(machine)}; load average at start {machine['load_average_1_5_15']} "
        f"({machine['os']})",
        f"- trace: {trace_text}; Poisson arrivals, seed {options.seed}",
        f"- {plan_text}",
        f"- service: gunicorn workers as replicas, TORCH_THREADS=1 each, MODEL_WEIGHTS={options.model_weights}, "
        f"MAX_QUEUE_WAIT_MS={sizing.max_queue_wait_ms:g}, MAX_QUEUE={sizing.max_queue} images per worker",
        f"- SLO: p95 <= {sizing.slo_ms:g} ms per 10 s window; autoscaler capacity estimate "
        f"{sizing.capacity_within_slo_rps:g} req/s per worker, {sizing.target_inflight_per_replica:g} in flight "
        f"(sizing: {sizing.source})",
        f"- autoscaler windows: poll {t.poll_interval_s:g} s, rate {t.rate_window_s} s, stable {t.stable_window_s:g} s, "
        f"panic {t.panic_window_s:g} s, rise {t.rise_window_s:g} s, scale-down stabilization "
        f"{t.scale_down_stabilization_s:g} s, one step per {t.scale_down_step_s:g} s, forecast "
        f"{t.forecast_horizon_s:g} s (confirmed over {t.forecast_confirm_s:g} s); HPA scale-down stabilization "
        f"{t.hpa_scale_down_stabilization_s:g} s",
        "- Prometheus: the `prometheus` binary, prometheus/prometheus-local.yml (1 s scrape), data in "
        "`prometheus/data/`",
    ]


def sizing_lines(sizing: Sizing) -> list[str]:
    """The measurement the run was sized from and what followed from it."""
    lines = [f"Sizing: {sizing.source}.", ""]
    if sizing.probe is not None:
        report = CapacityReport.from_dict(sizing.probe)
        lines += ["```"] + table_lines(report, sizing.slo_ms) + ["```", ""]
    return lines + ["What follows from it:", ""] + derivation_lines(sizing)


def write_demo_report(run_dir: Path, options: Options, sizing: Sizing, result: dict, machine: dict,
                      trace_text: str, command: str) -> Path:
    plan = result["plan"]
    policy = plan["policy"] + (f" at {plan['hpa_target_cpu']:.0%} CPU" if plan.get("hpa_target_cpu") else "")
    lines = [f"# Local stack run: {result['name']}", ""]
    lines += what_ran(options, sizing, f"policy: {policy}, {plan['min_replicas']}..{plan['max_replicas']} workers "
                               f"(started with {plan['initial_replicas']})", trace_text, machine, command)
    lines += ["", "## Results", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in results_rows(result)]
    lines += ["", f"![timeline]({TIMELINE})", "",
              "The load tester's plot: offered and achieved load, latency per window against the SLO, errors, and "
              "the workers, desired and current replicas from Prometheus.", "", "## Scale events", ""]
    lines += events_table(result)
    lines += ["", "## Windows that missed the SLO", ""] + missed_windows(result)
    lines += ["", "## How the run was sized", ""] + sizing_lines(sizing)
    lines += ["", "## Files", "",
              "- `loadtest/`: the load tester's requests.csv (one row per request), summary.json, timeline.png, "
              "replicas.csv",
              "- `decisions.jsonl`: the autoscaler's decision log (one JSON line per decision)",
              "- `run.json`: every number above, the replica series and the scale events",
              "- `logs/`: gunicorn, Prometheus, autoscaler and load tester output",
              "- `prometheus/`: the configuration used and Prometheus' data (`prometheus --storage.tsdb.path=...` "
              "reopens it)", ""]
    problems = result["replica_problems"]
    if problems:
        lines += ["Prometheus problems while fetching replicas: " + "; ".join(problems), ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_comparison(out_dir: Path, options: Options, sizing: Sizing, results: dict[str, list[dict]],
                     machine: dict, trace_text: str, command: str, failed: dict[str, str] | None = None) -> dict:
    """comparison.json, .csv, .md, .png and report.md. `results`: each run name -> its repeated results (in
    the order they ran)."""
    per_run = {name: [row_of(name, r["plan"]["policy"], r) for r in runs] for name, runs in results.items() if runs}
    outcome = write_comparison_files(out_dir, per_run, {
        "machine": machine, "options": options.as_dict(), "sizing": sizing.as_dict(), "trace": trace_text})
    rows, checks, noise = outcome["rows"], outcome["targets"], outcome["indistinguishable"]
    firsts = {name: runs[0] for name, runs in results.items() if runs}
    plot_comparison(out_dir / "comparison.png", firsts, sizing.slo_ms,
                    f"{trace_text.split(' (')[0]}, SLO p95 {sizing.slo_ms:g} ms - {machine_line(machine)}")

    repeats = max(len(runs) for runs in per_run.values())
    lines = ["# Policy comparison on the local stack", ""]
    lines += what_ran(options, sizing, f"runs: {', '.join(rows)} ({options.min_replicas}.."
                      f"{options.max_replicas_effective} workers; static-min and static-max hold the bounds, hpa-50 "
                      f"and hpa-90 are the HPA algorithm at 50% and 90% CPU, kpa Knative's KPA), each {repeats} "
                      "time(s), interleaved", trace_text, machine, command)
    lines += ["", "## Results", "", "Latency over ok requests, from the scheduled send time. \"windows in SLO\": "
              "10 s windows whose p95 (failed requests counted as too slow) is within the SLO. \"failed\": every "
              "request without a 2xx answer; \"503\": rejected by a full queue; \"lost\": no HTTP answer at all. "
              "replica-s: ready workers integrated over the replay. With repeated runs each cell is the median "
              "and, in brackets, the range: where two runs' ranges overlap, this machine's noise is as large as "
              "their difference.", ""]
    lines += outcome["table"] + ["", "## Targets", ""] + target_lines(checks)
    lines += ["", "## What the repeats can tell apart", ""] + ([f"- {n}" for n in noise] or [
        "Every figure of slo lies outside the other runs' ranges." if repeats > 1 else
        "One run per policy: no spread was measured (use --repeat 2 or more to rank policies)."])
    lines += ["", "![comparison](comparison.png)", "", "## How the run was sized", ""] + derivation_lines(sizing)
    if "slo" in results and results["slo"]:
        lines += ["", "## Windows the first slo run missed", ""] + missed_windows(results["slo"][0])
    lines += ["", "## Runs", ""] + [f"- [{r['name']}]({r['run_dir_name']}/report.md): `{r['run_dir_name']}/`"
                                    for runs in results.values() for r in runs]
    lines += [f"- {name}: FAILED ({why}); see `{name}/logs/`" for name, why in (failed or {}).items()] + [""]
    (out_dir / "report.md").write_text("\n".join(lines))
    return outcome
