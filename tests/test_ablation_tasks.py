"""``hyperleaf ablate --task segment|pansharpen``: tiny end-to-end ablations (per-item scores
recomputed by the task's evaluation of the saved run, parameter counts, provenance), the preset
and flag handling of the command line, and filing a record as a results file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hyperleaf.cli import main as cli_main
from hyperleaf.experiments import PRESETS, AblationSpec, count_parameters, run_ablation
from hyperleaf.experiments.render import file_ablation, render_file
from hyperleaf.tasks import get_task
from tests.test_train import load_run


def _nifti(path, arr):
    nib = pytest.importorskip("nibabel", reason="NIfTI folders need nibabel")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4)), str(path))


def _volumes(root, n=3, size=(16, 16, 16)):
    r = np.random.default_rng(1)
    for i in range(n):
        for m in ("t1", "t2"):
            _nifti(root / m / f"v{i}.nii.gz", r.random(size).astype(np.float32))
        _nifti(root / "label" / f"v{i}.nii.gz", (r.random(size) > 0.8).astype(np.uint8))
    return root


SEG = {"steps": 2, "batch_size": 1, "crop": 16, "val_crop": 16, "num_classes": 2,
       "model": "leaf-unet3d", "widths3d": [8, 16], "feature_dim": 16, "hdgfb_hidden": 16,
       "mlp_dim": 32, "lesion_fraction": 0.5}


def test_segment_ablation_end_to_end(tmp_path):
    data = _volumes(tmp_path / "vols")
    spec = AblationSpec(data=str(data), out=str(tmp_path / "abl"), seeds=(0, 1),
                        arms=("ship", "h2fr-only", "leaf"), config=dict(SEG), task="segment",
                        heldout_fraction=0.34, n_boot=200, command="test")
    rec = run_ablation(spec, report=lambda m: None)
    assert rec["task"] == "segment" and rec["metrics"] == ["dice_1", "iou_1", "mdice",
                                                           "pixel_acc"]
    assert rec["split"]["heldout"] == ["v2"]
    for r in rec["runs"]:
        # the per-item scores are the task's evaluation of the saved run on that item alone
        objective, cfg = load_run(tmp_path / "abl" / "runs" / f"{r['arm']}-seed{r['seed']}")
        _, val = get_task("segment").datasets(cfg)
        scores = get_task("segment").evaluate(cfg, objective, val, torch.device("cpu"))
        for m in rec["metrics"]:
            assert r["images"][0][m] == pytest.approx(scores[m], rel=1e-12, nan_ok=True)
        assert r["parameters"] == count_parameters(objective)
    assert rec["parameters"]["leaf"] > rec["parameters"]["h2fr-only"]  # the HDGFBs
    assert rec["commit"] and rec["command"] == "test" and rec["inputs"]
    assert all(len(i["sha256"]) == 64 for i in rec["inputs"])
    summ = rec["summary"]["paired"]["leaf-ship"]["dice_1"]
    assert summ["verdict"] == "too few seeds"
    # filed as a results file, it renders with its unit of replication
    dest = file_ablation(tmp_path / "abl" / "ablation.json", tmp_path / "r.json", "test run")
    text = render_file(dest)
    assert "Unit of replication" in text and "**test run**" in text
    assert "out" not in json.loads(dest.read_text())


def test_pansharpen_ablation_end_to_end(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py (the 'pan' extra) writes the test file")
    rng = np.random.default_rng(0)
    gt = rng.uniform(200, 1800, (5, 4, 32, 32))
    ms = gt[:, :, 2::4, 2::4]
    lms = np.repeat(np.repeat(ms, 4, -1), 4, -2)
    path = tmp_path / "tiny.h5"
    with h5py.File(path, "w") as f:
        for k, v in {"gt": gt, "lms": lms, "ms": ms, "pan": gt.mean(1, keepdims=True)}.items():
            f[k] = v
    cfg = {"steps": 2, "batch_size": 2, "crop": 16, "val_crop": 32, "n_feat": 4,
           "ball_dim": 4, "hdgfb_mode": "geodesic", "val_index": "3-4", "train_index": "0-2"}
    spec = AblationSpec(data=str(path), out=str(tmp_path / "abl"), seeds=(0, 1),
                        arms=("ship", "euclidean"), config=cfg, task="pansharpen", n_boot=200)
    rec = run_ablation(spec, report=lambda m: None)
    assert rec["metrics"] == ["Q", "SAM", "ERGAS", "SCC", "Q2n"]
    assert len(rec["split"]["heldout"]) == 2
    assert rec["higher_is_better"]["SAM"] is False and rec["higher_is_better"]["Q"] is True
    for r in rec["runs"]:
        assert [im["image"] for im in r["images"]] == rec["split"]["heldout"]
        assert r["metrics"]["SAM"] == pytest.approx(np.mean([im["SAM"] for im in r["images"]]))


def _err(argv, capsys) -> str:
    assert cli_main(["ablate", *argv]) == 2
    return capsys.readouterr().err.strip()


def test_cli_preset_min_effect_task_errors(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    out = str(tmp_path / "o")
    assert "--preset: unknown preset 'nope'" in _err(["--data", str(d), "--out", out,
                                                      "--preset", "nope"], capsys)
    assert "--min-effect: expected METRIC=VALUE" in _err(
        ["--data", str(d), "--out", out, "--min-effect", "SSIM"], capsys)
    assert "--arms: 'euclidean' is not available for the segment task" in _err(
        ["--data", str(d), "--out", out, "--task", "segment", "--arms", "ship,euclidean"],
        capsys)
    assert "--data: not found" in _err(["--data", str(tmp_path / "x"), "--out", out,
                                        "--task", "segment"], capsys)
    assert set(PRESETS) >= {"fuse-hour", "fuse-finetune-hour"}
    for p in PRESETS.values():  # every preset is a valid specification with K >= 8 seeds
        assert p.seeds >= 8
        AblationSpec(data="x", out="y", seeds=tuple(range(p.seeds)), arms=p.arms,
                     config=dict(p.config), task=p.task, heldout=p.heldout).validate()
