"""The converted-model cache, without torch: where an entry for a MODEL_WEIGHTS choice lives, whether it can
be read, and how a new one is written so that any user can read it.

An entry is named by what the weights are, not by who converted them: `random` by the torch version whose
seeded initialisation made them, `imagenet` by the release of the weights, a state dict file by the sha256
of its bytes; plus the export's opset and graph version. A worker without torch (the runtime image) can so
find the model the image's build converted, and a worker with torch skips building the model it would only
hash. Entries are written 0644 in 0755 directories, atomically: the image's build runs as root and its
workers as UID 10001, and workers starting together never read half a file. An entry that exists but
cannot be read is a miss, logged, never a crash.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path

from inference.spec import WeightsError, weights_file

log = logging.getLogger(__name__)

OPSET = 17
# Bump when the exported graph changes shape or meaning, so old cache entries are not reused.
GRAPH_VERSION = 1
FILE_MODE = 0o644
DIR_MODE = 0o755
IMAGENET_RELEASE = "imagenet1k-v1"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "resnet18-inference"


def torch_version() -> str | None:
    """The installed torch release (without a local suffix such as +cpu), read without importing torch."""
    try:
        return metadata.version("torch").split("+")[0]
    except metadata.PackageNotFoundError:
        return None


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_id(spec: str, torch_release: str | None) -> str:
    """What the weights are: the part of an entry's name that depends on MODEL_WEIGHTS."""
    if spec == "random":
        return f"random-torch{torch_release or '*'}"
    if spec == "imagenet":
        return IMAGENET_RELEASE
    path = weights_file(spec)
    try:
        return f"sha256-{file_digest(path)[:24]}"
    except OSError as exc:
        raise WeightsError(f"MODEL_WEIGHTS={spec!r} cannot be read by uid {os.geteuid()}: {exc.strerror}") from None


def entry_name(source: str) -> str:
    return f"resnet18-{source}-opset{OPSET}-g{GRAPH_VERSION}.onnx"


def readable(path: Path) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def describe_owner(path: Path) -> str:
    st = path.stat()
    return f"mode {st.st_mode & 0o777:04o}, owner uid {st.st_uid}, read as uid {os.geteuid()}"


def lookup(spec: str, cache_dir: Path) -> tuple[Path | None, str]:
    """(the readable entry for `spec`, or None; why not, for the log when None and the entry exists).

    Without torch, `random` takes whichever torch release's entry is there (the image's build made one).
    """
    release = torch_version()
    pattern = str(cache_dir / entry_name(source_id(spec, release)))
    matches = sorted(glob.glob(pattern)) if release is None else [pattern]
    for match in reversed(matches):
        path = Path(match)
        if not path.is_file():
            continue
        if readable(path):
            return path, ""
        return None, f"model cache entry {path} cannot be read ({describe_owner(path)})"
    return None, ""


def make_dirs(directory: Path) -> None:
    """mkdir -p, every new directory 0755 whatever the umask (077 would hide the cache from other users)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        os.chmod(new, DIR_MODE)


def store(data: bytes, spec: str, cache_dir: Path, private: bool = False) -> Path:
    """Write an entry readable by every user, atomically; a private temporary file when the cache cannot
    take it (unwritable, or `private`: an unreadable entry of someone else's is in the way)."""
    path = cache_dir / entry_name(source_id(spec, torch_version()))
    if not private:
        try:
            make_dirs(cache_dir)
            fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=path.name, suffix=".tmp")
        except OSError as exc:
            log.warning("model cache %s is not writable (%s); exporting to a temporary file", cache_dir, exc)
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600: another user (the pod's) could not read it
            os.replace(tmp, path)  # atomic: a worker starting at the same moment sees nothing or the whole file
            return path
    fd, tmp = tempfile.mkstemp(prefix="resnet18-", suffix=".onnx")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Path(tmp)


# OpenVINO's own cache of compiled models (its CACHE_DIR), beside the converted ones: a worker that finds its
# model compiled for this CPU and these settings imports it instead of reading and compiling the ONNX file.
COMPILED_SUBDIR = "openvino-compiled"


def compiled_cache_dir(cache_dir: Path) -> Path | None:
    """Where OpenVINO may keep compiled models, or None where this process cannot write there (a read-only
    image: OpenVINO refuses an unwritable cache directory, so the worker compiles as it would without one)."""
    directory = cache_dir / COMPILED_SUBDIR
    try:
        make_dirs(directory)
    except OSError:
        return None
    # As the effective user: a process that dropped root (seteuid) must not be told root's answer.
    return directory if os.access(directory, os.W_OK | os.X_OK, effective_ids=True) else None
