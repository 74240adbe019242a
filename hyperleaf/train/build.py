"""Rebuild the trained module from a configuration (and a run folder)."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from hyperleaf.train.config import TrainConfig, load_yaml
from hyperleaf.train.losses import FusionLoss

__all__ = ["build_network", "build_objective", "load_run"]


def build_network(cfg: TrainConfig):
    """``(net, features, channels)`` for the fusion task.

    ``features(net, vis, ir) -> (fused, stages)`` with ``stages[l] = (fused, vis, ir)`` maps,
    and ``channels[l]`` their channel count (both None without LEAF).
    """
    from hyperleaf.models import SHIP

    if not cfg.leaf:
        return SHIP(n_feat=cfg.n_feat), None, None
    net = SHIP(n_feat=cfg.n_feat, hdgfb=True,
               hdgfb_kwargs={"mode": cfg.hdgfb_mode, "hidden": cfg.hdgfb_hidden})
    return net, ship_stages, [cfg.n_feat] * 3


def ship_stages(net, vis, ir):
    """``(fused, [(fused_k, vis_k, ir_k) for the 3 interaction stages])`` of a SHIP(hdgfb=True)."""
    out, f = net(vis, ir, return_features=True)
    return out, list(zip(f.fused, f.vis, f.ir, strict=True))


def build_objective(cfg: TrainConfig) -> nn.Module:
    """The module :class:`~hyperleaf.train.trainer.Trainer` optimises, built from ``cfg``."""
    if cfg.task == "segment":
        from hyperleaf.train.segment import build_segment_objective

        return build_segment_objective(cfg)
    from hyperleaf.train.objective import FusionObjective, LeafHead

    net, features, channels = build_network(cfg)
    head = None
    if cfg.leaf:
        head = LeafHead(channels, dim=cfg.ball_dim, c=cfg.curvature,
                        learn_c=cfg.learn_curvature, clip_r=cfg.clip_r, mode=cfg.h2fr_mode,
                        core=cfg.h2fr_core, alpha=cfg.h2fr_alpha, beta=cfg.h2fr_beta)
    loss = FusionLoss(cfg.w_intensity, cfg.w_gradient, cfg.w_ssim)
    return FusionObjective(net, loss, head, h2fr_weight=cfg.h2fr_weight, features=features)


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """``(objective, cfg)`` of a finished run: ``config.yaml`` + ``model.safetensors``.

    The fusion network is ``objective.net`` (call it as ``net(vis, ir)``).
    """
    from safetensors.torch import load_model

    d = Path(run_dir)
    for name in ("config.yaml", "model.safetensors"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"run folder {d}: {name} not found (is it a finished "
                                    "hyperleaf train run?)")
    cfg = TrainConfig.from_dict(load_yaml(d / "config.yaml"), source=str(d / "config.yaml"))
    obj = build_objective(cfg)
    load_model(obj, str(d / "model.safetensors"), strict=True, device=device)
    return obj.to(device).eval(), cfg
