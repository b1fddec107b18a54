"""`python -m harness` runs the comps-harness command."""

import sys

from harness.cli import main

sys.exit(main())
