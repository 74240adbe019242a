"""Pan-sharpening in one package: data, sensors' MTFs, Wald's protocol, interpolation,
classical baselines and quality indices.

* :mod:`~hyperleaf.pansharpen.data` -- :class:`PanCollection` and the community's file layouts;
* :mod:`~hyperleaf.pansharpen.metrics` -- the toolbox's quality indices (SAM, ERGAS, Q2n, ...);
* :mod:`~hyperleaf.pansharpen.sensors` -- published MTF gains per sensor;
* :mod:`~hyperleaf.pansharpen.filters` -- MTF Gaussians, decimation, 23-tap and bicubic
  interpolation;
* :mod:`~hyperleaf.pansharpen.baselines` -- :func:`fuse` with the classical :data:`METHODS`;
* :mod:`~hyperleaf.pansharpen.wald` -- :func:`degrade` and :func:`reduced_resolution`.

The task (training, validation, the network wrapper) is :mod:`hyperleaf.tasks.pansharpen`, the
commands ``hyperleaf pansharpen`` / ``hyperleaf evaluate --task pansharpen`` are in
:mod:`hyperleaf.cli`. Old paths (``hyperleaf.data.pancollection``,
``hyperleaf.metrics.pansharpening``) still import, with a ``DeprecationWarning``. See
``docs/pansharpening.md``.
"""

from hyperleaf.pansharpen.baselines import METHODS, fuse
from hyperleaf.pansharpen.filters import (
    CONVENTIONS,
    bicubic,
    decimate,
    interp23,
    interpolate,
    lp_filter_gauss,
    mtf_filter,
    mtf_kernel,
    mtf_sigma,
    toolbox_mtf_kernel,
)
from hyperleaf.pansharpen.sensors import SENSORS, Sensor, custom_sensor, get_sensor
from hyperleaf.pansharpen.wald import degrade, degrade_ms, reduced_resolution

__all__ = ["CONVENTIONS", "METHODS", "SENSORS", "fuse", "Sensor", "bicubic", "custom_sensor",
           "decimate", "degrade", "degrade_ms", "get_sensor", "interp23", "interpolate",
           "lp_filter_gauss", "mtf_filter", "mtf_kernel", "mtf_sigma", "reduced_resolution",
           "toolbox_mtf_kernel"]
