"""Old home of the segment task's objective (now :mod:`hyperleaf.tasks.segment`); re-exported."""

from hyperleaf.tasks.segment import SegmentObjective, build_segment_objective

__all__ = ["SegmentObjective", "build_segment_objective"]
