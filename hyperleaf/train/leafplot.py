"""Old home of :mod:`hyperleaf.tasks.leafplot` (the leaf plot); re-exported."""

from hyperleaf.tasks.leafplot import collect_points, disk_coordinates, plot_leaf, plot_run_objective

__all__ = ["collect_points", "disk_coordinates", "plot_leaf", "plot_run_objective"]
