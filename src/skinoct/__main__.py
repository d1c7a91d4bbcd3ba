"""``python -m skinoct`` runs the command-line interface."""

import sys

from skinoct.cli import main

sys.exit(main())
