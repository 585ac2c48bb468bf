"""``python -m tlzoo`` runs the CLI."""

import sys

from tlzoo.cli import main

sys.exit(main())
