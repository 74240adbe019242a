"""``hyperleaf train --task segment`` on segmentation folders: the LEAF authors' recipe
(``--recipe leaf-authors``), ``--model leaf-unet`` / ``leaf-unet3d``, the ablation switches, the
per-epoch cosine schedule, and bad data stopping with one ``error:`` line naming the file.

The 2-D network needs segmentation-models-pytorch (``make test-seg``); those tests skip with the
reason elsewhere. The 3-D network and the data checks run everywhere nibabel is installed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hyperleaf.cli import main
from hyperleaf.train import TrainConfig
from hyperleaf.train.config import RECIPES, flatten_config

# Small networks: what the tests change from the recipe (written as a --config file).
SMALL_2D = {"feature_dim": 16, "hdgfb_hidden": 16, "mlp_dim": 32, "encoder": "resnet18"}
SMALL_3D = {"widths3d": [8, 16], "feature_dim": 16, "hdgfb_hidden": 16, "mlp_dim": 32}


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)


def _generic_2d(root, n=4, size=(40, 36), mods=("modality_a", "modality_b", "modality_c",
                                                 "modality_d")):
    r = np.random.default_rng(0)
    for i in range(n):
        for m in mods:
            _png(root / m / f"s{i}.png", r.integers(0, 256, size))
        _png(root / "label" / f"s{i}.png", (r.random(size) > 0.8).astype(np.uint8))
    return root


def _nifti(path, arr):
    nib = pytest.importorskip("nibabel", reason="NIfTI folders need nibabel")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4)), str(path))


def _generic_3d(root, n=3, size=(16, 20, 16)):
    r = np.random.default_rng(1)
    for i in range(n):
        for m in ("t1", "t2"):
            _nifti(root / m / f"v{i}.nii.gz", r.random(size).astype(np.float32))
        _nifti(root / "label" / f"v{i}.nii.gz", (r.random(size) > 0.8).astype(np.uint8))
    return root


def _config(tmp_path, keys):
    p = tmp_path / "small.yaml"
    p.write_text(yaml.safe_dump(keys))
    return str(p)


def _train(argv, capsys):
    code = main(["train", "--no-progress", *argv])
    return code, capsys.readouterr()


def _records(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_recipe_keys_are_the_authors():
    r = RECIPES["leaf-authors"]
    cfg = TrainConfig.from_dict({"recipe": "leaf-authors"})
    # spec §7: CE + 0.5 (Dice + 1.2 Focal) + 0.5 H2FR, focal summed over classes (smp 0.5)
    assert (cfg.seg_loss, cfg.w_ce, cfg.w_focal_dice, cfg.w_dice, cfg.w_focal, cfg.h2fr_weight,
            cfg.focal_reduction) == ("leaf-authors", 1.0, 0.5, 1.0, 1.2, 0.5, "sum")
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.lr_min, cfg.lr_per_epoch, cfg.warmup,
            cfg.grad_clip) == ("adamw", 1e-4, 0.01, 1e-5, True, 0, 1.0)
    assert (cfg.task, cfg.encoder, cfg.curvature, cfg.feature_dim, cfg.crop) == (
        "segment", "resnet50", 0.1, 512, 256)
    # a variant is one key away, and the flags/keys given win over the recipe
    v = TrainConfig.from_dict({"recipe": "leaf-authors", "w_focal": 0.0, "optimizer": "radam"})
    assert v.w_focal == 0.0 and v.optimizer == "radam" and v.lr == r["lr"]


def test_cosine_per_epoch_matches_torch():
    """The per-epoch cosine equals torch's CosineAnnealingLR(T_max=epochs) stepped at the end of
    every epoch (the authors' loop), step by step."""
    from hyperleaf.train.trainer import _lr_lambda

    cfg = TrainConfig.from_dict({"recipe": "leaf-authors", "steps": 12})
    per_epoch = 4  # 3 epochs
    ours = [cfg.lr * _lr_lambda(cfg, per_epoch)(i) for i in range(12)]
    p = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.AdamW([p], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3, eta_min=cfg.lr_min)
    ref = []
    for _epoch in range(3):
        ref += [opt.param_groups[0]["lr"]] * per_epoch
        opt.step()
        sched.step()
    assert ours == pytest.approx(ref, rel=1e-12, abs=0)
    assert len(set(ours[:4])) == 1 and ours[4] < ours[0]


def test_leaf_unet_two_steps_on_a_generic_folder(tmp_path, capsys):
    from tests.segtools import require_smp

    require_smp()
    data = _generic_2d(tmp_path / "data")
    out = tmp_path / "run"
    code, cap = _train(["--task", "segment", "--model", "leaf-unet", "--recipe", "leaf-authors",
                        "--data", str(data), "--config", _config(tmp_path, SMALL_2D),
                        "--crop", "32", "--num-classes", "2", "--steps", "2",
                        "--batch-size", "2", "--out", str(out)], capsys)
    assert code == 0, cap.err
    saved = flatten_config(yaml.safe_load((out / "config.yaml").read_text()))  # sections -> flat
    for key in ("seg_loss", "w_ce", "w_focal_dice", "w_dice", "w_focal", "h2fr_weight",
                "focal_reduction", "optimizer", "lr", "weight_decay", "lr_min", "lr_per_epoch",
                "grad_clip", "curvature"):
        assert saved[key] == RECIPES["leaf-authors"][key], key
    # resolved from the data: 4 modalities -> two inputs of 2 channels
    assert saved["model"] == "leaf-unet" and saved["in_channels"] == 2
    assert saved["encoder"] == "resnet18"
    recs = _records(out)
    train = [r for r in recs if r["kind"] == "train"]
    assert train and all(k in train[-1] for k in ("ce", "dice", "focal", "h2fr"))
    val = [r for r in recs if r["kind"] == "val"][-1]
    assert 0 <= val["miou"] <= 1 and math.isfinite(val["dice_1"])
    assert (out / "model.safetensors").is_file()


def test_leaf_unet3d_two_steps_on_nifti_volumes(tmp_path, capsys):
    data = _generic_3d(tmp_path / "vols")
    out = tmp_path / "run3"
    code, cap = _train(["--task", "segment", "--recipe", "leaf-authors", "--data", str(data),
                        "--config", _config(tmp_path, SMALL_3D), "--crop", "16",
                        "--num-classes", "2", "--steps", "2", "--batch-size", "1",
                        "--out", str(out)], capsys)
    assert code == 0, cap.err
    saved = flatten_config(yaml.safe_load((out / "config.yaml").read_text()))  # sections -> flat
    assert saved["model"] == "leaf-unet3d" and saved["in_channels"] == 1  # from the data
    assert saved["seg_loss"] == "leaf-authors" and saved["optimizer"] == "adamw"
    train = [r for r in _records(out) if r["kind"] == "train"]
    assert train and math.isfinite(train[-1]["loss"])
    # the run folder rebuilds: config.yaml + model.safetensors load strictly
    from tests.test_train import load_run

    objective, cfg = load_run(out)
    assert cfg.model == "leaf-unet3d"
    logits = objective(torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16),
                       torch.zeros(1, 16, 16, 16, dtype=torch.long))[2]
    assert logits.shape == (1, 2, 16, 16, 16)


def _objective(**keys):
    from hyperleaf.tasks.segment import build_segment_objective

    cfg = TrainConfig.from_dict({"recipe": "leaf-authors", "task": "segment",
                                 "model": "leaf-unet3d", "crop": 16, "in_channels": 1,
                                 "num_classes": 2, **SMALL_3D, **keys})
    torch.manual_seed(0)
    return build_segment_objective(cfg)


def test_ablation_switches():
    full = _objective()
    no_hdgfb = _objective(hdgfb=False)
    no_leaf = _objective(leaf=False)
    no_h2fr = _objective(h2fr_weight=0.0)
    assert hasattr(full.net, "hyperbolic_fusion_blocks")
    assert not hasattr(no_hdgfb.net, "hyperbolic_fusion_blocks")
    assert not hasattr(no_leaf.net, "hyperbolic_fusion_blocks")
    x1, x2 = torch.rand(2, 1, 16, 16, 16), torch.rand(2, 1, 16, 16, 16)
    y = torch.randint(0, 2, (2, 16, 16, 16))
    for obj, with_h2fr in ((full, True), (no_h2fr, False), (no_leaf, False)):
        obj.eval()
        total, parts, _ = obj(x1, x2, y)
        rest = parts["ce"] + 0.5 * (parts["dice"] + 1.2 * parts["focal"])
        expect = rest + 0.5 * parts["h2fr"] if with_h2fr else rest
        assert float(total.detach()) == pytest.approx(float(expect), rel=1e-6)
        assert float(parts["h2fr"]) > 0  # reported either way


def test_adamw_refuses_manifold_parameters(tmp_path, capsys):
    # leafseg's learned H2FR core lives on the ball: only RiemannianAdam may move it
    code, cap = _train(["--task", "segment", "--optimizer", "adamw", "--steps", "1",
                        "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and "adamw" in lines[0] and "radam" in lines[0]


@pytest.mark.parametrize("case", ["missing_partner", "size_mismatch", "label_range",
                                  "model_dims", "groups"])
def test_bad_data_stops_with_one_error_line(case, tmp_path, capsys):
    data = _generic_2d(tmp_path / "d", n=3, mods=("a", "b"))
    extra: list[str] = []
    if case == "missing_partner":
        (data / "b" / "s1.png").unlink()
        expect = str(data / "a" / "s1.png")
    elif case == "size_mismatch":
        _png(data / "b" / "s2.png", np.zeros((20, 20)))
        expect = str(data / "b" / "s2.png")
    elif case == "label_range":
        _png(data / "label" / "s0.png", np.full((40, 36), 5))
        expect = str(data / "label" / "s0.png")
    elif case == "model_dims":
        data = _generic_3d(tmp_path / "v", n=2)
        extra = ["--model", "leaf-unet"]
        expect = "2-D"
    else:
        extra = ["--config", _config(tmp_path, {"modality_groups": [[0], [5]]})]
        expect = "modality_groups"
    out = tmp_path / "run"
    code, cap = _train(["--task", "segment", "--data", str(data), "--num-classes", "2",
                        "--crop", "32", "--steps", "1", "--out", str(out), *extra], capsys)
    assert code == 2
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyperleaf train: error:"), cap.err
    assert expect in lines[0]
    assert "Traceback" not in cap.err and not out.exists()  # nothing half-written


def test_crops_are_slices_of_the_grouped_modalities(tmp_path):
    from hyperleaf.data.segmentation import SegmentationCrops, SegmentationFolder

    data = _generic_2d(tmp_path / "d", n=2, size=(40, 36))
    folder = SegmentationFolder(data, num_classes=2)
    (a, b, c, d), label = folder[1]
    for cache in (2 << 30, 0):  # cached and re-read items are the same
        crops = SegmentationCrops(folder, [0, 1], 32, [[0, 1], [2, 3]], cache_bytes=cache)
        centre = crops[1]  # (40 - 32) // 2 = 4 rows, (36 - 32) // 2 = 2 columns
        assert torch.equal(centre["vis"], torch.cat([a, b])[:, 4:36, 2:34])
        assert torch.equal(centre["ir"], torch.cat([c, d])[:, 4:36, 2:34])
        assert torch.equal(centre["mask"], label[4:36, 2:34])
        item = crops.get(1, torch.Generator().manual_seed(0))
        assert item["vis"].shape == (2, 32, 32) and item["mask"].shape == (32, 32)
        assert torch.equal(item["mask"], label[tuple(
            slice(int(i), int(i) + 32) for i in _offset(label, item["mask"]))])
    big = SegmentationCrops(folder, [1], 64, [[0], [1]])[0]  # smaller than the crop: zero pad
    assert big["vis"].shape == (1, 64, 64) and torch.equal(big["vis"][:, :40, :36], a)
    assert float(big["vis"][:, 40:].abs().sum()) == 0 and int(big["mask"][:, 36:].sum()) == 0


def _offset(full, crop):
    # where ``crop`` sits in ``full`` (brute force; the crops are small)
    for i in range(full.shape[0] - crop.shape[0] + 1):
        for j in range(full.shape[1] - crop.shape[1] + 1):
            if torch.equal(full[i:i + crop.shape[0], j:j + crop.shape[1]], crop):
                return i, j
    raise AssertionError("crop not found")
