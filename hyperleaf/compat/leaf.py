"""The LEAF authors' checkpoints <-> :class:`hyperleaf.models.LEAFUNet` and
:class:`hyperleaf.nn.HDGFB3DReference`.

Their training script saves ``{"epoch", "state_dict", "best_acc1", "optimizer"}`` to a
``.pth.tar`` (spec §7.6): ``state_dict`` is flat, 1914 entries for ResNet-50 / 8 classes, with
alias keys (``encoder1.*`` = ``model1.encoder.*``, ``encoder2.*`` = ``model2.encoder.*``,
``decoder.*`` = ``model1.decoder.*``, ``segmentation_head.*`` = ``model1.segmentation_head.*``),
and ``best_acc1`` is usually a ``numpy.float64``. ``LEAFUNet`` registers the same aliases, so its
``state_dict()`` *is* that format.

Files are read with :func:`hyperleaf.atomic.safe_torch_load` (``weights_only=True``) and an
allow-list of exactly the numpy objects a pickled ``numpy.float64`` needs (its scalar
reconstructor, ``numpy.dtype`` and ``Float64DType``): no code from the file is executed, and a
refused or damaged file gives hyperleaf's one-line message naming it.

Example::

    >>> net = leaf_from_reference("Hyfusion_model_WHU_res_c-1.pth.tar")  # doctest: +SKIP
    >>> save_leaf_reference(net, "copy.pth.tar", epoch=3, best_acc1=0.61)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hyperleaf.atomic import atomic_torch_save, safe_torch_load
from hyperleaf.models.leafunet import LEAFUNet
from hyperleaf.nn.hdgfb3d import HDGFB3DReference

__all__ = ["leaf_from_reference", "save_leaf_reference", "load_reference_file",
           "hdgfb3d_from_reference", "LEAF_ALIASES"]

#: alias prefix -> the prefix of the tensor it repeats (spec §1.1).
LEAF_ALIASES = {
    "encoder1.": "model1.encoder.",
    "encoder2.": "model2.encoder.",
    "decoder.": "model1.decoder.",
    "segmentation_head.": "model1.segmentation_head.",
}


def _numpy_allow_list() -> list:
    # A pickled numpy.float64 refers to numpy's scalar reconstructor under its numpy-1 name
    # (numpy.core.multiarray.scalar) or numpy-2 name (numpy._core.multiarray.scalar), to
    # numpy.dtype and to the dtype's class; nothing else is allowed.
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list = [scalar, (scalar, "numpy.core.multiarray.scalar"),
                     (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "Float64DType"):
        allowed.append(dtypes.Float64DType)
    return allowed


def load_reference_file(path: str | Path) -> Any:
    """Read an authors' file on CPU, safely: :func:`hyperleaf.atomic.safe_torch_load`
    (``weights_only=True``) allowing only the NumPy objects a pickled ``numpy.float64`` needs.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        hyperleaf.atomic.UnsafeFileError: the pickle names other objects (nothing is run).
        hyperleaf.atomic.UnreadableFileError: damaged, truncated or not a PyTorch file.

    Both errors are ``ValueError`` subclasses with a one-line message naming the file.
    """
    return safe_torch_load(path, what="a LEAF checkpoint (the authors' .pth.tar)",
                           allow=_numpy_allow_list())


def _state_dict(obj: Any, where: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"],
                                                                        Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{where}: expected a state dict (a mapping of names to tensors) or "
                         f"{{'state_dict': ...}}, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{where}: entries that are not name -> tensor: {bad[:5]}")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):  # DataParallel / DDP
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _fill_aliases(sd: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """Check that alias entries repeat their originals; add missing ones (a converter's
    alias-free dict loads too)."""
    out = dict(sd)
    for alias, base in LEAF_ALIASES.items():
        for key, value in sd.items():
            if not key.startswith(base):
                continue
            akey = alias + key[len(base):]
            if akey in sd:
                other = sd[akey]
                if other.shape != value.shape or not torch.equal(other, value):
                    raise ValueError(f"{where}: alias {akey} differs from {key}; the authors' "
                                     "format stores the same tensor under both names")
            else:
                out[akey] = value
    return out


def leaf_from_reference(path_or_state_dict: str | Path | Mapping[str, Any],
                        num_classes: int | None = None, *, encoder: str = "resnet50",
                        c: float = 0.1, feature_dim: int = 512, mode: str = "paper"):
    """Build a :class:`hyperleaf.models.LEAFUNet` from the authors' weights, loaded strictly.

    Args:
        path_or_state_dict: a ``.pth.tar``/``.pth`` file of theirs (``{"state_dict": ...,
            "best_acc1": numpy.float64, ...}`` or a flat state dict), or the mapping itself. A
            ``module.`` prefix is stripped; alias entries may be absent (they are then filled in)
            but must equal their originals when present.
        num_classes: checked against the head; ``None`` reads it from the head's bias.
        encoder, c, feature_dim, mode: as for ``LEAFUNet`` (``c`` changes no shape: pass the
            curvature of the run, 0.1 in the authors' scripts).

    Returns:
        The network, in ``eval()`` mode, float32 (as saved).

    Raises:
        FileNotFoundError; ValueError naming the file/argument for anything that does not load
        strictly (missing or unexpected keys, shapes, a wrong ``num_classes``).
    """
    if isinstance(path_or_state_dict, (str, Path)):
        where = str(path_or_state_dict)
        obj = load_reference_file(path_or_state_dict)
    else:
        where, obj = "path_or_state_dict", path_or_state_dict
    sd = _fill_aliases(_state_dict(obj, where), where)
    head = sd.get("model1.segmentation_head.0.bias")
    conv1 = sd.get("model1.encoder.conv1.weight")
    if head is None:
        raise ValueError(f"{where}: not a LEAF DualInputHyperbolicUNet state dict (no "
                         "model1.segmentation_head.0.bias)")
    if num_classes is None:
        num_classes = int(head.shape[0])
    elif num_classes != head.shape[0]:
        raise ValueError(f"num_classes={num_classes} but {where} has a head for "
                         f"{head.shape[0]} classes")
    cin = int(conv1.shape[1]) if conv1 is not None and conv1.dim() == 4 else 3
    net = LEAFUNet(num_classes, encoder=encoder, c=c, feature_dim=feature_dim,
                   in_channels=(cin, cin), mode=mode)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        msg = " ".join(str(exc).split())
        raise ValueError(f"{where}: does not load strictly into LEAFUNet(encoder={encoder!r}, "
                         f"num_classes={num_classes}, feature_dim={feature_dim}): "
                         f"{msg[:600]}") from None
    return net.eval()


def save_leaf_reference(net, path: str | Path, *, epoch: int = 0, best_acc1: float = 0.0,
                        optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``net`` (a ``LEAFUNet``) in the authors' checkpoint format, atomically:
    ``{"epoch": int, "state_dict": <1914-entry flat dict with aliases>, "best_acc1":
    numpy.float64, "optimizer": <state dict>}`` (``optimizer`` only when given). Their
    ``model_inference.py`` and :func:`leaf_from_reference` read it back."""
    if not isinstance(net, LEAFUNet):
        raise TypeError(f"net must be a LEAFUNet, got {type(net).__name__}")
    obj: dict[str, Any] = {
        "epoch": int(epoch),
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "best_acc1": np.float64(best_acc1),
    }
    if optimizer is not None:
        obj["optimizer"] = optimizer.state_dict()
    return atomic_torch_save(path, obj)


def hdgfb3d_from_reference(state_dict: Mapping[str, Tensor], c: float = 0.5, *,
                           volume: tuple[int, int, int] | None = None):
    """Build a :class:`hyperleaf.nn.HDGFB3DReference` (paper mode) from the state dict of the
    authors' ``HyperbolicAttentionFusion3D``, loaded strictly.

    Their ``tangent_norm`` exists only after a first forward; its shape ``(C, D, H, W)`` gives
    the volume. A dict saved before that has no ``tangent_norm``: pass ``volume=(D, H, W)`` and
    the LayerNorm starts at weight 1, bias 0, as theirs would. ``c`` changes no shape (their
    3-D network uses 0.5).
    """
    sd = _state_dict(state_dict, "state_dict")
    w = sd.get("to_hyperbolic1.0.weight")
    ff0 = sd.get("ff.0.weight")
    if w is None or ff0 is None or w.dim() != 5:
        raise ValueError("state_dict: not a HyperbolicAttentionFusion3D state dict (needs "
                         "to_hyperbolic1.0.weight (C, C, 1, 1, 1) and ff.0.weight)")
    norm = sd.get("tangent_norm.weight")
    if norm is not None:
        if norm.dim() != 4:
            raise ValueError(f"state_dict: tangent_norm.weight must be (C, D, H, W), got "
                             f"{tuple(norm.shape)}")
        found = tuple(int(s) for s in norm.shape[1:])
        if volume is not None and tuple(volume) != found:
            raise ValueError(f"volume={tuple(volume)} but tangent_norm was built for {found}")
        volume = found
    elif volume is None:
        raise ValueError("state_dict has no tangent_norm (saved before the block's first "
                         "forward): pass volume=(D, H, W)")
    block = HDGFB3DReference(int(w.shape[0]), volume=volume, c=c, hidden=int(ff0.shape[0]))
    sd = dict(sd)
    if norm is None:
        sd["tangent_norm.weight"] = block.tangent_norm.weight.detach().clone()
        sd["tangent_norm.bias"] = block.tangent_norm.bias.detach().clone()
    try:
        block.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"state_dict: does not load into HDGFB3DReference: "
                         f"{' '.join(str(exc).split())[:600]}") from None
    return block
