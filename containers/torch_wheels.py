"""`python -m containers.torch_wheels` (`make setup` runs it): torch and torchvision into this Python, the
CPU-only build where PyTorch's CPU index answers, else pip's default index, saying which and why.

PyPI's torch for Linux x86_64 brings NVIDIA's CUDA libraries, which this project never uses: torch 2.14.1
from PyPI takes 5.2 GB in a venv (torch 1.2 GB, nvidia-* 3.2 GB, triton 0.9 GB), where a CPU-only wheel is a
190 MB download and 0.7 GB installed (2.13.0+cpu). The CPU index is asked first, for a few seconds at most,
so a closed network costs that and nothing more. From there come torch and torchvision only, their
dependencies with the rest of the requirements from pip's default index; either way the versions are
containers/constraints.txt's. The Dockerfile's model-build stage installs from the same index.

This runs in a venv that holds nothing yet: the standard library and settings/ only.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Mapping, Sequence

from settings import SettingError, add_flags, read_values, setting

CONSTRAINTS = Path(__file__).resolve().parent / "constraints.txt"
CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"
PACKAGES = ("torch", "torchvision")


@dataclass(frozen=True)
class TorchOptions:
    index_url: str = setting(CPU_INDEX_URL, env="TORCH_INDEX_URL", flag="--index-url", metavar="URL", doc=(
        "the index of torch's CPU-only wheels, asked first (the Dockerfile's build argument of the same name); "
        "empty: pip's default index, not asked"))
    probe_s: float = setting(5.0, unit="s", lo=0, hi=60, lo_open=True, env="TORCH_INDEX_PROBE_S",
                             flag="--probe-s", metavar="S", doc=(
                                 "how long the index may take to answer (name lookup included) before pip's "
                                 "default index is used instead"))
    dry_run: bool = setting(False, flag="--dry-run", switch=True, doc=(
        "say what would be installed from where, and the pip command, without running it"))


@dataclass(frozen=True)
class Answer:
    """What the index did when asked for its torch page: `ok` when it listed it, else what went wrong."""
    ok: bool
    detail: str


@dataclass(frozen=True)
class Plan:
    """What to do: pip's arguments (none: nothing to install) and the sentence that says what and why."""
    pip_args: tuple[str, ...]
    message: str


def read_options(argv: Sequence[str] | None, environ: Mapping[str, str] | None = None) -> TorchOptions:
    """The flags, else the environment variables, checked. Raises SettingError."""
    parser = argparse.ArgumentParser(prog="python -m containers.torch_wheels", description=__doc__.split("\n\n")[0])
    add_flags(parser, TorchOptions)
    args = parser.parse_args(argv)
    options = TorchOptions(**read_values(TorchOptions, environ, args))
    url = options.index_url.rstrip("/")
    if url and not re.match(r"^https?://[^/\s]+", url):
        key = "--index-url" if args.index_url is not None else "TORCH_INDEX_URL"
        raise SettingError.not_allowed(key, options.index_url, "an http:// or https:// URL, or empty")
    return TorchOptions(index_url=url, probe_s=options.probe_s, dry_run=options.dry_run)


def pins(constraints_text: str) -> dict[str, str]:
    """{package: version} of torch and torchvision as the constraints pin them."""
    found = {}
    for line in constraints_text.splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and name.lower() in PACKAGES:
            found[name.lower()] = version.strip()
    missing = [name for name in PACKAGES if name not in found]
    if missing:
        raise ValueError(f"{CONSTRAINTS.name} pins no {' or '.join(missing)}")
    return found


def needs_install(installed: Mapping[str, str], pinned: Mapping[str, str]) -> bool:
    """Whether torch or torchvision is missing or at another version than pinned (a build's local label,
    +cpu, does not count: 2.14.1+cpu is 2.14.1)."""
    return any(installed.get(name, "").split("+")[0] != version for name, version in pinned.items())


def decide(options: TorchOptions, pinned: Mapping[str, str], answer: Answer | None, *, cuda_on_pypi: bool,
           venv: str = sys.prefix, constraints: str = str(CONSTRAINTS)) -> Plan:
    """Where torch comes from. `answer`: what the index did when asked (None: it was not asked, because
    the index URL is empty). `cuda_on_pypi`: PyPI's build for this machine carries the CUDA libraries
    (Linux x86_64). `venv`: where they would go."""
    what = " and ".join(f"{name}=={pinned[name]}" for name in PACKAGES)
    common = ("install", "--disable-pip-version-check", "-c", constraints, *PACKAGES)
    if answer is not None and answer.ok:
        # Only the two wheels: their dependencies come with the rest, from pip's default index, so the pinned
        # versions need not be on the CPU index too.
        return Plan(common[:2] + ("--no-deps", "--index-url", options.index_url) + common[2:],
                    f"torch: {options.index_url} answered: installing the CPU-only build of {what} from it "
                    "(no CUDA libraries; their dependencies come with the rest, from pip's default index)")
    if answer is None:
        said = f"torch: TORCH_INDEX_URL is empty: installing {what} from pip's default index"
    else:
        said = (f"torch: the CPU index {options.index_url} could not be used ({answer.detail}): installing "
                f"{what} from pip's default index (PyPI) instead")
    if cuda_on_pypi:
        said += (". On Linux x86_64 PyPI's build brings NVIDIA's CUDA libraries (about 5 GB installed), which this "
                 f"project does not use; for the CPU-only build, remove {venv} and run `make setup` again "
                 f"where {options.index_url or CPU_INDEX_URL} answers")
    return Plan(common, said)


def ask_index(url: str, timeout_s: float) -> Answer:
    """GET URL/torch/ (the torch page of a PEP 503 index), given `timeout_s` in all, the name lookup
    included: a closed network can stall a lookup far longer than urllib's socket timeout bounds."""
    result: list[Answer] = []
    silent = Answer(False, f"no answer within {timeout_s:g} s")  # the socket's time-out or this thread's

    def ask() -> None:
        try:
            with urllib.request.urlopen(f"{url}/torch/", timeout=timeout_s) as response:
                result.append(Answer(response.status == 200, f"HTTP {response.status}"))
        except urllib.error.HTTPError as exc:
            result.append(Answer(False, f"HTTP {exc.code}"))
        except urllib.error.URLError as exc:
            result.append(silent if isinstance(exc.reason, TimeoutError) else Answer(False, str(exc.reason)))
        except TimeoutError:
            result.append(silent)
        except Exception as exc:  # noqa: BLE001 - any failure means: use the other index
            result.append(Answer(False, str(exc) or type(exc).__name__))

    thread = threading.Thread(target=ask, name="torch-index-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return result[0] if result else silent


def installed_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def pip(args: Sequence[str]) -> int:
    return subprocess.call([sys.executable, "-m", "pip", *args])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = read_options(argv)
        pinned = pins(CONSTRAINTS.read_text())
    except (ValueError, OSError) as exc:
        print(f"torch: {exc}", file=sys.stderr)
        return 2
    installed = installed_versions()
    if not needs_install(installed, pinned):
        print(f"torch: {', '.join(f'{n} {v}' for n, v in installed.items())} already in {sys.prefix}: "
              "nothing to install")
        return 0
    cuda_on_pypi = platform.system() == "Linux" and platform.machine().lower() in ("x86_64", "amd64")
    answer = ask_index(options.index_url, options.probe_s) if options.index_url else None
    plan = decide(options, pinned, answer, cuda_on_pypi=cuda_on_pypi)
    print(plan.message, flush=True)
    if options.dry_run:
        print(" ".join([sys.executable, "-m", "pip", *plan.pip_args]))
        return 0
    status = pip(plan.pip_args)
    if status != 0 and answer is not None and answer.ok:
        plan = decide(options, pinned, Answer(False, f"pip stopped with exit status {status}"),
                      cuda_on_pypi=cuda_on_pypi)
        print(plan.message, flush=True)
        status = pip(plan.pip_args)
    return status


if __name__ == "__main__":
    sys.exit(main())
