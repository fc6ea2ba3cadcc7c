"""`python -m node ...` is the same as the `perpchain` command."""

from node.cli import main

main()
