"""Old home of :mod:`hyperleaf.distributed` (the process-group helpers); re-exported."""

from hyperleaf.distributed import (
    all_reduce_mean,
    any_true,
    barrier,
    gather_batch,
    gather_levels,
    init_from_env,
    is_distributed,
    rank,
    world_size,
)

__all__ = ["world_size", "rank", "is_distributed", "init_from_env", "gather_batch", "gather_levels",
           "all_reduce_mean", "any_true", "barrier"]
