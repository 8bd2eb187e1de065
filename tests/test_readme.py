"""The README's minikube block, typed in order, names only what exists: every Deployment, Service, file,
image and flag it uses is checked against `k8s/` rendered as `kubectl apply -k k8s/` renders it and
against the real command-line parsers. No cluster runs here; the commands themselves are not executed."""

from __future__ import annotations

import re
import shlex
import pytest
import yaml

from containers.__main__ import IMAGES
from loadtester import capacity_cli, cli
from loadtester.capacity_report import autoscaler_env
from tests.support import REPO, kustomize_build
from tests.test_planning_sizing import measured

README = REPO / "README.md"


def minikube_block() -> list[str]:
    """The commands of the bash block under the README's minikube paragraph, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index("On minikube"):]
    block = re.search(r"```bash\n(.*?)```", after, re.S).group(1)
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in kustomize_build(REPO / "k8s")}


def names_in(commands: list[str], pattern: str) -> set[str]:
    return {m for command in commands for m in re.findall(pattern, command)}


def test_the_block_is_there_and_in_order():
    commands = minikube_block()
    order = ["minikube start", "docker-env", "make images", "kubectl apply -k k8s/", "scale deploy/autoscaler --replicas=0",
             "--find-capacity", "kubectl apply -k k8s/", "--peak-replicas", "kubectl logs"]
    position = 0
    for step in order:
        found = next((i for i in range(position, len(commands)) if step in commands[i]), None)
        assert found is not None, f"the README's minikube block lacks {step!r} after command {position}"
        position = found + 1


@pytest.mark.parametrize("kind, pattern", [
    ("Deployment", r"deploy/([a-z0-9-]+)"),
    ("Service", r"minikube service ([a-z0-9-]+)"),
], ids=["deployments", "services"])
def test_every_object_the_block_names_is_rendered(rendered, kind, pattern):
    names = names_in(minikube_block(), pattern)
    assert names, f"no {kind} named in the block"
    missing = sorted(name for name in names if (kind, name) not in rendered)
    assert not missing, f"the README names {kind}s that k8s/ does not render: {missing}"


def test_the_images_make_builds_are_the_ones_the_deployments_run(rendered):
    text = README.read_text(encoding="utf-8")
    built = set(re.search(r"make images\s+# (.*)", text).group(1).replace(" and ", " ").split())
    # The project's own images: those not pulled from a registry (Prometheus is).
    run = {c["image"] for (kind, _), doc in rendered.items() if kind == "Deployment"
           for c in doc["spec"]["template"]["spec"]["containers"] if "/" not in c["image"]}
    assert run == built == set(IMAGES), (f"the Deployments run {run}, `make images` builds {set(IMAGES)}, "
                                         f"the README says it builds {built}")


def test_the_probes_env_file_is_the_one_kustomize_merges_and_its_keys_are_configmap_keys(rendered):
    commands = minikube_block()
    env_files = names_in(commands, r"--env-file (\S+)")
    kustomization = yaml.safe_load((REPO / "k8s" / "kustomization.yaml").read_text())
    merged = {f"k8s/{path}" for gen in kustomization.get("configMapGenerator", []) for path in gen.get("envs", [])}
    assert env_files and env_files <= merged, f"the probe writes {env_files}; kustomize merges {merged}"
    configmap = next(doc for (kind, name), doc in rendered.items() if kind == "ConfigMap" and name.startswith("autoscaler"))
    missing = sorted(set(autoscaler_env(measured(60.0, 140.0), 500.0)) - set(configmap["data"]))
    assert not missing, f"the probe writes keys the autoscaler's ConfigMap lacks: {missing}"


def test_every_load_tester_flag_in_the_block_is_accepted():
    for command in minikube_block():
        if "load_tester.py" not in command:
            continue
        argv = shlex.split(re.sub(r"\$\([^)]*\)", "http://127.0.0.1:1", command))
        args = argv[argv.index("loadtester/load_tester.py") + 1:]
        parser = capacity_cli.build_parser() if "--find-capacity" in args else cli.build_parser()
        flags = {flag for action in parser._actions for flag in action.option_strings}
        unknown = [a for a in args if a.startswith("--") and a not in flags]
        assert not unknown, f"{command!r}: the load tester has no {unknown}"
        parser.parse_args(args)  # and the values parse (argparse exits 2 otherwise)


def test_every_repository_path_the_block_names_exists():
    paths = names_in(minikube_block(), r"(?:^|\s)((?:k8s|loadtester)/[\w./-]*)")
    missing = sorted(p for p in paths if not (REPO / p.rstrip("/")).exists())
    assert not missing, f"the README names paths that do not exist: {missing}"
