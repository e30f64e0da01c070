"""``python -m pipeline.cli`` (used by tests and by flows that shell out)."""

from pipeline.cli import main

main()
