"""Old path of :mod:`hyperleaf.verify.check`: the same module object (private names, patching)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("hyperleaf.verify.check")
