"""`python -m comparison RUN_DIR ...`: see comparison/cli.py."""

import sys

from comparison.cli import main

sys.exit(main())
