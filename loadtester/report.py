"""The end-of-run summary table printed on the console."""

from __future__ import annotations


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _share(value) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def format_summary(summary: dict) -> str:
    req, thr, lat, slo, lag = (summary["requests"], summary["throughput"], summary["latency_ms"],
                               summary["slo"], summary["sender_lag_ms"])
    rows = [
        ("scheduled", f"{req['scheduled']}"),
        ("sent", f"{req['sent']}"),
        ("ok", f"{req['ok']}"),
    ]
    rows += [(f"  {kind}", f"{count}") for kind, count in req["errors"].items() if count]
    rows += [
        ("duration", f"{thr['duration_s']:.1f} s"),
        ("offered", f"{thr['offered_rps'] or 0:.2f} req/s"),
        ("achieved (ok)", f"{thr['achieved_rps'] or 0:.2f} req/s"),
        ("latency p50", _ms(lat["p50"])),
        ("latency p90", _ms(lat["p90"])),
        ("latency p95", _ms(lat["p95"])),
        ("latency p99", _ms(lat["p99"])),
        ("latency max", _ms(lat["max"])),
        (f"SLO {slo['slo_ms']:g} ms: windows", f"{_share(slo['window_attainment'])} "
                                               f"({slo['windows_met']}/{slo['windows']} {slo['window_s']:g}-s windows, p95 <= SLO)"),
        (f"SLO {slo['slo_ms']:g} ms: requests", f"{_share(slo['request_attainment'])} "
                                                f"({slo['requests_under_slo']}/{req['scheduled']} ok within the SLO)"),
        ("sender lag p99 / max", f"{_ms(lag['p99'])} / {_ms(lag['max'])}"),
    ]
    cost = summary.get("cost")
    if cost:
        mean = "-" if cost["mean_replicas"] is None else f"{cost['mean_replicas']:.2f}"
        rows.append(("replica-seconds", f"{cost['replica_seconds']:.0f} (mean {mean} {cost['series']} over the run, "
                                        "from Prometheus)"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if lag["late_sends"]:
        lines.append(f"note: {lag['late_sends']} requests left more than {lag['late_threshold_ms']:g} ms after "
                     "their scheduled time (the load tester could not keep up; their latency includes the delay)")
    run = summary.get("run", {})
    if run.get("interrupted"):
        lines.append("note: the run was interrupted; these numbers cover the part that ran")
    for problem in run.get("prometheus_problems", []):
        lines.append(f"note: Prometheus: {problem}")
    return "\n".join(lines)
