"""The numerical self-checks behind ``hyperleaf check``.

* :mod:`hyperleaf.verify.oracle`: geometry, H2FR and HDGFB in 50-digit arithmetic (mpmath);
* :mod:`hyperleaf.verify.check`: the consistency suite comparing the library to the oracle and
  to the seed's formulas.

Only the CLI imports this package (an import-linter contract): library code never depends on
its own tests. The old paths ``hyperleaf.check`` and ``hyperleaf.oracle`` still work.
"""
