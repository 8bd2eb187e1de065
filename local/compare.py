"""The comparison: one table (markdown, JSON, CSV), one plot, and the targets with PASS or MISS."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from local.config import Options
from local.machine import machine_line
from local.plots import plot_comparison
from local.report import missed_windows, what_ran

# (column, header, how it is shown) for the table; the JSON and CSV hold the raw numbers.
COLUMNS = (
    ("p50_ms", "p50 ms", "{:.0f}"),
    ("p95_ms", "p95 ms", "{:.0f}"),
    ("p99_ms", "p99 ms", "{:.0f}"),
    ("slo_windows", "windows in SLO", "{:.1%}"),
    ("errors", "failed", "{:d}"),
    ("rejected_503", "503", "{:d}"),
    ("connection_losses", "lost", "{:d}"),
    ("replica_seconds", "replica-s", "{:.0f}"),
    ("mean_replicas", "mean workers", "{:.2f}"),
    ("scale_events", "scale events", "{:d}"),
    ("reversals", "reversals", "{:d}"),
)

# What the slo policy is expected to achieve on the default trace (reported as PASS or MISS).
TARGET_WINDOWS = 0.99
TARGET_COST_CUT = 0.25      # vs hpa-50
TARGET_P95_CUT = 0.30       # vs static-min


def row_of(name: str, result: dict) -> dict:
    lat = result["latency_ms"]
    return {
        "run": name, "policy": result["plan"]["policy"], "p50_ms": lat["p50"], "p95_ms": lat["p95"],
        "p99_ms": lat["p99"], "slo_windows": result["slo"]["window_attainment"],
        "windows_met": result["slo"]["windows_met"], "windows": result["slo"]["windows"],
        "requests": result["requests"]["scheduled"], "ok": result["requests"]["ok"],
        "errors": result["errors_total"], "rejected_503": result["rejected_503"],
        "connection_losses": result["connection_losses"], "replica_seconds": result["replica_seconds"],
        "mean_replicas": result["mean_replicas"], "scale_events": result["scale_events"],
        "scale_ups": result["scale_ups"], "scale_downs": result["scale_downs"], "reversals": result["reversals"],
    }


def targets(rows: dict[str, dict]) -> list[dict]:
    """Each target: what it asks, what was measured, PASS / MISS (or n/a when a run it needs is missing)."""
    slo = rows.get("slo")
    out = []

    def add(target: str, measured: str, ok: bool | None) -> None:
        out.append({"target": target, "measured": measured, "verdict": "n/a" if ok is None else
                    ("PASS" if ok else "MISS")})

    if slo is None:
        return [{"target": "all targets", "measured": "the slo run is not part of this comparison", "verdict": "n/a"}]
    share = slo["slo_windows"]
    add(f"slo: >= {TARGET_WINDOWS:.0%} of 10 s windows with p95 within the SLO",
        f"{share:.1%} ({slo['windows_met']}/{slo['windows']})" if share is not None else "-",
        None if share is None else share >= TARGET_WINDOWS)
    hpa = rows.get("hpa-50")
    if hpa and hpa["replica_seconds"]:
        cut = 1 - slo["replica_seconds"] / hpa["replica_seconds"]
        add(f"slo: >= {TARGET_COST_CUT:.0%} fewer replica-seconds than hpa-50",
            f"{cut:+.1%} ({slo['replica_seconds']:.0f} vs {hpa['replica_seconds']:.0f})", cut >= TARGET_COST_CUT)
    else:
        add(f"slo: >= {TARGET_COST_CUT:.0%} fewer replica-seconds than hpa-50", "hpa-50 not run", None)
    static = rows.get("static-min")
    if static and static["p95_ms"] and slo["p95_ms"] is not None:
        cut = 1 - slo["p95_ms"] / static["p95_ms"]
        add(f"slo: p95 >= {TARGET_P95_CUT:.0%} lower than static-min",
            f"{cut:+.1%} ({slo['p95_ms']:.0f} vs {static['p95_ms']:.0f} ms)", cut >= TARGET_P95_CUT)
    else:
        add(f"slo: p95 >= {TARGET_P95_CUT:.0%} lower than static-min", "static-min not run", None)
    return out


def _cell(fmt: str, value) -> str:
    return "-" if value is None else fmt.format(value)


def table_lines(rows: dict[str, dict]) -> list[str]:
    lines = ["| run | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(fmt, row[key]) for key, _, fmt in COLUMNS) + " |")
    return lines


def target_lines(checks: list[dict]) -> list[str]:
    return ["| target | measured | result |", "|---|---|---|"] + [
        f"| {c['target']} | {c['measured']} | {c['verdict']} |" for c in checks]


def write_comparison(out_dir: Path, options: Options, results: dict[str, dict], machine: dict, trace_text: str,
                     command: str, failed: dict[str, str] | None = None) -> dict:
    rows = {name: row_of(name, result) for name, result in results.items()}
    checks = targets(rows)
    (out_dir / "comparison.json").write_text(json.dumps({"machine": machine, "options": options.as_dict(),
                                                         "trace": trace_text, "runs": rows, "targets": checks},
                                                        indent=1) + "\n")
    with open(out_dir / "comparison.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(next(iter(rows.values())).keys()))
        writer.writeheader()
        writer.writerows(rows.values())
    table = table_lines(rows)
    (out_dir / "comparison.md").write_text("\n".join(table + [""] + target_lines(checks)) + "\n")
    plot_comparison(out_dir / "comparison.png", results, options.slo_p95_ms,
                    f"{trace_text.split(' (')[0]}, SLO p95 {options.slo_p95_ms:g} ms - {machine_line(machine)}")

    lines = ["# Policy comparison on the local stack", ""]
    lines += what_ran(options, f"runs: {', '.join(rows)} ({options.min_replicas}.."
                               f"{options.max_replicas_effective} workers; static-min and static-max hold the "
                               "bounds, hpa-50 and hpa-90 are the HPA algorithm at 50% and 90% CPU)",
                      trace_text, machine, command)
    lines += ["", "## Results", "", "Latency over ok requests, from the scheduled send time. \"windows in SLO\": "
              "10 s windows whose p95 (failed requests counted as too slow) is within the SLO. \"failed\": every "
              "request without a 2xx answer; \"503\": rejected by a full queue; \"lost\": no HTTP answer at all. "
              "replica-s: ready workers integrated over the replay.", ""]
    lines += table + ["", "## Targets", ""] + target_lines(checks)
    lines += ["", "![comparison](comparison.png)", ""]
    if "slo" in results:
        lines += ["## Windows the slo run missed", ""] + missed_windows(results["slo"]) + [""]
    lines += ["## Runs", ""] + [f"- [{name}]({name}/report.md): `{name}/`" for name in rows]
    lines += [f"- {name}: FAILED ({why}); see `{name}/logs/`" for name, why in (failed or {}).items()] + [""]
    (out_dir / "report.md").write_text("\n".join(lines))
    return {"rows": rows, "targets": checks}
