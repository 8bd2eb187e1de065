"""Run the load tester as a script: `python loadtester/load_tester.py --url http://HOST:PORT` (the same as
`python -m loadtester` or `resnet18-loadtester`). The project must be installed in that Python: `make setup`
does it, or `pip install -e .` in the repository root.
"""

import sys

try:
    from loadtester.cli import main
except ModuleNotFoundError as exc:
    if exc.name != "loadtester":
        raise
    sys.exit("load_tester.py: the project is not installed in this Python (" + sys.executable + "): run "
             "`pip install -e .` in the repository root (or `make setup`), or `python -m loadtester` from there")

if __name__ == "__main__":
    sys.exit(main())
