"""Image-quality metrics.

* :mod:`hyperleaf.metrics.registry` -- the one place metrics are registered (name, direction,
  reference, function); names are case-insensitive.
* :mod:`hyperleaf.metrics.fusion` -- the ten standard infrared-visible fusion metrics (EN, SD,
  SF, AG, MI, SCD, VIF, Qabf, SSIM, PSNR), two conventions, and :func:`evaluate`.
* :mod:`hyperleaf.metrics.fusion_extra` -- CC, SCC, EI, Nabf, FMI, MS-SSIM, Q_CB, Q_CV, CE, RMSE.
* :mod:`hyperleaf.metrics.vifb` -- the ``vifb`` convention: VIFB's 13 metrics, per RGB channel.

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
from hyperleaf.metrics.fusion_extra import (
    cc,
    ce,
    ei,
    fmi_gradient,
    fmi_pixel,
    ms_ssim,
    nabf,
    q_cb,
    q_cv,
    rmse,
    scc,
)
from hyperleaf.metrics.registry import CONVENTIONS, all_metrics, resolve

__all__ = ["CONVENTIONS", "METRICS", "ag", "all_metrics", "cc", "ce", "ei", "en", "evaluate",
           "fmi_gradient", "fmi_pixel", "mi", "ms_ssim", "nabf", "psnr", "q_cb", "q_cv", "qabf",
           "resolve", "rmse", "scc", "scd", "sd", "sf", "ssim", "vif"]
