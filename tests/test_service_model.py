"""Preprocessing against torchvision's reference transform, weights loading and settings (the batcher is
test_service_model_batcher.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageOps
from torchvision.models import ResNet18_Weights

from inference.config import ConfigError, ServiceConfig
from inference.model import LABELS, Classifier, WeightsError
from inference.preprocess import ImageError, preprocess
from inference.reference import load_state_dict, normalized
from tests import images

REFERENCE = ResNet18_Weights.IMAGENET1K_V1.transforms()
ONE_GREY_LEVEL = 1 / 255 / min(0.229, 0.224, 0.225) + 1e-4  # in normalised units


NORMALIZE = normalized(torch.nn.Identity())


def ours_normalized(data: bytes) -> torch.Tensor:
    """The service's preprocessing, then the normalisation every backend's graph starts with."""
    return NORMALIZE.normalize(torch.from_numpy(preprocess(data, 10**9)).unsqueeze(0))[0]


def reference_tensor(data: bytes) -> torch.Tensor:
    return REFERENCE(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))


@pytest.mark.parametrize("data", [
    images.png((640, 480)), images.png((300, 800)), images.png((224, 224)), images.png((1, 1)),
    images.png((257, 1000)), images.png(mode="RGBA"), images.palette_png_with_transparency(),
    images.encode(images.photo((500, 375)), "BMP"), images.encode(images.photo((400, 300)), "TIFF"),
    images.jpeg((320, 240)), images.exif_rotated_jpeg(orientation=6), images.exif_rotated_jpeg(orientation=3),
], ids=["png-landscape", "png-portrait", "png-exact-crop", "png-one-pixel", "png-odd-size", "png-rgba",
        "png-palette", "bmp", "tiff", "small-jpeg-no-draft", "jpeg-exif-rotate-90", "jpeg-exif-rotate-180"])
def test_matches_the_reference_transform_within_one_grey_level(data):
    ours = ours_normalized(data)
    assert ours.shape == (3, 224, 224)
    assert (ours - reference_tensor(data)).abs().max().item() <= ONE_GREY_LEVEL


@pytest.mark.parametrize("size", [(1600, 1200), (3000, 2000), (1200, 2400)],
                         ids=["draft-half", "draft-quarter", "draft-portrait"])
def test_large_jpeg_draft_decoding_stays_close_to_the_reference(size):
    """libjpeg's reduced-size decode differs from a full decode + resize only in fine detail."""
    data = images.jpeg(size)
    diff = (ours_normalized(data) - reference_tensor(data)).abs()
    assert diff.mean().item() < 0.03
    assert diff.max().item() < 0.5


def test_exif_orientation_is_applied():
    rotated = preprocess(images.exif_rotated_jpeg(orientation=6, size=(320, 200)), 10**9)
    upright = preprocess(images.exif_rotated_jpeg(orientation=1, size=(320, 200)), 10**9)
    # Orientation 6 means "rotate 90 degrees clockwise to display": a different crop of the same photo.
    assert abs(rotated.astype(float) - upright.astype(float)).mean() > 10


@pytest.mark.parametrize("data, status", [
    (b"", 400), (images.truncated_jpeg(), 400), (images.bomb_png(), 413), (b"GIF89a" + bytes(20), 400),
], ids=["empty", "truncated", "bomb", "gif-header-only"])
def test_preprocess_errors_carry_status(data, status):
    with pytest.raises(ImageError) as err:
        preprocess(data, 40_000_000)
    assert err.value.status == status


def test_state_dict_file_loads_and_changes_predictions(tmp_path):
    model = torchvision.models.resnet18(weights=None)
    torch.manual_seed(1)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    loaded = Classifier(str(path))
    assert loaded.weights == f"file:{path}"
    batch = preprocess(images.jpeg(), 10**9)[None]
    with torch.inference_mode():
        expected = torch.softmax(model.eval()(NORMALIZE.normalize(torch.from_numpy(batch))), 1).numpy()
    assert np.allclose(loaded.probabilities(batch), expected, atol=1e-4)
    wrapped = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, wrapped)
    assert np.allclose(Classifier(str(wrapped)).probabilities(batch), expected, atol=1e-4)


@pytest.mark.parametrize("content, match", [
    (None, "no such file"),
    (b"not a torch file", "not a readable torch state dict"),
    ("list", "not a state dict"),
    ("wrong-model", "does not fit ResNet-18"),
], ids=["missing", "garbage", "not-a-dict", "other-architecture"])
def test_bad_weights_files_give_clear_errors(tmp_path, content, match):
    path = tmp_path / "w.pth"
    if content == "list":
        torch.save([1, 2, 3], path)
    elif content == "wrong-model":
        torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=match):
        Classifier(str(path))


def test_imagenet_weights_offline_and_uncached_name_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    with pytest.raises(WeightsError) as err:
        load_state_dict("imagenet")
    message = str(err.value)
    assert "MODEL_WEIGHTS=random" in message and str(tmp_path) in message


def test_make_serve_weights_choice_prints_only_the_answer(tmp_path):
    """What `make serve` runs to pick MODEL_WEIGHTS: offline and uncached here, so `random`, said on stderr."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "inference.model", "--available-or-random"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "TORCH_HOME": str(tmp_path)})
    assert result.returncode == 0
    assert result.stdout == "random\n"
    assert "RANDOM weights" in result.stderr and "MODEL_WEIGHTS=random" in result.stderr


def test_labels_are_torchvisions_1000_imagenet_categories():
    """inference/imagenet_classes.txt ships the labels so the runtime image needs no torchvision."""
    assert LABELS == tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(LABELS) == 1000 and LABELS[281] == "tabby"


# --- settings ---

@pytest.mark.parametrize("env, key, value, allowed", [
    ({"MAX_BATCH_SIZE": "0"}, "MAX_BATCH_SIZE", "0", "1..256"),
    ({"MAX_BATCH_SIZE": "eight"}, "MAX_BATCH_SIZE", "eight", "1..256"),
    ({"WEB_CONCURRENCY": "2.5"}, "WEB_CONCURRENCY", "2.5", "1..256"),
    ({"REQUEST_TIMEOUT_S": "nan"}, "REQUEST_TIMEOUT_S", "nan", "0.001..3600"),
    ({"REQUEST_TIMEOUT_S": "-1"}, "REQUEST_TIMEOUT_S", "-1", "0.001..3600"),
    ({"PORT": "70000"}, "PORT", "70000", "1..65535"),
    ({"DEVICE": "tpu"}, "DEVICE", "tpu", "cpu | cuda | auto"),
], ids=["batch-zero", "batch-word", "workers-fraction", "timeout-nan", "timeout-negative", "port-high",
        "device-unknown"])
def test_bad_settings_name_key_value_and_range(env, key, value, allowed):
    with pytest.raises(ConfigError) as err:
        ServiceConfig.from_env(env)
    assert (err.value.key, err.value.value, err.value.allowed) == (key, value, allowed)


@pytest.mark.parametrize("env, match", [
    ({"MAX_QUEUE": "4", "MAX_BATCH_SIZE": "8"}, "MAX_QUEUE=4 is smaller than MAX_BATCH_SIZE=8"),
    ({"REQUEST_TIMEOUT_S": "60", "GRACEFUL_TIMEOUT_S": "30"}, "GRACEFUL_TIMEOUT_S=30.0 must be longer"),
], ids=["queue-below-batch", "grace-below-timeout"])
def test_settings_that_contradict_each_other_are_refused(env, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(".", r"\.")):
        ServiceConfig.from_env(env)


@pytest.mark.parametrize("env, attr, value", [
    ({}, "queue_limit", 64),
    ({"MAX_QUEUE": "40"}, "queue_limit", 40),
    ({"MAX_BATCH_SIZE": "4"}, "queue_limit", 32),
    ({}, "threads_per_worker", 76),
    ({}, "max_queue_wait_ms", 500.0),
    ({"MAX_QUEUE_WAIT_MS": "0"}, "max_queue_wait_ms", 0.0),
    ({"GUNICORN_THREADS": "6"}, "threads_per_worker", 6),
    ({"TORCH_THREADS": "3"}, "torch_threads_effective", 3),
    ({"MAX_IMAGE_PIXELS": "40e6"}, "max_image_pixels", 40_000_000),
    ({"MAX_BATCH_SIZE": " "}, "max_batch_size", 8),
], ids=["queue-default", "queue-set", "queue-follows-batch", "threads-default", "wait-default", "wait-off",
        "threads-set", "torch-threads-set", "pixels-exponent", "blank-means-default"])
def test_settings_defaults_and_derived_values(env, attr, value):
    assert getattr(ServiceConfig.from_env(env), attr) == value


def test_torch_threads_default_divides_cpus_between_workers(monkeypatch):
    monkeypatch.setattr("inference.config.available_cpus", lambda: 8)
    assert ServiceConfig.from_env({"WEB_CONCURRENCY": "2"}).torch_threads_effective == 4
    assert ServiceConfig.from_env({"WEB_CONCURRENCY": "16"}).torch_threads_effective == 1
