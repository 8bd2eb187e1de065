"""Installing: the light install of the load tester, the requirement lists, which targets need Prometheus,
and the interpreter checks of the Makefile (where `make setup` takes torch from: tests/test_install_torch.py).

The light install is real: `make setup-loadtester` into a fresh venv (no system site-packages, so nothing of
the project's venv shows through), then the load tester from it against a real service under gunicorn.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from containers import torch_wheels
from containers.torch_wheels import pins
from loadtester import read_requests_csv
from support import PYTHON, REPO, start_gunicorn
from test_comparison_recorded import recorded  # noqa: F401 - the fixture: two runs recorded with Prometheus

MAKE = shutil.which("make")
CAPACITY = re.compile(r"^capacity: [\d.]+ req/s at saturation, [\d.]+ req/s within the SLO$")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what would let a child see the project's venv or the test's settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TORCH_INDEX_URL",
                                                            "TORCH_INDEX_PROBE_S", "PYTHON", "VENV")}
    return {**env, **extra}


def make(*args: str, env: dict[str, str] | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "--no-print-directory", "-C", str(REPO), *args], env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout_s)


# --- the requirement lists --------------------------------------------------------------------------

def requirement_lists() -> dict[str, list[Requirement]]:
    found = {}
    for path in sorted(REPO.glob("requirements*.txt")):
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        found[path.name] = [Requirement(line) for line in lines if line and not line.startswith("-")]
    return found


def test_a_package_two_lists_name_has_one_range():
    ranges = defaultdict(dict)
    for name, requirements in requirement_lists().items():
        for requirement in requirements:
            ranges[requirement.name.lower()][name] = str(requirement.specifier)
    differing = {package: lists for package, lists in ranges.items() if len(set(lists.values())) > 1}
    assert not differing, differing


def test_the_load_tester_list_is_light_and_part_of_the_whole():
    names = {r.name.lower() for r in requirement_lists()["requirements-loadtester.txt"]}
    assert names.isdisjoint({"torch", "torchvision", "flask", "gunicorn", "openvino", "onnxruntime"}), names
    assert "-r requirements-loadtester.txt" in (REPO / "requirements.txt").read_text().splitlines()


def test_the_constraints_pin_torch_as_the_model_list_does():
    model = {r.name: str(r.specifier) for r in requirement_lists()["requirements-model.txt"]}
    found = pins((REPO / "containers" / "constraints.txt").read_text())
    assert {name: f"=={version}" for name, version in found.items()} == \
        {name: model[name] for name in torch_wheels.PACKAGES}


def test_constraints_without_torch_are_refused():
    with pytest.raises(ValueError, match="pins no torchvision"):
        pins("torch==2.14.1\nnumpy==2.4.6\n")


# --- the Makefile: Prometheus only where one starts, and the interpreter ----------------------------

def prerequisites() -> dict[str, list[str]]:
    """Each target's prerequisites, as make's database prints them."""
    printed = make("-pq", "help").stdout  # -q: nothing runs
    found = {}
    for line in printed.splitlines():
        match = re.match(r"^([a-z][a-z-]*): ?(.*)$", line)
        if match and not line.startswith(("#", "\t")):
            found.setdefault(match.group(1), match.group(2).split("|")[0].split())
    return found


TARGETS_NEEDING_PROMETHEUS = [("test", True), ("demo", True), ("compare", True), ("setup", False),
                              ("setup-loadtester", False), ("serve", False), ("simulate", False),
                              ("images", False), ("bench", False)]


@pytest.mark.parametrize("target, needs", TARGETS_NEEDING_PROMETHEUS, ids=[t for t, _ in TARGETS_NEEDING_PROMETHEUS])
def test_only_the_targets_that_start_prometheus_require_it(target, needs):
    assert ("prometheus" in prerequisites()[target]) is needs


@pytest.fixture(scope="module")
def no_prometheus_path(tmp_path_factory) -> str:
    """A PATH with no prometheus and no apt-get (so nothing is installed, even as root): only `id`."""
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "id").symlink_to(shutil.which("id"))
    return str(bin_dir)


def test_a_target_that_starts_prometheus_stops_without_it(no_prometheus_path):
    result = make("prometheus", env=clean_env(PATH=no_prometheus_path))
    assert result.returncode != 0
    assert "prometheus/promtool are missing: make demo, compare and test start a real Prometheus" in result.stdout
    assert "sudo apt-get install -y --no-install-recommends prometheus" in result.stdout


def test_setup_goes_on_without_prometheus_and_says_so(no_prometheus_path):
    result = make("--eval", "setup-prometheus-check: ; $(call need_prometheus,optional)", "setup-prometheus-check",
                  env=clean_env(PATH=no_prometheus_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "make setup goes on without them" in result.stdout and "brew install prometheus" in result.stdout


def test_prometheus_on_the_path_is_enough():
    assert shutil.which("prometheus") and shutil.which("promtool"), "these tests need Debian's prometheus package"
    result = make("prometheus")
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def fake_python(directory: Path, body: str) -> Path:
    path = directory / "python-fake"
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("body, message", [
    ('[ "$1" = --version ] && echo "Python 3.10.12"; exit 1', "is not Python 3.11 or later (Python 3.10.12)"),
    ('if [ "$1 $2" = "-m venv" ]; then echo "ensurepip is not available" >&2; exit 1; fi; exec '
     f'{sys.executable} "$@"', "On Debian and Ubuntu venv needs the python3-venv package"),
], ids=["python-3.10", "no-python3-venv"])
def test_the_venv_step_names_what_is_missing(tmp_path, body, message):
    python = fake_python(tmp_path, body)
    result = make("setup-loadtester", f"PYTHON={python}", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0
    assert message in result.stderr, result.stdout + result.stderr
    assert not (tmp_path / "venv" / ".installed-loadtester").exists()


# --- the light install, used ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def light_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("light") / "venv"
    result = make("setup-loadtester", f"PYTHON={PYTHON}", f"VENV={venv}", timeout_s=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Creating {venv} with " in result.stdout and "Ready: " in result.stdout
    return venv


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    child = start_gunicorn(tmp_path_factory.mktemp("service"), workers=1)
    yield child
    child.stop()


def light(venv: Path, *args: str, cwd: Path, timeout_s: float = 180) -> subprocess.CompletedProcess:
    """The load tester as a user of the light install runs it, from outside the repository."""
    return subprocess.run([str(venv / "bin" / "python"), str(REPO / "loadtester" / "load_tester.py"), *args],
                          cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.slow
def test_the_light_install_has_no_torch_and_no_flask(light_venv):
    result = subprocess.run([str(light_venv / "bin" / "python"), "-c", "import importlib.util as u; "
                             "print([m for m in ('torch', 'torchvision', 'flask', 'gunicorn') if u.find_spec(m)])"],
                            env=clean_env(), capture_output=True, text=True, timeout=60, cwd="/")
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
    again = make("setup-loadtester", f"PYTHON={PYTHON}", f"VENV={light_venv}")
    assert again.returncode == 0 and "Installing" not in again.stdout, again.stdout + again.stderr


@pytest.mark.slow
def test_the_light_install_finds_the_capacity_of_the_real_service(light_venv, service, tmp_path):
    out = tmp_path / "capacity.json"
    result = light(light_venv, "--find-capacity", "--url", service.extra["url"], "--slo-ms", "5000",
                   "--step-seconds", "1", "--json", str(out), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert CAPACITY.match(result.stdout.strip().splitlines()[-1]), result.stdout
    assert json.loads(out.read_text())["saturation_rps"] > 0


@pytest.mark.slow
def test_the_light_install_replays_against_the_real_service(light_venv, service, tmp_path):
    trace = tmp_path / "trace.txt"
    trace.write_text("2\n" * 4)
    out = tmp_path / "out"
    result = light(light_venv, "--url", service.extra["url"], "--trace", str(trace), "--out", str(out),
                   "--no-progress", "--arrivals", "uniform", "--slo-ms", "5000", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    table = read_requests_csv(out / "requests.csv")
    assert len(table) == 8 and (table.status == 200).all()
    assert (out / "timeline.png").stat().st_size > 0


@pytest.mark.slow
def test_the_light_install_compares_two_recorded_runs(light_venv, recorded, tmp_path):
    """`python -m comparison` in the light install, from outside the repository, on two load tester runs
    recorded against a real Prometheus (tests/test_comparison_recorded.py records them)."""
    dirs = recorded["dirs"]
    result = subprocess.run([str(light_venv / "bin" / "python"), "-m", "comparison", f"static-max={dirs['static-max']}",
                             f"slo={dirs['slo']}", "--out", str(tmp_path / "comparison")],
                            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(json.loads((tmp_path / "comparison" / "comparison.json").read_text())["runs"]) == ["static-max", "slo"]
