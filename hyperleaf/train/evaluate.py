"""Validation: fusion losses, SSIM to each source, H2FR ordering fractions (fusion) or mIoU
(segmentation); optionally writes the fused validation images."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from hyperleaf.train.config import TrainConfig

__all__ = ["evaluate", "val_batches"]


def val_batches(val_set, chunk: int = 8):
    """Yield ``(names, batch)`` over the validation set, stacking samples of equal size."""
    names, items = [], []
    for i in range(len(val_set)):
        it = val_set[i]
        name = getattr(val_set, "pairs", None)
        name = name[i].name if name is not None else f"val_{i:03d}"
        if items and (it["ir"].shape != items[0]["ir"].shape or len(items) == chunk):
            yield names, {k: torch.stack([x[k] for x in items]) for k in items[0]}
            names, items = [], []
        names.append(name)
        items.append(it)
    if items:
        yield names, {k: torch.stack([x[k] for x in items]) for k in items[0]}


@torch.no_grad()
def evaluate(cfg: TrainConfig, objective, val_set, device: torch.device,
             samples_dir: Path | None = None) -> dict[str, object]:
    """Mean validation metrics over ``val_set`` (model put in eval mode).

    With LEAF also the geometry diagnostics of the validation stage vectors
    (:func:`hyperleaf.train.diagnostics.geometry_diagnostics`): ``saturated``, ``spread_*``,
    ``core_dist_*`` floats and ``geometry`` (per stage and modality, a dict).
    """
    objective.eval()
    if cfg.task == "segment":
        return _evaluate_segment(cfg, objective, val_set, device, samples_dir)
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    from hyperleaf import io as hio
    from hyperleaf.train.objective import ordering

    sums: dict[str, float] = {}
    n = 0
    stage_points = []

    def add(key: str, value: Tensor | float, count: int) -> None:
        sums[key] = sums.get(key, 0.0) + float(value) * count

    for names, batch in val_batches(val_set):
        vis, ir = batch["vis"].to(device), batch["ir"].to(device)
        b = vis.shape[0]
        fused, levels = objective.run(vis, ir)
        total, parts = objective.fusion_loss(fused, vis, ir)
        add("loss", total, b)
        for k, v in parts.items():
            add(k, v, b)
        f = fused.clamp(0, 1)
        add("ssim_ir", ssim(f, ir, data_range=1.0), b)
        add("ssim_vis", ssim(f, vis, data_range=1.0), b)
        if levels is not None:
            head = objective.head
            add("h2fr", head.loss(levels), b)
            ok = ordering(levels, head.core(), head.curvature)
            for k, v in ok.items():
                sums[f"order_{k}"] = sums.get(f"order_{k}", 0.0) + float(v.float().sum())
            stage_points.append(torch.stack([torch.stack(lv, 1) for lv in levels]).cpu())
        if samples_dir is not None:
            samples_dir.mkdir(parents=True, exist_ok=True)
            for name, img in zip(names, f, strict=False):
                hio.write_png(samples_dir / f"{name}.png", img[0].cpu().numpy())
        n += b
    out: dict[str, object] = {k: v / n for k, v in sums.items()}
    if stage_points:
        from hyperleaf.train.diagnostics import geometry_diagnostics

        head = objective.head
        geo = geometry_diagnostics(torch.cat(stage_points, 1), head.core().detach().cpu(),
                                   float(head.curvature), head.clip_r)
        out["geometry"] = geo.pop("groups")  # per stage and modality, in log.jsonl only
        out.update(geo)  # the summaries also go to the end-of-run table
    return out


def _evaluate_segment(cfg, objective, val_set, device, samples_dir) -> dict[str, float]:
    from hyperleaf import io as hio
    from hyperleaf.train.losses import confusion_matrix, miou

    k = cfg.num_classes
    conf = torch.zeros(k, k, dtype=torch.int64)
    loss_sum, n = 0.0, 0
    for names, batch in val_batches(val_set):
        vis, ir, mask = (batch[x].to(device) for x in ("vis", "ir", "mask"))
        total, parts, logits = objective(vis, ir, mask)
        loss_sum += float(parts["seg"]) * vis.shape[0]
        pred = logits.argmax(1)
        conf += confusion_matrix(pred.cpu(), mask.cpu(), k)
        n += vis.shape[0]
        if samples_dir is not None:
            samples_dir.mkdir(parents=True, exist_ok=True)
            for name, p in zip(names, pred, strict=False):
                hio.write_png(samples_dir / f"{name}.png", (p.float() / (k - 1)).cpu().numpy())
    acc = float(conf.diag().sum()) / max(1, int(conf.sum()))
    return {"loss": loss_sum / n, "miou": miou(conf), "pixel_acc": acc}
