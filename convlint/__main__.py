"""``python -m convlint`` runs the command line."""

import sys

from convlint.server.cli import main

sys.exit(main())
