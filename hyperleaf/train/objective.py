"""Old home of the fusion objective (now :mod:`hyperleaf.tasks.fuse`) and of LEAF's head
(now :mod:`hyperleaf.nn.heads`); re-exported."""

from hyperleaf.nn.heads import LeafHead, Levels, ordering
from hyperleaf.tasks.fuse import FusionObjective

__all__ = ["LeafHead", "FusionObjective", "Levels", "ordering"]
