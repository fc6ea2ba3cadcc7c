"""`python -m cli ...` is the same as the `perpchain` command."""

from cli.main import main

main()
