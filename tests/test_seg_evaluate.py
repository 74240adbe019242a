"""``hyperleaf evaluate --task segment``, tiled whole-item prediction and the number of classes
taken from the data.

The scores are checked against an independent computation: the run's network applied tile by
tile with explicit slicing, a confusion matrix counted with NumPy, IoU = TP/(TP+FP+FN) and
Dice = 2TP/(2TP+FP+FN) by hand, and the authors' mIoU (mean over classes with IoU > 0, one
batch) by hand. The 3-D network needs no smp, so these run in ``make test`` where nibabel is
installed; the 2-D run needs smp (``make test-seg``).
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
from hyperleaf.tasks.segment import tile_logits
from hyperleaf.train.config import flatten_config

SMALL_3D = {"widths3d": [8, 16], "feature_dim": 16, "hdgfb_hidden": 16, "mlp_dim": 32}
SMALL_2D = {"feature_dim": 16, "hdgfb_hidden": 16, "mlp_dim": 32, "encoder": "resnet18"}


def _nifti(path, arr):
    nib = pytest.importorskip("nibabel", reason="NIfTI folders need nibabel")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4)), str(path))


def _volumes(root, n=3, size=(16, 20, 18), classes=2, seed=1):
    r = np.random.default_rng(seed)
    for i in range(n):
        for m in ("t1", "t2"):
            _nifti(root / m / f"v{i}.nii.gz", r.random(size).astype(np.float32))
        _nifti(root / "label" / f"v{i}.nii.gz",
               r.integers(0, classes, size).astype(np.uint8))
    return root


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)


def _config(tmp_path, keys):
    p = tmp_path / "small.yaml"
    p.write_text(yaml.safe_dump(keys))
    return str(p)


def _train3d(tmp_path, capsys, data, extra=()):
    out = tmp_path / "run3"
    code = main(["train", "--no-progress", "--task", "segment", "--recipe", "leaf-authors",
                 "--data", str(data), "--config", _config(tmp_path, SMALL_3D), "--crop", "16",
                 "--steps", "2", "--batch-size", "1", "--out", str(out), *extra])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return out


def _evaluate(argv, capsys):
    code = main(["evaluate", "--task", "segment", *argv])
    return code, capsys.readouterr()


def test_tile_logits_equals_whole_for_a_pointwise_network():
    # a 1x1 convolution sees one pixel: tiles (padded at the end) change nothing
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 3, 1).double()

    def forward(a, b):
        return conv(torch.cat([a, b], 1))

    x1, x2 = torch.rand(2, 2, 37, 21, dtype=torch.float64), torch.rand(2, 2, 37, 21,
                                                                        dtype=torch.float64)
    whole = forward(x1, x2)
    for tile, chunk in ((8, 1), (16, 5), (64, 8)):
        got = tile_logits(forward, x1, x2, tile, chunk)
        assert got.shape == whole.shape
        assert torch.allclose(got, whole, rtol=0, atol=1e-15)


def test_tile_logits_calls_the_network_on_zero_padded_tiles():
    seen = []

    def forward(a, b):
        seen.append(a.clone())
        return a[:, :1] * 0 + torch.arange(a.shape[0], dtype=a.dtype).view(-1, 1, 1, 1, 1)

    x = torch.ones(1, 1, 5, 4, 3)
    out = tile_logits(forward, x, x, tile=4, chunk=2)
    tiles = torch.cat(seen)
    assert len(seen) == 1 and tiles.shape == (2, 1, 4, 4, 4)  # 2 x 1 x 1 tile positions
    # each tile is a 4^3 cut of the item zero-padded (at the end) to 8 x 4 x 4
    padded = torch.zeros(1, 1, 8, 4, 4)
    padded[..., :5, :4, :3] = 1
    assert torch.equal(tiles[0], padded[0, :, :4]) and torch.equal(tiles[1], padded[0, :, 4:])
    # stitched back in place (tile j's "logits" are j) and cut to the item's size
    assert out.shape == (1, 1, 5, 4, 3)
    assert float(out[..., :4, :, :].abs().max()) == 0 and bool((out[..., 4, :, :] == 1).all())


def _by_hand(objective, data, tile, k):
    """Independent scores: tiles by explicit slicing, confusion with NumPy."""
    from hyperleaf.data.segmentation import SegmentationFolder

    folder = SegmentationFolder(data, num_classes=k)
    conf = np.zeros((k, k), np.int64)
    batch_iou = []
    preds, labels = [], []
    with torch.no_grad():
        for i in range(len(folder)):
            (a, b), y = folder[i]
            d, h, w = y.shape
            pd, ph, pw = (-(-s // tile) * tile for s in (d, h, w))
            pa = torch.zeros(1, 1, pd, ph, pw)
            pb = torch.zeros(1, 1, pd, ph, pw)
            pa[0, :, :d, :h, :w], pb[0, :, :d, :h, :w] = a, b
            logits = torch.zeros(1, k, pd, ph, pw)
            for z in range(0, pd, tile):
                for r in range(0, ph, tile):
                    for c in range(0, pw, tile):
                        sl = (slice(None), slice(None), slice(z, z + tile), slice(r, r + tile),
                              slice(c, c + tile))
                        logits[sl] = objective.net(pa[sl], pb[sl])[0]
            pred = logits[0, :, :d, :h, :w].argmax(0).numpy()
            preds.append(pred.ravel())
            labels.append(y.numpy().ravel())
            np.add.at(conf, (y.numpy().ravel(), pred.ravel()), 1)
    p, t = np.concatenate(preds), np.concatenate(labels)
    for cls in range(k):
        tp = int(((p == cls) & (t == cls)).sum())
        fp = int(((p == cls) & (t != cls)).sum())
        fn = int(((p != cls) & (t == cls)).sum())
        if tp + fp + fn:
            batch_iou.append(tp / (tp + fp + fn))
    tp = np.diag(conf).astype(float)
    fp, fn = conf.sum(0) - tp, conf.sum(1) - tp
    iou = [tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan
           for c in range(k)]
    dice = [2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan
            for c in range(k)]
    authors = [v for v in batch_iou if v > 0]  # one batch (< 20 items), IoU > 0 only
    return {"iou": iou, "dice": dice, "oa": tp.sum() / conf.sum(),
            "miou": float(np.nanmean(iou)), "authors": sum(authors) / len(authors)}


def test_evaluate_3d_run_matches_an_independent_computation(tmp_path, capsys):
    data = _volumes(tmp_path / "train", n=3, classes=3)
    run = _train3d(tmp_path, capsys, data)
    saved = flatten_config(yaml.safe_load((run / "config.yaml").read_text()))  # sections -> flat
    assert saved["num_classes"] == 3  # inferred from the labels (largest value 2) and saved
    test = _volumes(tmp_path / "test", n=2, size=(20, 18, 17), classes=3, seed=7)
    out, table, md = tmp_path / "scores.json", tmp_path / "scores.csv", tmp_path / "scores.md"
    code, cap = _evaluate(["--weights", str(run), "--data", str(test), "--out", str(out),
                           "--csv", str(table), "--markdown", str(md)], capsys)
    assert code == 0, cap.err
    rep = json.loads(out.read_text())
    from hyperleaf.runs import load_run

    objective = load_run(run, objective=True).objective
    ref = _by_hand(objective, test, tile=16, k=3)
    # the CSV and Markdown forms hold the JSON's numbers (issue 21: every task writes all three)
    import csv

    rows = {(r["score"], r["class"]): r["value"] for r in csv.DictReader(table.open())}
    assert float(rows[("miou", "")]) == pytest.approx(rep["miou"], rel=1e-9)
    assert float(rows[("authors_miou", "")]) == pytest.approx(rep["authors"]["miou"], rel=1e-9)
    for c, v in enumerate(rep["iou"]):
        assert rows[("iou", str(c))] == ("" if v is None else f"{v:.10g}")
    assert f"| mIoU ↑ | {rep['miou']:.4f} |" in md.read_text()
    assert rep["tile"] == 16 and rep["items"] == 2 and rep["num_classes"] == 3
    assert rep["layout"] == "generic"
    for key in ("miou", "oa"):
        assert rep[key] == pytest.approx(ref[key], rel=1e-12), key
    for key in ("iou", "dice"):
        for got, want in zip(rep[key], ref[key], strict=True):
            assert (got is None and math.isnan(want)) or got == pytest.approx(want, rel=1e-12)
    assert rep["authors"]["miou"] == pytest.approx(ref["authors"], rel=1e-12)
    assert rep["authors"]["batch"] == 20 and "not the standard mIoU" in rep["authors"]["note"]
    # printed: the standard scores and the authors' one, labelled as theirs
    assert "mIoU" in cap.out and "OA" in cap.out and "authors' mIoU (theirs)" in cap.out
    assert f"{rep['miou']:.4f}" in cap.out


def test_evaluate_errors_are_one_line_and_write_nothing(tmp_path, capsys):
    data = _volumes(tmp_path / "train", n=2, size=(8, 8, 8))
    run = _train3d(tmp_path, capsys, data, extra=["--num-classes", "2"])
    bad = _volumes(tmp_path / "bad", n=2, size=(8, 8, 8), classes=2)
    _nifti(bad / "label" / "v1.nii.gz", np.full((8, 8, 8), 3, np.uint8))
    out = tmp_path / "s.json"
    flat_fusion_run = tmp_path / "fuse_run"
    flat_fusion_run.mkdir()
    (flat_fusion_run / "config.yaml").write_text("task: fuse\n")
    cases = [
        (["--data", str(data)], "--weights"),
        (["--weights", str(run)], "--data"),
        (["--weights", str(tmp_path / "nope"), "--data", str(data)], "nope"),
        (["--weights", str(flat_fusion_run), "--data", str(data)], "'fuse' run"),
        (["--weights", str(run), "--data", str(bad)], str(bad / "label" / "v1.nii.gz")),
        (["--weights", str(run), "--data", str(tmp_path / "missing")], "missing"),
        (["--weights", str(run), "--data", str(data), "--out", str(tmp_path)], "folder"),
    ]
    for argv, expect in cases:
        code, cap = _evaluate([*argv, "--out", str(out)] if "--out" not in argv else argv,
                              capsys)
        lines = cap.err.strip().splitlines()
        assert code == 2, (argv, cap)
        assert len(lines) == 1 and lines[0].startswith("hyperleaf evaluate: error:"), cap.err
        assert expect in lines[0], (expect, lines[0])
        assert "Traceback" not in cap.err and not out.exists()


def test_evaluate_2d_run_on_a_flat_layout(tmp_path, capsys):
    """A 2-D leaf-unet run trained on modality folders evaluates on the same data laid out
    flat (CASE_MODALITY files): same items, same scores."""
    from tests.segtools import require_smp

    require_smp()
    r = np.random.default_rng(0)
    folders, flat = tmp_path / "folders", tmp_path / "flat"
    for i in range(3):
        for m in ("a", "b"):
            img = r.integers(0, 256, (40, 36))
            _png(folders / m / f"s{i}.png", img)
            _png(flat / f"s{i}_{m}.png", img)
        lab = r.integers(0, 4, (40, 36))
        _png(folders / "label" / f"s{i}.png", lab)
        _png(flat / f"s{i}_seg.png", lab)
    run = tmp_path / "run2"
    code = main(["train", "--no-progress", "--task", "segment", "--recipe", "leaf-authors",
                 "--data", str(folders), "--config", _config(tmp_path, SMALL_2D), "--crop",
                 "32", "--steps", "1", "--batch-size", "2", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    assert flatten_config(yaml.safe_load((run / "config.yaml").read_text()))["num_classes"] == 4
    reps = []
    for d in (folders, flat):
        out = tmp_path / f"{d.name}.json"
        code, cap = _evaluate(["--weights", str(run), "--data", str(d), "--out", str(out)],
                              capsys)
        assert code == 0, cap.err
        reps.append(json.loads(out.read_text()))
    assert reps[1]["layout"] == "flat" and reps[0]["layout"] == "generic"
    for key in ("miou", "oa", "iou", "dice", "authors"):
        assert reps[0][key] == reps[1][key], key
    assert reps[0]["tile"] == 256 and reps[0]["items"] == 3  # the recipe's val_crop
