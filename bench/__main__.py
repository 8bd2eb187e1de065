"""`make bench`: every benchmark, one after the other. Each also runs alone: python -m bench.bench_<part>."""

import importlib
import sys

PARTS = ("bench_service", "bench_autoscaler", "bench_loadtester", "bench_sim", "bench_tune")


def main() -> None:
    args = sys.argv[1:]
    for part in PARTS:
        print(f"\n=== {part} ===", flush=True)
        module = importlib.import_module(f"bench.{part}")
        module.main(args if part == "bench_service" else [])


if __name__ == "__main__":
    main()
