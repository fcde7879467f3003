"""`python -m landscape` (also what torchrun launches): the command line."""

from .cli import main

main()
