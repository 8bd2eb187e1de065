"""The comparison: one table (markdown, JSON, CSV), one plot, and the targets with PASS or MISS."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from local.config import Options
from local.machine import machine_line
from local.plots import plot_comparison
from local.report import missed_windows, what_ran
from local.sizing import Sizing, derivation_lines

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


# The figures whose spread over repeated runs decides whether two policies can be told apart.
RANKED = (("p95_ms", "p95"), ("slo_windows", "windows in SLO"), ("replica_seconds", "replica-seconds"))


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


def overlap(a: dict, b: dict, key: str) -> bool:
    """True when the two rows' ranges of `key` over their repeats overlap: the runs cannot rank them."""
    ra = a.get("spread", {}).get(key)
    rb = b.get("spread", {}).get(key)
    if ra is None or rb is None:
        return False
    return ra[0] <= rb[1] and rb[0] <= ra[1]


def indistinguishable(rows: dict[str, dict], against: str = "slo") -> list[str]:
    """Sentences naming each figure on which `against` and another run cannot be told apart."""
    base = rows.get(against)
    if base is None or "spread" not in base:
        return []
    out = []
    for name, row in rows.items():
        if name == against:
            continue
        same = [label for key, label in RANKED if overlap(base, row, key)]
        if same:
            out.append(f"{against} vs {name}: not distinguishable on {', '.join(same)} (their ranges over "
                       f"{base['repeats']} runs overlap)")
    return out


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
            f"{cut:+.1%} ({slo['replica_seconds']:.0f} vs {hpa['replica_seconds']:.0f})"
            + _noise_note(slo, hpa, "replica_seconds"), cut >= TARGET_COST_CUT)
    else:
        add(f"slo: >= {TARGET_COST_CUT:.0%} fewer replica-seconds than hpa-50", "hpa-50 not run", None)
    static = rows.get("static-min")
    if static and static["p95_ms"] and slo["p95_ms"] is not None:
        cut = 1 - slo["p95_ms"] / static["p95_ms"]
        add(f"slo: p95 >= {TARGET_P95_CUT:.0%} lower than static-min",
            f"{cut:+.1%} ({slo['p95_ms']:.0f} vs {static['p95_ms']:.0f} ms)" + _noise_note(slo, static, "p95_ms"),
            cut >= TARGET_P95_CUT)
    else:
        add(f"slo: p95 >= {TARGET_P95_CUT:.0%} lower than static-min", "static-min not run", None)
    return out


def _noise_note(a: dict, b: dict, key: str) -> str:
    return "; the runs' ranges overlap: not distinguishable" if overlap(a, b, key) else ""


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
    lines = ["| run | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, row in rows.items():
        spread = row.get("spread", {})
        cells = [_cell(fmt, row[key] if fmt != "{:d}" or row[key] is None else int(round(row[key])), spread.get(key))
                 for key, _, fmt in COLUMNS]
        label = f"{name} (x{row['repeats']})" if row.get("repeats") else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def target_lines(checks: list[dict]) -> list[str]:
    return ["| target | measured | result |", "|---|---|---|"] + [
        f"| {c['target']} | {c['measured']} | {c['verdict']} |" for c in checks]


def write_comparison(out_dir: Path, options: Options, sizing: Sizing, results: dict[str, list[dict]],
                     machine: dict, trace_text: str, command: str, failed: dict[str, str] | None = None) -> dict:
    """`results`: each run name -> its repeated results (in the order they ran)."""
    per_run = {name: [row_of(name, r) for r in runs] for name, runs in results.items() if runs}
    rows = {name: aggregate(runs) for name, runs in per_run.items()}
    checks = targets(rows)
    noise = indistinguishable(rows)
    (out_dir / "comparison.json").write_text(json.dumps({
        "machine": machine, "options": options.as_dict(), "sizing": sizing.as_dict(), "trace": trace_text,
        "runs": rows, "repeats": per_run, "targets": checks, "indistinguishable": noise}, indent=1) + "\n")
    with open(out_dir / "comparison.csv", "w", newline="") as fh:
        flat = [dict(r, repeat=k + 1) for runs in per_run.values() for k, r in enumerate(runs)]
        writer = csv.DictWriter(fh, fieldnames=list(flat[0].keys()))
        writer.writeheader()
        writer.writerows(flat)
    table = table_lines(rows)
    (out_dir / "comparison.md").write_text("\n".join(table + [""] + target_lines(checks) + [""] + noise) + "\n")
    firsts = {name: runs[0] for name, runs in results.items() if runs}
    plot_comparison(out_dir / "comparison.png", firsts, sizing.slo_ms,
                    f"{trace_text.split(' (')[0]}, SLO p95 {sizing.slo_ms:g} ms - {machine_line(machine)}")

    repeats = max(len(runs) for runs in per_run.values())
    lines = ["# Policy comparison on the local stack", ""]
    lines += what_ran(options, sizing, f"runs: {', '.join(rows)} ({options.min_replicas}.."
                      f"{options.max_replicas_effective} workers; static-min and static-max hold the bounds, hpa-50 "
                      f"and hpa-90 are the HPA algorithm at 50% and 90% CPU), each {repeats} time(s), interleaved",
                      trace_text, machine, command)
    lines += ["", "## Results", "", "Latency over ok requests, from the scheduled send time. \"windows in SLO\": "
              "10 s windows whose p95 (failed requests counted as too slow) is within the SLO. \"failed\": every "
              "request without a 2xx answer; \"503\": rejected by a full queue; \"lost\": no HTTP answer at all. "
              "replica-s: ready workers integrated over the replay. With repeated runs each cell is the median "
              "and, in brackets, the range: where two runs' ranges overlap, this machine's noise is as large as "
              "their difference.", ""]
    lines += table + ["", "## Targets", ""] + target_lines(checks)
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
    return {"rows": rows, "targets": checks, "indistinguishable": noise}
