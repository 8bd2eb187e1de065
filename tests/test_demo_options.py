"""The local stack's options: defaults, sizing, validation messages and exit statuses, and the generated
Prometheus configuration (checked with the real promtool)."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
import yaml

from autoscaler.policy_names import POLICY_NAMES
from local.config import COMPARE_CHOICES, COMPARE_RUNS, OptionError, Options, default_max_replicas, describe, load_options
from local.prometheus_config import scrape_interval_s, write_config
from local.run import plan_for
from tests.support import PYTHON, REPO, free_port, promtool_binary


def test_defaults_derive_the_sizing_from_a_measurement():
    options = load_options(["demo"], environ={})
    assert (options.min_replicas, options.policy, options.model_weights) == (1, "slo", "random")
    assert (options.service_port, options.prometheus_port, options.autoscaler_port) == (8000, 9090, 9100)
    # 0: derived from the machine's measured worker, not one machine's constants.
    assert (options.slo_p95_ms, options.worker_capacity_rps, options.max_queue, options.trace_scale) == (0, 0, 0, 0)
    assert (options.recalibrate, options.repeat) == (False, 2)


@pytest.mark.parametrize("cpus, expected", [(1, 1), (2, 2), (3, 2), (4, 3), (16, 15)],
                         ids=["1-cpu", "2-cpus", "3-cpus", "4-cpus", "16-cpus"])
def test_default_max_replicas_leaves_a_core_to_the_rest_above_two_cpus(cpus, expected):
    assert default_max_replicas(cpus) == expected


# id: (argv, environment, the key, the value as given and the range or choices the error names)
REFUSED = {
    "fractional-replicas": (["demo", "--max-replicas", "1.5"], {}, "--max-replicas", "1.5", "0..64"),
    "zero-min": (["demo", "--min-replicas", "0"], {}, "--min-replicas", "0", "1..64"),
    "port-out-of-range": (["demo", "--service-port", "70000"], {}, "--service-port", "70000", "1..65535"),
    "nan-slo": (["demo", "--slo-ms", "nan"], {}, "--slo-ms", "nan", "10..60000"),
    "slo-below-range": (["demo", "--slo-ms", "5"], {}, "--slo-ms", "5", "10..60000"),
    "no-repeats": (["compare", "--repeat", "0"], {}, "--repeat", "0", "1..20"),
    "negative-capacity": (["demo"], {"WORKER_CAPACITY_RPS": "-3"}, "WORKER_CAPACITY_RPS", "-3", "0.5..10000"),
    "unknown-policy": (["demo", "--policy", "fastest"], {}, "--policy", "fastest", " | ".join(POLICY_NAMES)),
    "bad-env-value": (["demo"], {"MAX_REPLICAS": "many"}, "MAX_REPLICAS", "many", "0..64"),
    "env-out-of-range": (["demo"], {"HPA_TARGET_CPU": "1.5"}, "HPA_TARGET_CPU", "1.5", "0.01..1"),
}


@pytest.mark.parametrize("argv, environ, key, value, allowed", REFUSED.values(), ids=REFUSED.keys())
def test_bad_options_name_the_option_the_value_and_the_range(argv, environ, key, value, allowed):
    with pytest.raises(OptionError) as info:
        load_options(argv, environ=environ)
    assert (info.value.key, info.value.value, info.value.allowed) == (key, value, allowed)


# Rules between options, about files, and the command line's shape: id: (argv, what the message says)
RULES = {
    "min-above-max": (["demo", "--min-replicas", "3", "--max-replicas", "2"],
                      "--max-replicas=2 must be >= --min-replicas=3"),
    "same-ports": (["demo", "--service-port", "9090"], "ports must differ"),
    "unknown-compare-run": (["compare", "--policies", "slo,hpa-70"],
                            "--policies='slo,hpa-70': expected a comma-separated subset"),
    "missing-trace": (["demo", "--trace", "/nonexistent/wl.txt"], "--trace='/nonexistent/wl.txt': no such file"),
    "unknown-mode": (["serve"], "invalid choice: 'serve'"),
    "unknown-flag": (["demo", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
}


@pytest.mark.parametrize("argv, message", RULES.values(), ids=RULES.keys())
def test_broken_rules_name_the_options_involved(argv, message):
    with pytest.raises(OptionError) as info:
        load_options(argv, environ={})
    assert message in str(info.value)


def test_flags_win_over_environment_variables():
    options = load_options(["demo", "--max-replicas", "2"], environ={"MAX_REPLICAS": "4", "SEED": "7"})
    assert (options.max_replicas, options.seed) == (2, 7)


def test_every_option_is_documented_with_unit_and_default():
    rows = describe()
    assert {r[0] for r in rows} >= {"--quick", "-v", "--out", "--service-port", "--max-replicas", "--slo-ms"}
    for flag, env, default, unit, doc in rows:
        assert doc and default != "", flag
        if flag.endswith("-port"):
            assert unit == "port"


def run_local(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "local", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s)


def test_a_bad_option_exits_2_before_anything_starts(tmp_path):
    out = tmp_path / "run"
    result = run_local("demo", "--min-replicas", "0", "--out", str(out))
    assert result.returncode == 2
    assert "--min-replicas=0" in result.stderr
    assert not out.exists()


def test_a_taken_port_is_refused_with_the_option_that_moves_it(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = tmp_path / "run"
        result = run_local("demo", "--quick", "--out", str(out), "--service-port", str(free_port()),
                           "--prometheus-port", str(port), "--autoscaler-port", str(free_port()))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--prometheus-port" in result.stderr
    assert not (out / "logs").exists()


@pytest.mark.parametrize("name, policy, bounds, initial, hpa", [
    ("static-min", "static", (1, 1), 1, None),
    ("static-max", "static", (2, 2), 2, None),
    ("hpa-50", "hpa", (1, 2), 1, 0.5),
    ("hpa-90", "hpa", (1, 2), 1, 0.9),
    ("kpa", "kpa", (1, 2), 1, None),
    ("slo", "slo", (1, 2), 1, None),
], ids=list(COMPARE_CHOICES))
def test_each_compared_run_has_its_policy_and_bounds(tmp_path, name, policy, bounds, initial, hpa):
    plan = plan_for(name, Options(max_replicas=2), tmp_path / "t.txt", 0.5, tmp_path)
    assert (plan.policy, (plan.min_replicas, plan.max_replicas), plan.initial_replicas, plan.hpa_target_cpu) == \
        (policy, bounds, initial, hpa)


def test_kpa_is_a_run_to_ask_for_and_the_autoscaler_knows_its_policy(tmp_path):
    from autoscaler.policy_names import POLICY_NAMES as AUTOSCALER_POLICIES

    assert "kpa" not in COMPARE_RUNS                     # the default comparison is unchanged
    options = load_options(["compare", "--policies", "static-min,hpa-50,slo,kpa"], environ={})
    assert options.compare_runs == ["static-min", "hpa-50", "slo", "kpa"]
    plans = [plan_for(name, options, tmp_path / "t.txt", 1.0, tmp_path / name) for name in options.compare_runs]
    assert {p.policy for p in plans} <= set(AUTOSCALER_POLICIES)
    assert load_options(["demo", "--policy", "kpa"], environ={}).policy == "kpa"
    with pytest.raises(OptionError, match="a run is named twice"):
        load_options(["compare", "--policies", "kpa,slo,kpa"], environ={})


def test_the_generated_prometheus_config_scrapes_the_runs_ports_and_passes_promtool(tmp_path):
    path = write_config(tmp_path / "prometheus", service_port=18123, autoscaler_port=18124)
    result = subprocess.run([promtool_binary(), "check", "config", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    targets = {}
    for job in config["scrape_configs"]:
        for sd in job["file_sd_configs"]:
            for name in sd["files"]:
                targets[job["job_name"]] = json.loads((path.parent / name).read_text())[0]["targets"]
    assert targets == {"resnet18-inference": ["127.0.0.1:18123"], "autoscaler": ["127.0.0.1:18124"]}
    assert 1 <= scrape_interval_s(path) <= 2
