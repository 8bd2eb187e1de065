"""The comparison table: one row per run (comparison/summary.py's figures), the median and range over
repeated runs, the markdown table, and the files comparison.json, comparison.csv and comparison.md.

A row (`row_of`): run, policy, p50_ms, p95_ms, p99_ms (over ok requests), windows_in_slo (the share of
10 s windows whose p95, failed requests counted as too slow, is within the SLO), windows_met, windows,
requests, ok, failed (no 2xx answer), rejected_503, connection_losses (no HTTP answer), replica_seconds,
mean_replicas, scale_events, scale_ups, scale_downs, reversals.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from comparison.targets import LOCAL_GOALS, indistinguishable, target_lines, targets

# (column, header, how it is shown) for the table; the JSON and CSV hold the raw numbers.
COLUMNS = (
    ("p50_ms", "p50 ms", "{:.0f}"),
    ("p95_ms", "p95 ms", "{:.0f}"),
    ("p99_ms", "p99 ms", "{:.0f}"),
    ("windows_in_slo", "windows in SLO", "{:.1%}"),
    ("failed", "failed", "{:d}"),
    ("rejected_503", "503", "{:d}"),
    ("connection_losses", "lost", "{:d}"),
    ("replica_seconds", "replica-s", "{:.0f}"),
    ("mean_replicas", "mean workers", "{:.2f}"),
    ("scale_events", "scale events", "{:d}"),
    ("reversals", "reversals", "{:d}"),
)
# With an oracle among the runs, one more column: each run's replica-seconds over the oracle's.
BASELINE = "oracle"


def row_of(name: str, policy: str, result: dict) -> dict:
    """The comparison's figures of one run, from comparison.summary.run_figures' result."""
    lat = result["latency_ms"]
    return {
        "run": name, "policy": policy, "p50_ms": lat["p50"], "p95_ms": lat["p95"],
        "p99_ms": lat["p99"], "windows_in_slo": result["slo"]["window_attainment"],
        "windows_met": result["slo"]["windows_met"], "windows": result["slo"]["windows"],
        "requests": result["requests"]["scheduled"], "ok": result["requests"]["ok"],
        "failed": result["errors_total"], "rejected_503": result["rejected_503"],
        "connection_losses": result["connection_losses"], "replica_seconds": result["replica_seconds"],
        "mean_replicas": result["mean_replicas"], "scale_events": result["scale_events"],
        "scale_ups": result["scale_ups"], "scale_downs": result["scale_downs"], "reversals": result["reversals"],
    }


def aggregate(runs: list[dict]) -> dict:
    """One row from the repeated runs of one policy: the median of every figure, and its min-max spread."""
    if len(runs) == 1:
        return dict(runs[0])
    out = {"run": runs[0]["run"], "policy": runs[0]["policy"], "repeats": len(runs), "spread": {}}
    for key, value in runs[0].items():
        if key in ("run", "policy") or not isinstance(value, (int, float)):
            continue
        values = sorted(r[key] for r in runs if r.get(key) is not None)
        if not values:
            out[key] = None
            continue
        mid = len(values) // 2
        median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
        out[key] = type(value)(median) if isinstance(value, int) and float(median).is_integer() else median
        out["spread"][key] = [values[0], values[-1]]
    return out


def _cell(fmt: str, value, spread: list | None = None) -> str:
    if value is None:
        return "-"
    text = fmt.format(value)
    if spread and spread[0] != spread[1]:
        text += f" ({_fmt_like(fmt, spread[0])}-{_fmt_like(fmt, spread[1])})"
    return text


def _fmt_like(fmt: str, value) -> str:
    return fmt.format(int(round(value)) if fmt == "{:d}" else value)


def table_lines(rows: dict[str, dict]) -> list[str]:
    """One line per run; with repeats, each cell is the median and, in brackets, the range over the runs."""
    base = rows.get(BASELINE, {}).get("replica_seconds")
    extra = [f"replica-s vs {BASELINE}"] if base else []
    lines = ["| run | " + " | ".join([h for _, h, _ in COLUMNS] + extra) + " |",
             "|---|" + "---:|" * (len(COLUMNS) + len(extra))]
    for name, row in rows.items():
        spread = row.get("spread", {})
        cells = [_cell(fmt, row[key] if fmt != "{:d}" or row[key] is None else int(round(row[key])), spread.get(key))
                 for key, _, fmt in COLUMNS]
        if base:
            cells.append(f"{row['replica_seconds'] / base:.2f}x")
        label = f"{name} (x{row['repeats']})" if row.get("repeats") else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def write_comparison(out_dir: Path, per_run: dict[str, list[dict]], context: dict,
                     goals: tuple[str, ...] = LOCAL_GOALS) -> dict:
    """comparison.json (`context`'s keys, then runs, repeats, targets, indistinguishable), comparison.csv (one
    line per run and repeat) and comparison.md (the table, the targets, what the repeats cannot tell apart).
    `per_run`: each run name -> the rows of its repeats, in the order they ran."""
    rows = {name: aggregate(runs) for name, runs in per_run.items() if runs}
    checks = targets(rows, goals)
    noise = indistinguishable(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps({
        **context, "runs": rows, "repeats": per_run, "targets": checks, "indistinguishable": noise}, indent=1) + "\n")
    with open(out_dir / "comparison.csv", "w", newline="") as fh:
        flat = [dict(r, repeat=k + 1) for runs in per_run.values() for k, r in enumerate(runs)]
        writer = csv.DictWriter(fh, fieldnames=list(flat[0].keys()))
        writer.writeheader()
        writer.writerows(flat)
    table = table_lines(rows)
    (out_dir / "comparison.md").write_text("\n".join(table + [""] + target_lines(checks) + [""] + noise) + "\n")
    return {"rows": rows, "targets": checks, "indistinguishable": noise, "table": table}
