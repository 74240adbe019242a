"""Weights of the LEAF seed's ``HyperbolicAttentionFusion`` -> :class:`hyperleaf.HDGFB`.

Example::

    >>> import hyperleaf
    >>> from hyperleaf import HDGFB
    >>> seed = hyperleaf.paper.HyperbolicAttentionFusion(64, hyper_c=0.2, hidden_dim=512)
    >>> block = HDGFB(64, c=0.2, hidden=512, mode="paper")
    >>> _ = block.load_state_dict(hdgfb_from_reference(seed.state_dict()))  # same outputs as seed
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from hyperleaf.nn.hdgfb import SEED_PARAMETERS

__all__ = ["hdgfb_from_reference"]

# From the block's one seed-name map: the whole-tensor entries (convolutions), the stacked
# per-modality projections in modality order, and the LayerNorm.
_DIRECT = {p: n for p, (n, m) in SEED_PARAMETERS.items() if m is None and n != "norm"}
_MODALITIES = tuple(p for _, p in sorted((m, p) for p, (n, m) in SEED_PARAMETERS.items()
                                           if n == "proj"))
_NORM = next(p for p, (n, _) in SEED_PARAMETERS.items() if n == "norm")


def _conv_matrix(w: Tensor, key: str) -> Tensor:
    # A 1x1 conv weight (out, in, 1, ..., 1) as the (out, in) matrix HDGFB stores.
    if w.dim() < 2 or any(s != 1 for s in w.shape[2:]):
        raise ValueError(f"{key}: expected a 1x1 convolution weight (out, in, 1, 1), got shape "
                         f"{tuple(w.shape)}")
    return w.reshape(w.shape[0], w.shape[1])


def hdgfb_from_reference(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert a state dict of the seed's ``HyperbolicAttentionFusion`` for ``HDGFB``.

    Args:
        state_dict: the seed module's ``state_dict()`` (keys ``to_hyperbolic{1,2,3}.0.*``,
            ``distance_mlp.0.*``, ``ff.0.*``, ``ff.2.*``, ``tangent_norm.*``; a ``module.`` prefix
            from DataParallel is accepted).

    Returns:
        A dict for ``HDGFB(C, c=..., hidden=..., mode=..., num_modalities=2).load_state_dict``:
        in paper mode that block reproduces the seed module; geodesic mode loads the same weights.

    Raises:
        KeyError: a required key is missing; ValueError: unexpected keys or shapes.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    expected = ({f"{p}.{s}" for p in (*_DIRECT, *_MODALITIES) for s in ("weight", "bias")}
                | {f"{_NORM}.weight", f"{_NORM}.bias"})
    missing = sorted(expected - set(sd))
    if missing:
        raise KeyError(f"not a HyperbolicAttentionFusion state dict: missing {missing}")
    extra = sorted(set(sd) - expected)
    if extra:
        raise ValueError(f"unexpected keys for HyperbolicAttentionFusion: {extra}")
    out: dict[str, Tensor] = {}
    for src, dst in _DIRECT.items():
        out[f"{dst}_weight"] = _conv_matrix(sd[f"{src}.weight"], f"{src}.weight").clone()
        out[f"{dst}_bias"] = sd[f"{src}.bias"].clone()
    out["proj_weight"] = torch.stack([_conv_matrix(sd[f"{p}.weight"], f"{p}.weight")
                                      for p in _MODALITIES])
    out["proj_bias"] = torch.stack([sd[f"{p}.bias"] for p in _MODALITIES])
    out["norm_weight"] = sd[f"{_NORM}.weight"].clone()
    out["norm_bias"] = sd[f"{_NORM}.bias"].clone()
    C = out["query_weight"].shape[0]
    if out["gate_weight"].shape != (2, 2) or out["ff1_weight"].shape[1] != 2 * C \
            or out["ff2_weight"].shape[0] != C or out["norm_weight"].shape != (C,):
        raise ValueError("inconsistent HyperbolicAttentionFusion shapes: "
                         f"in_channels={C}, distance_mlp {tuple(out['gate_weight'].shape)}, "
                         f"ff.0 {tuple(out['ff1_weight'].shape)}, ff.2 "
                         f"{tuple(out['ff2_weight'].shape)}")
    return out
