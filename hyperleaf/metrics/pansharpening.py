"""Old path of :mod:`hyperleaf.pansharpen.metrics` (pan-sharpening's pieces now sit in one
package): the same module object, with a ``DeprecationWarning``."""

import sys
import warnings

from hyperleaf.pansharpen import metrics as _moved

warnings.warn("hyperleaf.metrics.pansharpening moved to hyperleaf.pansharpen.metrics",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
