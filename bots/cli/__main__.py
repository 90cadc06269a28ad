"""`python -m bots.cli`: the `threadbot` command."""

import sys

from bots.cli.main import main

sys.exit(main())
