"""`python -m wan21_core`: runs the command line of `wan21_core.cli` (i2v generation and the
tiny-model demo) and exits with its status."""
import sys

from .cli import main

sys.exit(main())
