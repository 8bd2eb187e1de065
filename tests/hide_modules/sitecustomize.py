"""On PYTHONPATH, makes some packages impossible to import, as on a machine without them.

HIDE_MODULES (comma-separated top-level names) says which; the default, OpenVINO and ONNX Runtime, is a
machine with only torch: `PYTHONPATH=$PWD/tests/hide_modules make test` runs the whole suite that way, and
tests/test_service_backends.py starts the service under it to check that `auto` falls back to torch.
`HIDE_MODULES=torch,torchvision` is the service's runtime image, which ships without torch.

The finder answers with a spec whose loading fails, rather than raising at lookup: libraries that only
look a package up (torch._dynamo does, for every optional package it knows) must keep working.
"""

import importlib.abc
import importlib.machinery
import os
import sys

HIDDEN = tuple(filter(None, os.environ.get("HIDE_MODULES", "openvino,onnxruntime").split(",")))
# Tests read this to expect the fallback (and the refusals) instead of the hidden backends' answers.
os.environ["INFERENCE_HIDDEN_BACKENDS"] = ",".join(HIDDEN)


class _Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (hidden by tests/hide_modules)", name=spec.name)

    def exec_module(self, module):  # never reached: create_module refuses
        raise AssertionError(module)


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".", 1)[0] in HIDDEN:
            return importlib.machinery.ModuleSpec(fullname, _Refuse())
        return None


sys.meta_path.insert(0, _Hide())
