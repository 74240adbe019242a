"""Old path of :mod:`hyperleaf.verify.check`: the same module object (private names, patching)."""

import sys

from hyperleaf.verify import check as _moved

sys.modules[__name__] = _moved
