"""``python -m hyperleaf`` is the ``hyperleaf`` command."""

from hyperleaf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
