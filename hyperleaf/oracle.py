"""Old path of :mod:`hyperleaf.verify.oracle`: the same module object (private names, patching)."""

import sys

from hyperleaf.verify import oracle as _moved

sys.modules[__name__] = _moved
