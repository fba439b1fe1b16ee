"""`python -m dlpipe ...` is the `dlpipe` command."""

from dlpipe.cli import run

if __name__ == "__main__":
    run()
