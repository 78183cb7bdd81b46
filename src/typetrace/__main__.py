"""``python -m typetrace``: the command line."""

from typetrace.cli import entry_point

if __name__ == "__main__":
    entry_point()
