"""Old path of :mod:`hyperleaf.pansharpen.data` (pan-sharpening's pieces now sit in one package):
the same module object, with a ``DeprecationWarning``."""

import sys
import warnings

from hyperleaf.pansharpen import data as _moved

warnings.warn("hyperleaf.data.pancollection moved to hyperleaf.pansharpen.data",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
