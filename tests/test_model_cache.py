"""The converted-model cache across users and without torch: what kept the service's pod from starting.

The image's build converts the model as root and its pod runs as UID 10001; every entry must be readable by
any user, and an entry that is not must be a logged miss, never a crash. Switching users needs root (CI
runs as root): the reads happen in this process under a changed effective UID, which is what the kernel
checks file access against.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import requests

from inference.model import Classifier, WeightsError
from tests.support import REPO, free_port, start_gunicorn

POD_UID = 10001  # the Deployment's runAsUser
OTHER_UID = 10002
# The backends that run the converted model; hidden on a torch-only machine (tests/hide_modules).
HIDDEN = frozenset(filter(None, os.environ.get("INFERENCE_HIDDEN_BACKENDS", "").split(",")))
BACKEND = next((b for b in ("openvino", "onnxruntime") if b not in HIDDEN), None)
pytestmark = pytest.mark.skipif(BACKEND is None, reason="no backend that runs a converted model is installed")
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")


@contextlib.contextmanager
def effective_user(uid: int):
    os.setegid(uid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def open_to_all() -> Path:
    """A folder every user can reach (pytest's own temporary folders are private to their owner)."""
    base = Path(tempfile.mkdtemp(prefix="model-cache-test-"))
    os.chmod(base, 0o755)
    return base


@pytest.fixture
def shared_tmp():
    base = open_to_all()
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def root_cache():
    """A cache filled by root under a umask that would hide it, as a careless build would."""
    base = open_to_all()
    cache = base / "nested" / "cache"
    old = os.umask(0o077)
    try:
        Classifier("random", backend=BACKEND, threads=1, cache_dir=cache)
    finally:
        os.umask(old)
    yield cache
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("what, mode", [("entry", 0o644), ("directory", 0o755), ("parent", 0o755)],
                         ids=["entry", "directory", "new-parent"])
def test_entries_are_readable_by_every_user(root_cache, what, mode):
    path = {"entry": next(root_cache.glob("*.onnx")), "directory": root_cache, "parent": root_cache.parent}[what]
    assert stat.S_IMODE(path.stat().st_mode) & mode == mode


@AS_ROOT
def test_a_cache_written_by_root_is_read_by_the_pods_user(root_cache):
    with effective_user(POD_UID):
        classifier = Classifier("random", backend=BACKEND, threads=1, cache_dir=root_cache)
    assert classifier.converted_from_cache is True


@AS_ROOT
@pytest.mark.parametrize("torch_present", [True, False], ids=["converts-privately", "no-torch-says-why"])
def test_an_unreadable_entry_of_another_user_is_a_logged_miss(shared_tmp, caplog, monkeypatch, torch_present):
    cache = shared_tmp / "cache"
    Classifier("random", backend=BACKEND, threads=1, cache_dir=cache)
    entry = next(cache.glob("*.onnx"))
    os.chown(entry, OTHER_UID, OTHER_UID)
    os.chmod(entry, 0o600)
    if not torch_present:
        monkeypatch.setattr("inference.backends.installed", lambda name: name != "torch")
        with effective_user(POD_UID), pytest.raises(WeightsError, match="cannot be read.*mode 0600.*uid 10002"):
            Classifier("random", backend=BACKEND, threads=1, cache_dir=cache)
        return
    temp_dir = shared_tmp / "tmp"
    temp_dir.mkdir(mode=0o1777)
    os.chmod(temp_dir, 0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    with caplog.at_level(logging.WARNING), effective_user(POD_UID):
        classifier = Classifier("random", backend=BACKEND, threads=1, cache_dir=cache)
    assert classifier.converted_from_cache is False
    assert list(temp_dir.iterdir()) == [], "the private export must be removed once the model is loaded"
    assert classifier.probabilities(np.zeros((1, 224, 224, 3), dtype=np.uint8)).shape == (1, 1000)
    assert "cannot be read (mode 0600, owner uid 10002, read as uid 10001)" in caplog.text
    assert "private temporary file" in caplog.text
    # The other user's entry is left as it was.
    assert (entry.stat().st_uid, stat.S_IMODE(entry.stat().st_mode)) == (OTHER_UID, 0o600)


def no_torch_env(**extra: str) -> dict[str, str]:
    """A Python that cannot import torch or torchvision, as in the service's runtime image."""
    return {"PYTHONPATH": str(REPO / "tests" / "hide_modules"), "HIDE_MODULES": "torch,torchvision", **extra}


def test_without_torch_a_worker_serves_the_converted_model(tmp_path):
    cache = tmp_path / "model-cache"
    Classifier("random", backend=BACKEND, threads=1, cache_dir=cache)
    child = start_gunicorn(tmp_path, env=no_torch_env(MODEL_CACHE_DIR=str(cache)))
    try:
        url = child.extra["url"]
        answer = requests.post(f"{url}/predict", data=(REPO / "loadtester/images/chelsea.jpg").read_bytes(),
                               headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["backend"] == BACKEND
        assert "converted model from the cache" in child.log()
    finally:
        child.stop()


@pytest.mark.parametrize("env, message", [
    ({"MODEL_BACKEND": "torch"}, "MODEL_BACKEND=torch but the 'torch' package is not installed"),
    ({"MODEL_WEIGHTS": "imagenet"}, "MODEL_WEIGHTS='imagenet' has no converted model in the cache"),
], ids=["torch-backend-refused", "unconverted-weights"])
def test_without_torch_a_worker_that_cannot_start_says_why_in_one_line(tmp_path, env, message):
    full = {**os.environ, "MODEL_WEIGHTS": "random", "MODEL_CACHE_DIR": str(tmp_path / "empty-cache"),
            "BIND_HOST": "127.0.0.1", "PORT": str(free_port()), **no_torch_env(**env)}
    child = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "inference/gunicorn.conf.py"], cwd=REPO,
                           env=full, capture_output=True, text=True, timeout=300)
    assert child.returncode != 0
    lines = [line for line in child.stderr.splitlines() if "cannot start:" in line]
    assert len(lines) == 1 and message in lines[0], child.stderr[-3000:]
    assert "Traceback" not in child.stderr
