"""Run the load tester as a script: `python loadtester/load_tester.py --url http://HOST:PORT`.

Python puts this file's directory first on sys.path; replace it with the repository root so that
`loadtester` resolves as a package (and its modules cannot shadow others by their bare names).
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = str(_HERE.parent)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from loadtester.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
