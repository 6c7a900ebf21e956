"""``python -m convlint.server``: the language server over stdio (``--tcp [HOST:]PORT`` for
debugging)."""

import sys

from convlint.server.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
