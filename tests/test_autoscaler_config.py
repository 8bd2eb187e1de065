"""Configuration: defaults, environment < flags precedence, and one case per validation rule."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autoscaler.config import Config, ConfigError, load_config
from tests.support import REPO


def load(env: dict | None = None, argv: list | None = None, namespace_file: str = "/nonexistent") -> Config:
    return load_config(argv or [], environ=env or {}, namespace_file=namespace_file)


def test_defaults_are_valid_and_documented():
    cfg = load()
    assert (cfg.prometheus_url, cfg.scaler, cfg.policy) == ("http://localhost:9090", "kubernetes", "slo")
    assert (cfg.min_replicas, cfg.slo_p95_ms, cfg.poll_interval_s, cfg.metrics_port) == (1, 500, 2, 9100)
    assert (cfg.stable_window_s, cfg.panic_window_s, cfg.scale_down_stabilization_s) == (60, 6, 30)
    assert cfg.target_namespace == "default"
    from dataclasses import fields
    undocumented = [f.name for f in fields(Config) if not f.metadata.get("doc")]
    assert undocumented == []


@pytest.mark.parametrize("env", [{"STABLE_WINDOW_S": "8"}, {"STABLE_WINDOW_S": "8", "RISE_WINDOW_S": "30",
                                                              "FORECAST_CONFIRM_S": "30"}],
                         ids=["short-stable-window-alone", "longer-rise-and-confirmation"])
def test_windows_longer_than_the_stable_window_are_valid(env):
    # The slo policy keeps one stable window of rates: a longer rise or confirmation window uses them all.
    assert load(env).stable_window_s == 8


def test_namespace_defaults_to_the_pods_own(tmp_path):
    ns_file = tmp_path / "namespace"
    ns_file.write_text("inference-prod\n")
    assert load(namespace_file=str(ns_file)).target_namespace == "inference-prod"
    assert load({"TARGET_NAMESPACE": "other"}, namespace_file=str(ns_file)).target_namespace == "other"


def test_flags_override_environment():
    cfg = load({"MAX_REPLICAS": "4", "POLICY": "hpa"}, ["--max-replicas", "7"])
    assert (cfg.max_replicas, cfg.policy) == (7, "hpa")


@pytest.mark.parametrize("raw,expected", [("true", True), ("0", False), ("No", False), ("on", True)],
                         ids=["true", "zero", "No", "on"])
def test_booleans(raw, expected):
    assert load({"CAPACITY_LEARNING": raw}).capacity_learning is expected


def test_queries_fill_in_job_and_window():
    cfg = load({"SERVICE_JOB": "svc", "RATE_WINDOW_S": "10"})
    assert cfg.query("query_rate_rps") == 'sum(rate(inference_requests_total{job="svc"}[10s]))'
    assert cfg.query("query_age_s") == 'time() - max(timestamp(inference_workers{job="svc"}))'
    assert load({"QUERY_AGE_S": ""}).query("query_age_s") == ""


# id: (environment, the key, the value as given and the range or choices the error names)
REFUSED = {
    "min-zero": ({"MIN_REPLICAS": "0"}, "MIN_REPLICAS", "0", "1..10000"),
    "negative-window": ({"STABLE_WINDOW_S": "-5"}, "STABLE_WINDOW_S", "-5", "1..3600"),
    "slo-zero": ({"SLO_P95_MS": "0"}, "SLO_P95_MS", "0", "1..600000"),
    "slo-nan": ({"SLO_P95_MS": "nan"}, "SLO_P95_MS", "nan", "1..600000"),
    "poll-not-a-number": ({"POLL_INTERVAL_S": "fast"}, "POLL_INTERVAL_S", "fast", "0.05..600"),
    "replicas-not-integer": ({"MAX_REPLICAS": "2.5"}, "MAX_REPLICAS", "2.5", "1..10000"),
    "bad-bool": ({"CAPACITY_LEARNING": "maybe"}, "CAPACITY_LEARNING", "maybe", "true or false"),
    "unknown-policy": ({"POLICY": "magic"}, "POLICY", "magic", "slo | hpa | kpa | static"),
    "unknown-scaler": ({"SCALER": "nomad"}, "SCALER", "nomad", "kubernetes | gunicorn | dry-run"),
    "utilization-above-1": ({"TARGET_UTILIZATION": "1.5"}, "TARGET_UTILIZATION", "1.5", "0.05..1"),
    "port-out-of-range": ({"METRICS_PORT": "70000"}, "METRICS_PORT", "70000", "0..65535"),
}


@pytest.mark.parametrize("env, key, value, allowed", REFUSED.values(), ids=REFUSED.keys())
def test_invalid_values_name_key_value_and_range(env, key, value, allowed):
    with pytest.raises(ConfigError) as err:
        load(env)
    assert (err.value.key, err.value.value, err.value.allowed) == (key, value, allowed)


@pytest.mark.parametrize("argv, key, value", [
    (["--min-replicas", "0"], "--min-replicas", "0"),
    (["--policy", "magic"], "--policy", "magic"),
], ids=["range", "choice"])
def test_a_bad_flag_is_named_as_given(argv, key, value):
    with pytest.raises(ConfigError) as err:
        load({"MIN_REPLICAS": "1", "POLICY": "slo"}, argv)
    assert (err.value.key, err.value.value) == (key, value)


# Rules between settings, or about one beyond its range: id: (environment, what the message says)
RULES = {
    "min-above-max": ({"MIN_REPLICAS": "5", "MAX_REPLICAS": "3"}, "MIN_REPLICAS=5 must be <= MAX_REPLICAS=3"),
    "panic-longer-than-stable": ({"PANIC_WINDOW_S": "90"}, "PANIC_WINDOW_S=90 must be <= STABLE_WINDOW_S=60"),
    "no-capacity-signal": ({"TARGET_INFLIGHT_PER_REPLICA": "0", "CAPACITY_RPS_PER_REPLICA": "0"},
                           "TARGET_INFLIGHT_PER_REPLICA=0 and CAPACITY_RPS_PER_REPLICA=0"),
    "gunicorn-without-pidfile": ({"SCALER": "gunicorn"}, "GUNICORN_PIDFILE='' must name"),
    "fallback-outside-bounds": ({"FALLBACK_REPLICAS": "20"}, "FALLBACK_REPLICAS=20 must be 0 (off) or within"),
    "stall-below-poll": ({"STALL_AFTER_S": "2"}, "STALL_AFTER_S=2 must be > POLL_INTERVAL_S=2"),
    "url-without-scheme": ({"PROMETHEUS_URL": "prometheus:9090"}, "PROMETHEUS_URL='prometheus:9090' must start"),
    "query-unknown-placeholder": ({"QUERY_RATE_RPS": "sum(rate(x[{windw}]))"}, "unknown placeholder(s) ['windw']"),
}


@pytest.mark.parametrize("env, message", RULES.values(), ids=RULES.keys())
def test_broken_rules_name_the_settings_involved(env, message):
    with pytest.raises(ConfigError) as err:
        load(env)
    assert message in str(err.value)


@pytest.mark.parametrize("argv, words", [
    (["--min-replicas", "4", "--max-replicas", "2"], ["MIN_REPLICAS=4 must be <= MAX_REPLICAS=2"]),
    (["--min-replicas", "0"], ["--min-replicas=0", "1..10000"]),
], ids=["rule-between-flags", "flag-out-of-range"])
def test_bad_config_exits_2_with_the_message_before_doing_anything(tmp_path, argv, words):
    # SCALER=kubernetes would need credentials: exit 2 proves validation comes first.
    proc = subprocess.run([sys.executable, "-m", "autoscaler", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none")})
    assert proc.returncode == 2
    assert all(word in proc.stderr for word in words), proc.stderr
    assert proc.stdout == ""
