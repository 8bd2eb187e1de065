"""The layering of pyproject.toml's [tool.importlinter] contracts, checked with import-linter itself.

The real tree must keep every contract; a copy of the tree with one forbidden import added must break the
contract it names, so the check can fail (and would in `make test`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

PACKAGES = ("settings", "processes", "inference", "autoscaler", "loadtester", "comparison", "planning", "local",
            "sim", "bench", "containers", "tests")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(lint), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def copy_tree(dest: Path) -> Path:
    shutil.copy(REPO / "pyproject.toml", dest)
    for package in PACKAGES:
        shutil.copytree(REPO / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.log", "*.json",
                                                                                    "*.onnx", "*.tar", "*.whl", "fixtures", "offline"))
    return dest


def test_the_tree_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("sim/engine.py", "import local.sizing_probe_stand_in", "Layers"),
    ("sim/engine.py", "from local import run", "Layers"),
    ("loadtester/stats.py", "import comparison.table", "Layers"),
    ("settings/values.py", "import inference.config", "Layers"),
    ("inference/app.py", "import autoscaler.config", "Layers"),
    ("local/run.py", "import sim.engine", "Layers"),
    ("bench/clients.py", "from tests import support", "Nothing outside the tests imports them"),
    ("planning/runs.py", "import tests.support", "Nothing outside the tests imports them"),
], ids=["sim-imports-local-module", "sim-imports-local-package", "loadtester-imports-comparison",
        "settings-imports-inference", "inference-imports-autoscaler", "local-imports-sim", "bench-imports-tests",
        "planning-imports-tests"])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract):
    root = copy_tree(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    if line.startswith("import local.sizing_probe_stand_in"):
        (root / "local" / "sizing_probe_stand_in.py").write_text("")
    result = lint_imports(root)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
