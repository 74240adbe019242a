"""Old home of :mod:`hyperleaf.tasks.diagnostics` (LEAF's geometry diagnostics); re-exported."""

from hyperleaf.tasks.diagnostics import STREAMS, geometry_diagnostics, saturation_mask

__all__ = ["STREAMS", "saturation_mask", "geometry_diagnostics"]
