import sys

from loadtester.cli import main

sys.exit(main())
