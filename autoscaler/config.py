"""Every knob of the autoscaler, its default, unit and allowed range, in one dataclass.

Each field is read from an environment variable (the field name in upper case) and can be overridden
by a command-line flag (`--field-name`). `validate()` checks every value and the relations between
them; its message names the key, the value and what is allowed, so a bad ConfigMap fails loudly at
startup (exit 2) instead of scaling the service on nonsense. Reading, parsing, the per-field checks and
their wording are the shared ones of settings/; this module keeps the fields and the checks between them.
"""

from __future__ import annotations

import argparse
import string
from dataclasses import asdict, dataclass, replace
from typing import Mapping, Sequence

from settings import (SettingError, add_flags, check_fields, format_number, named_after_fields, read_values,
                      setting)

from .policy_names import POLICY_NAMES

SERVICEACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

SCALERS = ("kubernetes", "gunicorn", "dry-run")

# Default PromQL. `{job}` and `{window}` are filled in from SERVICE_JOB and RATE_WINDOW_S. They use the
# service's raw metrics so they work whether or not Prometheus loaded the recording rules.
DEFAULT_QUERY_RATE_RPS = 'sum(rate(inference_requests_total{{job="{job}"}}[{window}]))'
DEFAULT_QUERY_P95_S = ('histogram_quantile(0.95, sum by (le) '
                       '(rate(inference_request_duration_seconds_bucket{{job="{job}"}}[{window}])))')
DEFAULT_QUERY_INFLIGHT = 'sum(avg_over_time(inference_inflight_requests{{job="{job}"}}[{window}]))'
DEFAULT_QUERY_QUEUE = 'sum(inference_queue_depth{{job="{job}"}})'
DEFAULT_QUERY_CPU_CORES = 'sum(rate(inference_worker_cpu_seconds_total{{job="{job}"}}[{window}]))'
DEFAULT_QUERY_AGE_S = 'time() - max(timestamp(inference_workers{{job="{job}"}}))'

QUERY_PLACEHOLDERS = {"job", "window"}


class ConfigError(SettingError):
    """A configuration value is out of range; the message names the key, the value and the range."""


@named_after_fields  # each field is set by NAME_IN_CAPITALS or --name-with-dashes
@dataclass(frozen=True)
class Config:
    # --- where the signals come from -------------------------------------------------------------
    prometheus_url: str = setting(
        "http://localhost:9090",
        "Prometheus base URL. The in-cluster Service is http://prometheus-service:9090.")
    prometheus_timeout_s: float = setting(
        2.0, "Timeout of one PromQL query. Short: a slow Prometheus must not stall the loop; a "
        "query that times out counts as no data and the count is held.", "s", 0.1, 60)
    service_job: str = setting(
        "resnet18-inference", "Prometheus job label of the service, used by the default queries.")
    rate_window_s: int = setting(
        30, "Range of rate()/avg_over_time() in the default queries. At least 4 scrape intervals so "
        "a window always holds 2+ samples; 30 s (fifteen of the in-cluster 2 s scrapes) keeps one "
        "pod's noise out of the rate; the local stack (1 s scrape) can use 5-10 s to react faster.", "s", 2, 3600)
    stale_after_s: float = setting(
        30, "Newest scraped sample older than this (QUERY_AGE_S) means the data is stale: hold. "
        "Several scrape intervals, so one missed scrape is not an outage.", "s", 1, 3600)
    query_rate_rps: str = setting(DEFAULT_QUERY_RATE_RPS, "PromQL: request rate over all replicas.", "req/s")
    query_p95_s: str = setting(DEFAULT_QUERY_P95_S, "PromQL: p95 request latency (NaN when idle).", "s")
    query_inflight: str = setting(DEFAULT_QUERY_INFLIGHT, "PromQL: requests in flight over all replicas, "
                                  "averaged over the window (Little's law: rate x latency).", "requests")
    query_queue: str = setting(DEFAULT_QUERY_QUEUE, "PromQL: images waiting for the model (logged).", "images")
    query_cpu_cores: str = setting(DEFAULT_QUERY_CPU_CORES, "PromQL: CPU cores used by all workers "
                                   "(the hpa policy's signal; one replica = one core).", "cores")
    query_age_s: str = setting(DEFAULT_QUERY_AGE_S, "PromQL: age of the newest scraped sample; empty "
                               "string disables the staleness check.", "s")

    # --- what is scaled ------------------------------------------------------------------------
    scaler: str = setting("kubernetes", "Actuator: the Deployment's scale subresource, the workers of a "
                          "local gunicorn master, or only logging.", choices=SCALERS)
    policy: str = setting("slo", "Decision policy: slo (capacity + latency SLO), hpa (the Kubernetes HPA "
                          "v2 algorithm on CPU, as a baseline), kpa (Knative's KPA, as a baseline), static (hold "
                          "MIN_REPLICAS).", choices=POLICY_NAMES)
    target_deployment: str = setting("resnet18-inference", "Deployment whose replicas are scaled.")
    target_namespace: str = setting("", "Namespace of the Deployment.",
                                    zero_means="the pod's own namespace, else 'default'")
    gunicorn_pidfile: str = setting("", "Pid file of the local gunicorn master (SCALER=gunicorn).")
    scaler_timeout_s: float = setting(
        10, "Timeout of one Kubernetes API call.", "s", 0.5, 120)
    drain_timeout_s: float = setting(
        35, "How long the gunicorn scaler waits for a removed worker to finish its requests and exit. "
        "Above the service's GRACEFUL_TIMEOUT_S (30) so a normal drain completes.", "s", 0.5, 600)

    # --- bounds and SLO ------------------------------------------------------------------------
    min_replicas: int = setting(1, "Lowest replica count. At least 1: the service cannot queue "
                                "requests for a replica that does not exist.", "replicas", 1, 10000)
    max_replicas: int = setting(10, "Highest replica count (the cost ceiling).", "replicas", 1, 10000)
    slo_p95_ms: float = setting(500, "Latency objective: p95 of request duration.", "ms", 1, 600000)
    poll_interval_s: float = setting(
        2, "Time between decisions. Same as the in-cluster scrape interval (polling faster only re-reads "
        "the same samples), and Knative's 2 s tick: a step is seen one scrape after it began. On the "
        "simulated matrix 2 s polls kept their windows at the utilisation target of then (0.89), where 5 "
        "s polls lost a window on both real traces at 0.885.", "s", 0.05, 600)

    # --- slo policy ------------------------------------------------------------------------------
    target_utilization: float = setting(
        0.97, "Fraction of a replica's within-SLO capacity to plan for: the headroom absorbs noise and the "
        "time new replicas need to start. The capacity is already the rate that keeps p95 within the SLO, "
        "and panic, the rise window, the forecast and the latency signal cover surges: on the simulated "
        "matrix (seeds 0-2) 0.97 kept 99% of windows on both real traces at 1.08x and 1.17-1.18x the "
        "oracle's replica-seconds; 0.98 kept 99% too at 1-2% less, 1.0 fell below it on the Twitter hour "
        "(docs/benchmarks.md).",
        "fraction", 0.05, 1.0)
    target_inflight_per_replica: float = setting(
        4, "Concurrent requests one replica handles within the SLO (Little's law: capacity x latency, "
        "e.g. 20 req/s x 0.2 s). The slo policy counts in-flight requests only where the request rate "
        "is unknown: on overloaded replicas they measure the queue, not the demand.", "requests", 0,
        100000, zero_means="concurrency not used")
    capacity_rps_per_replica: float = setting(
        10, "Initial estimate of the request rate one replica sustains within the SLO; corrected "
        "online on a steady load: down to what replicas serve while p95 misses the SLO, up to it "
        "while p95 is under half the SLO.", "req/s", 0, 1e6,
        zero_means="request rate not used")
    capacity_learning: bool = setting(
        True, "Correct CAPACITY_RPS_PER_REPLICA online from observed per-replica throughput and p95.")
    stable_window_s: float = setting(
        60, "Averaging window for the steady demand (Knative's stable window); also how long a "
        "restarted autoscaler waits before any scale-down, and how long panic lasts.", "s", 1, 3600)
    panic_window_s: float = setting(
        6, "Short window that detects bursts (Knative's panic window, 10% of the stable one).",
        "s", 0.1, 3600)
    panic_threshold: float = setting(
        2.0, "Panic when short-window demand reaches this multiple of the ready capacity "
        "(Knative's 200%); only while panicking does that demand count, and no scale-down.", "ratio",
        1.0, 100)
    scale_down_stabilization_s: float = setting(
        30, "Scale down only to the highest demand of this window, so a dip in load does not release "
        "replicas that the next second needs (panic forbids scale-down on top). Half Knative's 60 s "
        "stable window: on every trace of the simulated matrix 30 s kept the same windows as 60 s "
        "at 4-7% fewer replica-seconds, and 20-26 s lost a window on wl.txt x10. Raise it for bursts a few "
        "minutes apart.", "s", 0, 86400)
    scale_down_step_s: float = setting(
        10, "At most one scale-down step per this many seconds: a gradual release lets the "
        "latency signal stop it before it goes too far.", "s", 0, 86400)
    scale_down_max_fraction: float = setting(
        0.2, "A scale-down step removes at most this fraction of the replicas (at least one): a "
        "relative step is as gradual at 50 replicas as at 5, where one replica per 10 s step takes "
        "5 minutes to release a flash crowd's 30.", "fraction", 0, 1,
        zero_means="one replica per step")
    scale_up_max_ratio: float = setting(
        4, "A scale-up goes to at most this multiple of the current count (at least +1) per "
        "decision, so one wrong reading cannot buy unbounded replicas. x2 took four polls to go "
        "from 1 replica to the 15 that the simulated twitter-1h's first poll asked for.", "ratio", 1,
        1000)
    tolerance: float = setting(
        0.1, "Ignore load changes within this fraction of the current capacity (HPA's 10%) so "
        "noise does not flap the replica count.", "fraction", 0, 0.9)
    rise_window_s: float = setting(
        20, "A rise counts for scale-up from the mean rate of the last poll intervals over this window "
        "(reconstructed as for panic), never for scale-down: the stable window shows a step at its full "
        "size only after both windows. Longer than a few polls and a start-up, so that one noisy poll "
        "does not count; at most STABLE_WINDOW_S, the rates the policy keeps.", "s", 0, 3600, zero_means="the stable window alone")
    forecast_horizon_s: float = setting(
        30, "Project the request-rate trend this far ahead so replicas are ready when a ramp "
        "arrives; about a replica's start-up time.", "s", 0, 3600, zero_means="no forecasting")
    forecast_confirm_s: float = setting(
        15, "The forecast's trend is no steeper than the slope of the last poll intervals' rates over this "
        "window (seven 2 s polls; at most STABLE_WINDOW_S): a step ramps the windowed rate for "
        "RATE_WINDOW_S after it has ended.",
        "s", 0, 3600, zero_means="the windowed rates' trend as it is")
    forecast_recent_horizon_s: float = setting(
        5, "The forecast also follows the line through the last FORECAST_CONFIRM_S of poll intervals' rates "
        "this far ahead, when that line rises by at least twice its standard error and by more than "
        "TOLERANCE over the window (FORECAST_CONFIRM_S=0 turns it off too): the current rate plus its slope "
        "for about a replica's start-up and a poll. The windowed rate lags a ramp by half RATE_WINDOW_S; "
        "with a 0.97 utilisation target (0.89 before) the simulated matrix (seeds 0-2) kept as many windows "
        "or more on every trace, one or two more on the real traces at up to 2% fewer replica-seconds, and "
        "13-19% more on wl.txt's steps.",
        "s", 0, 3600, zero_means="the windowed rates' trend alone")
    recent_rate_memory: float = setting(
        0.8, "The slo policy reconstructs the request rate of the last poll interval from the "
        "change of the windowed rate (a 30 s window shows a step at a sixth of its size per poll). "
        "It needs the rate of the interval that left the window, its own earlier estimate: this "
        "share of it is kept, the rest is the previous window's mean, so an estimate's error (scrape "
        "jitter, a pod's series joining the sum) fades instead of returning every RATE_WINDOW_S.",
        "fraction", 0, 1, zero_means="assume the window was flat")

    # --- hpa policy ----------------------------------------------------------------------------
    hpa_target_cpu: float = setting(
        0.5, "Target average CPU utilization per replica, as a fraction of its one-core request "
        "(the baselines use 0.5 and 0.9).", "fraction", 0.01, 1.0)
    hpa_tolerance: float = setting(0.1, "HPA --horizontal-pod-autoscaler-tolerance.", "fraction", 0, 0.9)
    hpa_scale_down_stabilization_s: float = setting(
        300, "HPA behavior.scaleDown.stabilizationWindowSeconds (upstream default).", "s", 0, 3600)
    hpa_policy_period_s: float = setting(
        15, "HPA default scaling policies' periodSeconds (up: 100% or 4 pods, down: 100%).",
        "s", 1, 1800)

    # --- kpa policy (Knative's defaults, config-autoscaler; its ranges) --------------------------
    kpa_metric: str = setting(
        "concurrency", "What the kpa policy scales on: in-flight requests against TARGET_INFLIGHT_PER_REPLICA "
        "(Knative's default) or the request rate against CAPACITY_RPS_PER_REPLICA.", choices=("concurrency", "rps"))
    kpa_target_utilization: float = setting(
        0.7, "Knative's container-concurrency-target-percentage / 100: the per-pod target is "
        "TARGET_INFLIGHT_PER_REPLICA (or CAPACITY_RPS_PER_REPLICA) x this.", "fraction", 0.01, 1.0)
    kpa_stable_window_s: float = setting(
        60, "Knative's stable-window: averaging window of the steady demand, and how long panic outlasts the "
        "last poll over the threshold.", "s", 6, 3600)
    kpa_panic_window_percent: float = setting(
        10, "Knative's panic-window-percentage: the panic window as a share of the stable one (6 s).", "%", 1, 100)
    kpa_panic_threshold: float = setting(
        2.0, "Knative's panic-threshold-percentage / 100: panic when the panic window's demand reaches this "
        "multiple of the ready pods.", "ratio", 1.1, 10)
    kpa_max_scale_up_rate: float = setting(
        1000, "Knative's max-scale-up-rate: at most this multiple of the ready pods in one decision.", "ratio",
        1, 1e6, lo_open=True)
    kpa_max_scale_down_rate: float = setting(
        2, "Knative's max-scale-down-rate: at least ready pods / this after one decision.", "ratio", 1, 1e6,
        lo_open=True)

    # --- failures ------------------------------------------------------------------------------
    fallback_after_failures: int = setting(
        3, "Consecutive polls without usable data before FALLBACK_REPLICAS applies.", "polls", 1, 100000)
    fallback_replicas: int = setting(
        0, "Replica count to go to when data stays missing (a safe capacity).", "replicas", 0, 10000,
        zero_means="hold the current count")

    # --- own endpoints -------------------------------------------------------------------------
    metrics_host: str = setting("0.0.0.0", "Address of the autoscaler's /metrics and /healthz.")
    metrics_port: int = setting(9100, "Port of the autoscaler's /metrics and /healthz.", "port", 0, 65535,
                                zero_means="no endpoint")
    stall_after_s: float = setting(
        120, "/healthz fails (503) when no loop iteration finished for this long. Well above "
        "POLL_INTERVAL_S plus query/drain timeouts and the error backoff.", "s", 1, 86400)

    # ------------------------------------------------------------------------------------------
    def validate(self) -> "Config":
        """A copy with every value converted to its field's type and checked; raises ConfigError."""
        checked = replace(self, **check_fields(self, ConfigError))
        checked._check_relations()
        return checked

    def _check_relations(self) -> None:
        _require(self.min_replicas <= self.max_replicas,
                 f"MIN_REPLICAS={self.min_replicas} must be <= MAX_REPLICAS={self.max_replicas}")
        _require(self.panic_window_s <= self.stable_window_s,
                 f"PANIC_WINDOW_S={format_number(self.panic_window_s)} must be <= STABLE_WINDOW_S="
                 f"{format_number(self.stable_window_s)}")
        _require(self.stall_after_s > self.poll_interval_s,
                 f"STALL_AFTER_S={format_number(self.stall_after_s)} must be > "
                 f"POLL_INTERVAL_S={format_number(self.poll_interval_s)}")
        _require(self.fallback_replicas == 0 or self.min_replicas <= self.fallback_replicas <= self.max_replicas,
                 f"FALLBACK_REPLICAS={self.fallback_replicas} must be 0 (off) or within "
                 f"MIN_REPLICAS..MAX_REPLICAS ({self.min_replicas}..{self.max_replicas})")
        if self.policy == "slo":
            _require(self.target_inflight_per_replica > 0 or self.capacity_rps_per_replica > 0,
                     "TARGET_INFLIGHT_PER_REPLICA=0 and CAPACITY_RPS_PER_REPLICA=0: the slo policy needs "
                     "at least one of them > 0")
        if self.policy == "kpa":
            per_replica, name = ((self.capacity_rps_per_replica, "CAPACITY_RPS_PER_REPLICA") if self.kpa_metric == "rps"
                                 else (self.target_inflight_per_replica, "TARGET_INFLIGHT_PER_REPLICA"))
            _require(per_replica > 0, f"{name}=0: the kpa policy with KPA_METRIC={self.kpa_metric} needs it > 0")
        if self.scaler == "gunicorn":
            _require(bool(self.gunicorn_pidfile), "GUNICORN_PIDFILE='' must name the gunicorn master's pid "
                     "file when SCALER=gunicorn")
        _require(self.prometheus_url.startswith(("http://", "https://")),
                 f"PROMETHEUS_URL={self.prometheus_url!r} must start with http:// or https://")
        for name in ("query_rate_rps", "query_p95_s", "query_inflight", "query_queue", "query_cpu_cores",
                     "query_age_s"):
            _check_template(name, getattr(self, name))

    def query(self, name: str) -> str:
        """The PromQL of query field `name` with {job} and {window} filled in ('' if disabled)."""
        template = getattr(self, name)
        return template.format(job=self.service_job, window=f"{self.rate_window_s}s") if template else ""

    def as_dict(self) -> dict:
        """Every value, plus the PromQL actually sent (templates filled in), for the startup log."""
        values = asdict(self)
        values["queries"] = {name: self.query(name) for name in values if name.startswith("query_")}
        return values


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_template(name: str, template: str) -> None:
    key = name.upper()
    try:
        used = {fname for _, fname, _, _ in string.Formatter().parse(template) if fname is not None}
    except ValueError as exc:
        raise ConfigError(f"{key}={template!r} is not a valid template ({exc}); write literal braces as {{{{ }}}}")
    unknown = used - QUERY_PLACEHOLDERS
    if unknown:
        raise ConfigError(f"{key}={template!r} uses unknown placeholder(s) {sorted(unknown)}; "
                          f"allowed: {{job}}, {{window}}")


# ---------------------------------------------------------------------------------------------------
# Loading: defaults < environment < flags.

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autoscaler",
        description="Scale the ResNet-18 service from Prometheus metrics. Every flag can also be set "
                    "with the environment variable of the same name in upper case (flags win).")
    add_flags(parser, Config)
    return parser


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
                namespace_file: str = SERVICEACCOUNT_NAMESPACE_FILE) -> Config:
    """Defaults, then environment variables, then flags; validated. Raises ConfigError."""
    args = build_parser().parse_args(list(argv or []))
    # An empty variable is a value here: QUERY_AGE_S='' turns the staleness check off.
    config = Config(**read_values(Config, environ, args, error=ConfigError))
    if not config.target_namespace:
        config = replace(config, target_namespace=default_namespace(namespace_file))
    return config.validate()


def default_namespace(namespace_file: str = SERVICEACCOUNT_NAMESPACE_FILE) -> str:
    """The pod's own namespace (mounted with its service account token), else 'default'."""
    try:
        with open(namespace_file, encoding="utf-8") as fh:
            return fh.read().strip() or "default"
    except OSError:
        return "default"
