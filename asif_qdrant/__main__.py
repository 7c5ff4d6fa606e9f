"""``python -m asif_qdrant`` runs the command line."""

from asif_qdrant.cli import main

main()
