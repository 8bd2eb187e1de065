"""`python -m sim`: see sim/cli.py; `python -m sim tune`: see sim/tune_cli.py."""

import sys

if sys.argv[1:2] == ["tune"]:
    from sim.tune_cli import main as tune

    raise SystemExit(tune(sys.argv[2:]))

from sim.cli import main  # noqa: E402

raise SystemExit(main())
