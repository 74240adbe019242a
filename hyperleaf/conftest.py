"""pytest settings for ``pytest --doctest-modules hyperleaf`` (``make doctest``).

``hyperleaf/check.py`` and ``hyperleaf/oracle.py`` are old import paths that replace themselves
by :mod:`hyperleaf.verify.check` / :mod:`hyperleaf.verify.oracle` (the same module objects); their
examples are collected there, and collecting the alias files would import a second copy.
"""

collect_ignore = ["check.py", "oracle.py"]
