"""The build context for images built with no download (`python -m containers context`): containers/offline/ holds
the converted model (converted here, with this machine's torch) and the wheels of both images (downloaded
here, through this machine's pip configuration, proxy and certificate authorities).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from containers.lock import CONSTRAINTS, ROOT

OFFLINE = ROOT / "containers" / "offline"
# The images' Python: wheels must fit it whatever Python runs this.
IMAGE_PYTHON = "3.11"
WHEEL_LISTS = ("requirements-service.txt", "requirements-autoscaler.txt")


def convert(weights: list[str], out: Path = OFFLINE / "model-cache") -> list[str]:
    """Convert each MODEL_WEIGHTS choice into `out` (emptied first); returns those converted. `imagenet`
    that cannot be had (offline, not in torch's cache) is left out with a warning; others must convert."""
    from inference.model import WeightsError, converted_model

    shutil.rmtree(out, ignore_errors=True)
    done = []
    for spec in weights:
        try:
            path, _ = converted_model(spec, out)
        except WeightsError as exc:
            if spec != "imagenet":
                raise
            print(f"containers: leaving the ImageNet weights out of the image: {exc}", file=sys.stderr)
            continue
        done.append(spec)
        print(f"containers: {spec} -> {path.relative_to(ROOT)}", file=sys.stderr)
    return done


def download_wheels(out: Path = OFFLINE / "wheels") -> None:
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", IMAGE_PYTHON, "-c", str(CONSTRAINTS), "-d", str(out)]
    for name in WHEEL_LISTS:
        command += ["-r", str(ROOT / name)]
    if subprocess.run(command).returncode != 0:
        raise SystemExit("containers: pip download failed (its output is above); behind a proxy, configure pip "
                         "(pip config set global.proxy / global.cert) and try again")
