"""`python -m containers build | context | lock` (make images runs `build`).

build    convert the model and download the wheels here (`context`), then build resnet18-inference and
         autoscaler from them with no download inside the build, and print both sizes
context  only prepare containers/offline/ (then `docker build --build-arg MODEL_FROM=context ...` by hand)
lock     regenerate containers/constraints.txt from this environment
"""

from __future__ import annotations

import argparse
import sys

from containers import context, engine, lock

BASE_IMAGE = "python:3.11.14-slim-bookworm"  # the Dockerfiles' default BASE_IMAGE, and the stand-in's tag
IMAGES = {"resnet18-inference:latest": "Dockerfile", "autoscaler:latest": "Dockerfile.autoscaler"}
OFFLINE_ARGS = {"MODEL_FROM": "context", "WHEELS_FROM": "context"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m containers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "context", "lock"))
    parser.add_argument("--weights", default="random,imagenet",
                        help="MODEL_WEIGHTS choices to convert into the image, comma-separated (default "
                             "random,imagenet; imagenet is left out, with a warning, where it cannot be downloaded)")
    parser.add_argument("--engine", choices=("docker", "podman"),
                        help="container engine (default: CONTAINER_ENGINE, else docker if its daemon answers, else podman)")
    parser.add_argument("--base-image", default=BASE_IMAGE, help=f"base image of both (default {BASE_IMAGE})")
    args = parser.parse_args(argv)
    if args.command == "lock":
        print(f"wrote {lock.write()}")
        return 0
    weights = [w.strip() for w in args.weights.split(",") if w.strip()]
    bad = [w for w in weights if w not in ("random", "imagenet") and not w.endswith((".pth", ".pt"))]
    if bad or not weights:
        parser.error(f"--weights={args.weights!r}: expected random, imagenet or state dict files (.pth), comma-separated")
    try:
        converted = context.convert(weights)
        context.download_wheels()
        if args.command == "context":
            return 0
        tool = engine.detect(args.engine)
        tool.ensure_base(args.base_image)
        for tag, dockerfile in IMAGES.items():
            print(f"containers: building {tag} with {tool.name} ({dockerfile})", file=sys.stderr)
            tool.build(dockerfile, tag, {**OFFLINE_ARGS, "BASE_IMAGE": args.base_image})
        print()
        for tag in IMAGES:
            print(f"{tag:28} {tool.image_size_bytes(tag) / 1e6:8.0f} MB")
        print(f"converted weights in resnet18-inference: {', '.join(converted)}")
        if "imagenet" not in converted:
            print("the Deployment asks for MODEL_WEIGHTS=imagenet: after `kubectl apply -k k8s/`, run `kubectl patch "
                  "deployment resnet18-inference --patch-file k8s/patches/random-weights.yaml` "
                  "(docs/kubernetes.md#choosing-the-weights)")
    except engine.EngineError as exc:
        print(f"containers: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
