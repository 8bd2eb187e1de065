"""Where `make setup` takes torch from: the choice of index as a table, the settings, the probe of the index,
and the torch step itself in a venv with nothing installed.

torch itself is never downloaded here: the choice of index runs in a venv with nothing installed and stops
before pip (--dry-run), against real local servers (a closed port, one that never answers, a fake index);
the CPU index is unreachable from this machine, and PyPI's torch is gigabytes. The steps run in
tests/test_install.py's clean environment (nothing of the project's venv or the test's settings).
"""

from __future__ import annotations

import socket
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from containers.torch_wheels import Answer, TorchOptions, ask_index, decide, needs_install, read_options
from settings import SettingError
from support import PYTHON, REPO, LocalHTTPServer, free_port
from test_install import clean_env

PINNED = {"torch": "2.14.1", "torchvision": "0.29.1"}

CPU = TorchOptions()


@pytest.mark.parametrize("options, answer, cuda_on_pypi, index_in_args, says, never_says", [
    (CPU, Answer(True, "HTTP 200"), True, True, "answered: installing the CPU-only build of torch==2.14.1 and "
     "torchvision==0.29.1", "PyPI"),
    (CPU, Answer(False, "no answer within 5 s"), True, False, "could not be used (no answer within 5 s): installing "
     "torch==2.14.1 and torchvision==0.29.1 from pip's default index (PyPI) instead. On Linux x86_64 PyPI's build "
     "brings NVIDIA's CUDA libraries", "answered"),
    (CPU, Answer(False, "HTTP 404"), False, False, "could not be used (HTTP 404)", "CUDA"),
    (TorchOptions(index_url=""), None, True, False, "TORCH_INDEX_URL is empty: installing torch==2.14.1", "instead"),
], ids=["index-answers", "index-silent-linux-x86_64", "index-without-torch-elsewhere", "index-turned-off"])
def test_where_torch_comes_from(options, answer, cuda_on_pypi, index_in_args, says, never_says):
    plan = decide(options, PINNED, answer, cuda_on_pypi=cuda_on_pypi, venv="/v", constraints="c.txt")
    assert plan.pip_args[0] == "install" and plan.pip_args[-2:] == ("torch", "torchvision")
    assert ("-c", "c.txt") == plan.pip_args[plan.pip_args.index("-c"):][:2]
    assert (("--index-url", options.index_url) in zip(plan.pip_args, plan.pip_args[1:])) == index_in_args
    assert ("--no-deps" in plan.pip_args) == index_in_args  # from the CPU index, the two wheels only
    assert plan.message.startswith("torch: ") and says in plan.message and never_says not in plan.message


@pytest.mark.parametrize("installed, expected", [
    ({}, True),
    ({"torch": "2.14.1", "torchvision": "0.29.1"}, False),
    ({"torch": "2.14.1+cpu", "torchvision": "0.29.1+cpu"}, False),
    ({"torch": "2.13.0", "torchvision": "0.29.1"}, True),
    ({"torch": "2.14.1"}, True),
], ids=["nothing", "pinned", "pinned-cpu-build", "other-torch", "no-torchvision"])
def test_torch_is_installed_only_where_missing_or_at_another_version(installed, expected):
    assert needs_install(installed, PINNED) is expected


@pytest.mark.parametrize("argv, environ, key, message", [
    ([], {"TORCH_INDEX_URL": "ftp://x"}, "TORCH_INDEX_URL",
     "TORCH_INDEX_URL='ftp://x': expected an http:// or https:// URL, or empty"),
    (["--index-url", "download.pytorch.org"], {}, "--index-url", "expected an http:// or https:// URL, or empty"),
    ([], {"TORCH_INDEX_PROBE_S": "0"}, "TORCH_INDEX_PROBE_S", "TORCH_INDEX_PROBE_S=0: expected a number in >0..60 s"),
    (["--probe-s", "61"], {}, "--probe-s", "--probe-s=61: expected a number in >0..60 s"),
], ids=["url-not-http", "flag-url-without-scheme", "zero-probe", "probe-too-long"])
def test_bad_settings_are_refused_naming_the_key(argv, environ, key, message):
    with pytest.raises(SettingError) as caught:
        read_options(argv, environ)
    assert caught.value.key == key and message in str(caught.value)


def test_an_empty_index_url_turns_the_probe_off_and_a_trailing_slash_goes():
    assert read_options([], {"TORCH_INDEX_URL": ""}).index_url == ""
    assert read_options(["--index-url", "http://mirror:8080/cpu/"], {}).index_url == "http://mirror:8080/cpu"


class TorchPage(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/cpu/torch/" else 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def fake_index():
    server = LocalHTTPServer(TorchPage)
    yield server
    server.close()


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_the_index_is_asked_for_its_torch_page(fake_index):
    assert ask_index(f"{fake_index.url}/cpu", 10) == Answer(True, "HTTP 200")
    assert ask_index(f"{fake_index.url}/other", 10) == Answer(False, "HTTP 404")


def test_a_closed_port_is_no_index():
    answer = ask_index(f"http://127.0.0.1:{free_port()}/cpu", 10)
    assert not answer.ok and "refused" in answer.detail.lower()


def test_an_index_that_never_answers_costs_the_probe_time_only(silent_port):
    started = time.monotonic()
    answer = ask_index(f"http://127.0.0.1:{silent_port}/cpu", 1.0)
    took_s = time.monotonic() - started
    assert answer == Answer(False, "no answer within 1 s")
    assert 0.9 <= took_s < 10, took_s


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    """A venv with nothing installed, not even pip: what `make setup` runs the torch step in, near enough."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    return venv


def choose(venv: Path, index_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "containers.torch_wheels", *args], cwd=REPO,
                          env=clean_env(TORCH_INDEX_URL=index_url, TORCH_INDEX_PROBE_S="3"),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("where, source", [
    ("closed", "could not be used ([Errno 111] Connection refused): installing torch==2.14.1 and "
               "torchvision==0.29.1 from pip's default index (PyPI) instead"),
    ("silent", "could not be used (no answer within 3 s)"),
    ("fake-index", "answered: installing the CPU-only build of torch==2.14.1 and torchvision==0.29.1"),
], ids=["closed-port", "never-answers", "answering-index"])
def test_the_torch_step_says_where_from_in_a_venv_with_nothing(bare_venv, fake_index, silent_port, where, source):
    url = {"closed": f"http://127.0.0.1:{free_port()}/cpu", "silent": f"http://127.0.0.1:{silent_port}/cpu",
           "fake-index": f"{fake_index.url}/cpu"}[where]
    result = choose(bare_venv, url, "--dry-run")
    assert result.returncode == 0, result.stderr
    message, command = result.stdout.strip().splitlines()
    assert message.startswith("torch: ") and source in message and url in message
    assert command.startswith(f"{bare_venv}/bin/python -m pip install ")
    assert (f"--no-deps --index-url {url}" in command) == (where == "fake-index")
    assert command.endswith(f"-c {REPO}/containers/constraints.txt torch torchvision")


def test_the_torch_step_installs_nothing_where_the_pinned_torch_is():
    result = subprocess.run([PYTHON, "-m", "containers.torch_wheels"], cwd=REPO, capture_output=True, text=True,
                            env=clean_env(TORCH_INDEX_URL="http://127.0.0.1:9/cpu"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("torch: torch 2.14.1") and "nothing to install" in result.stdout


def test_a_bad_setting_stops_the_torch_step_with_exit_2(bare_venv):
    result = choose(bare_venv, "ftp://mirror/cpu")
    assert result.returncode == 2
    assert result.stderr.strip() == "torch: TORCH_INDEX_URL='ftp://mirror/cpu': expected an http:// or https:// URL, or empty"
