"""The figures of one run, defined once for the local stack and the simulator.

In: the load tester's summary (loadtester.stats.summarize, with its `windows` and `per_second`), the
autoscaler's decision lines, the replica series ({"workers": [[t, ready], ...], maybe "desired"}, t in
seconds since the start of the replay) and the replay's start and length. Cost is replica-seconds: the
ready workers integrated over the replay; without a workers series, the `ready` count of the decisions
(a step function between decisions). Scale events come from the decisions; for runs recorded without
them (`events_from="replicas"`, a cluster's runs) from the changes of the workers series.
"""

from __future__ import annotations

from comparison.events import integrate_steps, reversals, scale_events, series_events, unix_time

# Failures without an HTTP answer (the load tester's kinds; the simulator's lost requests are conn_refused).
CONNECTION_LOSSES = ("timeout", "conn_refused", "conn_reset", "conn_error", "protocol_error", "dropped_client",
                     "cancelled", "client_error")


def run_figures(summary: dict, decisions: list[dict], replicas: dict, start_unix_s: float, duration_s: float,
                workers_source: str = "prometheus", events_from: str = "decisions") -> dict:
    """Everything the reports and the comparison row show about one run. `events_from`: "decisions" or
    "replicas" (the workers series)."""
    if events_from not in ("decisions", "replicas"):
        raise ValueError(f"events_from must be 'decisions' or 'replicas', not {events_from!r}")
    events = (scale_events(decisions, start_unix_s) if events_from == "decisions"
              else series_events(replicas.get("workers", [])))
    decision_ready = [[round(unix_time(d["time"]) - start_unix_s, 3), float(d["ready"])] for d in decisions
                      if d.get("ready") is not None]
    if replicas.get("workers"):
        replica_seconds, source = integrate_steps(replicas["workers"], 0.0, duration_s), workers_source
    else:
        replica_seconds, source = integrate_steps(decision_ready, 0.0, duration_s), "decisions"
    errors = summary["requests"]["errors"]
    workers = [v for _, v in replicas.get("workers", [])] or [v for _, v in decision_ready] or [0.0]
    return {
        "duration_s": round(duration_s, 3),
        "requests": summary["requests"],
        "latency_ms": summary["latency_ms"],
        "slo": summary["slo"],
        "throughput": summary["throughput"],
        "errors_total": summary["requests"]["failed"],
        "rejected_503": errors.get("rejected_503", 0),
        "server_errors_5xx": errors.get("rejected_503", 0) + errors.get("deadline_504", 0) + errors.get("http_5xx", 0),
        "connection_losses": sum(errors.get(k, 0) for k in CONNECTION_LOSSES),
        "replica_seconds": round(replica_seconds, 1),
        "replica_seconds_source": source,
        "mean_replicas": round(replica_seconds / duration_s, 3) if duration_s > 0 else None,
        "max_workers": max(workers),
        "decisions": len(decisions),
        "scale_ups": sum(1 for e in events if e["direction"] == "up"),
        "scale_downs": sum(1 for e in events if e["direction"] == "down"),
        "scale_events": len(events),
        "events_source": events_from,
        "reversals": reversals(events),
        "events": events,
        "decision_ready": decision_ready,
        "replicas": replicas,
        "windows": summary.get("windows", []),
        "per_second": summary.get("per_second", {}),
        "start_unix_s": start_unix_s,
    }
