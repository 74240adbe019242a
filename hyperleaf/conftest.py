"""pytest settings for ``pytest --doctest-modules hyperleaf`` (``make doctest``).

Old import paths that replace themselves by the module they moved to (the same module objects)
are not collected: their examples are collected where they moved, and collecting the alias
files would import a second copy. ``hyperleaf/check.py`` / ``hyperleaf/oracle.py``
(:mod:`hyperleaf.verify`), ``hyperleaf/data/pancollection.py`` and
``hyperleaf/metrics/pansharpening.py`` (:mod:`hyperleaf.pansharpen`).
"""

collect_ignore = ["check.py", "oracle.py", "data/pancollection.py", "metrics/pansharpening.py"]
