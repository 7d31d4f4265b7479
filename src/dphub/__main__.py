"""``python -m dphub`` runs the CLI."""

from dphub.cli import main

main()
