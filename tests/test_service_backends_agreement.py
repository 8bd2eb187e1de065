"""The model backends against torch: that each FP32 backend answers as torch does, and what bf16 changes.

torch is the reference. The agreement tests run each installed backend against it on the bundled photos,
with random weights and with a state dict the test writes; a backend that is not installed fails its
cases (requirements-service.txt installs both), it is not skipped (under tests/hide_modules, its cases check
the refusal instead). bf16 is measured against FP32 on the photos and 200 generated images, with random
weights and with weights trained a few steps. The photos, the written state dict and the conversion cache
are tests/test_service_backends.py's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from inference import backends
from inference.backends import BackendError
from inference.model import Classifier
from inference.preprocess import preprocess
from tests.test_service_backends import HIDDEN, PHOTOS, written_state_dict
from tests.test_service_backends import cache_dir  # noqa: F401 - the fixture: this module's conversion cache


def smooth_images(count: int, seed: int = 0) -> np.ndarray:
    """uint8 NHWC images with photo-like smooth structure: coarse random colours, bilinearly upsampled."""
    coarse = torch.randint(0, 256, (count, 3, 14, 14), generator=torch.Generator().manual_seed(seed))
    fine = torch.nn.functional.interpolate(coarse.float(), size=(224, 224), mode="bilinear", align_corners=False)
    return fine.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def photo_batch() -> np.ndarray:
    return np.stack([preprocess(p.read_bytes(), 10**9) for p in PHOTOS])


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
@pytest.mark.parametrize("weights", ["random", "state-dict"])
def test_fp32_backends_answer_as_torch_does(tmp_path, cache_dir, backend, weights):
    spec = written_state_dict(tmp_path) if weights == "state-dict" else "random"
    if backend in HIDDEN:
        with pytest.raises(BackendError, match=f"'{backend}' package is not installed"):
            Classifier(spec, backend=backend, cache_dir=cache_dir)
        return
    reference = Classifier(spec, backend="torch", precision="fp32", threads=1)
    other = Classifier(spec, backend=backend, precision="fp32", threads=1, cache_dir=cache_dir)
    assert (other.backend, other.precision) == (backend, "fp32")
    batch = photo_batch()
    expected, got = torch.from_numpy(reference.logits(batch)), torch.from_numpy(other.logits(batch))
    assert (got - expected).abs().max().item() < 1e-4
    assert torch.equal(got.topk(5).indices, expected.topk(5).indices)
    # One image alone and in a batch give the same answer (the batch axis is dynamic in the export).
    assert (torch.from_numpy(other.logits(batch[:1])) - got[:1]).abs().max().item() < 1e-4


CLASS_CASTS = torch.tensor([[60.0, -30, -30], [-30, 60, -30], [-30, -30, 60], [40, 40, -60]])


def cast_images(count: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """Generated images of four classes (a colour cast each over smooth_images) and their labels."""
    labels = torch.arange(count) % len(CLASS_CASTS)
    base = torch.from_numpy(smooth_images(count, seed)).float() * 0.6
    return (base + CLASS_CASTS[labels][:, None, None, :] + 50).clamp(0, 255).to(torch.uint8).numpy(), labels


def trained_state_dict(tmp_path: Path) -> str:
    """A ResNet-18 trained a few SGD steps (64x64 crops, for speed) to tell the four classes of cast_images
    apart: weights whose logits carry a decision, unlike random ones."""
    from inference.spec import MEAN, STD

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    images, labels = cast_images(64, seed=1)
    x = torch.nn.functional.interpolate(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0, size=(64, 64),
                                        mode="bilinear", align_corners=False)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    model.train()
    for step in range(24):
        batch = torch.arange(16) + (step * 16) % 64
        loss = torch.nn.functional.cross_entropy(model(x[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path / "trained.pth"
    torch.save(model.eval().state_dict(), path)
    return str(path)


@pytest.mark.parametrize("weights", ["random", "trained"])
@pytest.mark.parametrize("backend", ["openvino", "torch"])
def test_bf16_agreement_with_fp32_is_measured(tmp_path, cache_dir, backend, weights):
    """bf16 where the CPU has it: top-1 and top-5 agreement with FP32 on the photos and 200 generated images,
    with random weights and with weights trained a few steps (a model whose top-1 means something).

    On a CPU without native bf16 the same request must be refused instead; that is what is checked there.
    """
    if backend in HIDDEN:
        with pytest.raises(BackendError, match="not installed"):
            Classifier("random", backend=backend, precision="bf16", cache_dir=cache_dir)
        return
    if not backends.native_bf16(backends.cpu_flags()):
        with pytest.raises(BackendError, match="native bf16"):
            Classifier("random", backend=backend, precision="bf16", cache_dir=cache_dir)
        return
    spec = trained_state_dict(tmp_path) if weights == "trained" else "random"
    fp32 = Classifier(spec, backend="torch", precision="fp32", threads=1)
    bf16 = Classifier(spec, backend=backend, precision="bf16", threads=1, cache_dir=cache_dir)
    generated = cast_images(200, seed=2)[0] if weights == "trained" else smooth_images(200)
    batches = [photo_batch()] + [generated[i:i + 8] for i in range(0, len(generated), 8)]
    exact = torch.from_numpy(np.concatenate([fp32.logits(b) for b in batches]))
    approx = torch.from_numpy(np.concatenate([bf16.logits(b) for b in batches]))
    top1 = (approx.argmax(1) == exact.argmax(1)).float().mean().item()
    top5 = (torch.sort(approx.topk(5).indices).values == torch.sort(exact.topk(5).indices).values).all(1)
    # bf16 keeps 8 significant bits, so its error grows with the logits' size: trained weights give logits
    # in the hundreds where random ones give a few units. Bounded relative to the largest logit.
    relative = ((approx - exact).abs().max() / exact.abs().max()).item()
    print(f"bf16 on {backend}, {weights} weights: top-1 agreement {top1:.3f}, same top-5 set "
          f"{top5.float().mean().item():.3f}, max |logit diff| {(approx - exact).abs().max().item():.3g} "
          f"({relative:.2%} of the largest logit) over {len(exact)} images")
    assert relative < 0.02
    assert top1 >= 0.95
    assert torch.equal(approx[:len(PHOTOS)].argmax(1), exact[:len(PHOTOS)].argmax(1))
