"""On PYTHONPATH, makes OpenVINO and ONNX Runtime impossible to import, as on a machine with only torch.

`PYTHONPATH=tests/only_torch make test` runs the whole suite that way; tests/test_service_backends.py
starts the service under it to check that `auto` falls back to torch.

The finder answers with a spec whose loading fails, rather than raising at lookup: libraries that only
look a package up (torch._dynamo does, for every optional package it knows) must keep working.
"""

import importlib.abc
import importlib.machinery
import os
import sys

HIDDEN = ("openvino", "onnxruntime")
# Tests read this to expect the fallback (and the refusals) instead of the hidden backends' answers.
os.environ["INFERENCE_HIDDEN_BACKENDS"] = ",".join(HIDDEN)


class _Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (hidden by tests/only_torch)", name=spec.name)

    def exec_module(self, module):  # never reached: create_module refuses
        raise AssertionError(module)


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".", 1)[0] in HIDDEN:
            return importlib.machinery.ModuleSpec(fullname, _Refuse())
        return None


sys.meta_path.insert(0, _Hide())
