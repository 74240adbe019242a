"""Image-quality metrics.

* :mod:`hyperleaf.metrics.fusion` -- infrared-visible fusion metrics (EN, SD, SF, AG, MI, SCD,
  VIF, Qabf, SSIM, PSNR) and :func:`evaluate`.

The fusion names stay importable from ``hyperleaf.metrics`` (``hyperleaf.metrics.evaluate``).
"""

from hyperleaf.metrics.fusion import (
    METRICS,
    ag,
    en,
    evaluate,
    mi,
    psnr,
    qabf,
    scd,
    sd,
    sf,
    ssim,
    vif,
)

__all__ = ["METRICS", "ag", "en", "evaluate", "mi", "psnr", "qabf", "scd", "sd", "sf", "ssim",
           "vif"]
