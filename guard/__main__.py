"""``python -m guard``: the ``guard`` command."""

from guard.cli import main

main()
