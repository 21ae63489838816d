"""Run the command line: ``python -m deepgen_core``."""

import sys

from .cli import main

sys.exit(main())
