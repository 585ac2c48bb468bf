"""``python -m tlzoo`` runs the CLI."""

from tlzoo.cli import run

run()
