"""`python -m medkit`: the `medkit` command where its console script is not on PATH (a kernel's venv, Windows)."""

import sys

from .cli import main

sys.exit(main())
