"""``hyperleaf fuse`` and ``hyperleaf evaluate`` end to end on synthetic images and random
weights saved in the authors' checkpoint format."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from hyperleaf.cli import main
from hyperleaf.models import SHIP


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "ship.pth"
    torch.save({"params": SHIP().state_dict()}, path)
    return path


def _img(path, shape, seed, colour=False):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (*shape, 3) if colour else shape).astype(np.uint8)
    Image.fromarray(a).save(path)
    return path


@pytest.fixture
def dataset(tmp_path):
    d = tmp_path / "data"
    (d / "ir").mkdir(parents=True)
    (d / "vi").mkdir()
    _img(d / "ir" / "a.png", (44, 46), 1)
    _img(d / "vi" / "a.png", (44, 46), 2)
    _img(d / "ir" / "b.png", (42, 45), 3)
    _img(d / "vi" / "b.png", (42, 45), 4, colour=True)
    return d


def test_fuse_and_evaluate(tmp_path, dataset, weights, capsys):
    out = tmp_path / "out"
    assert main(["fuse", "--weights", str(weights), "--data", str(dataset), "--out", str(out),
                 "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    a, b = Image.open(out / "a.png"), Image.open(out / "b.png")
    assert (a.mode, a.size) == ("L", (46, 44))
    assert (b.mode, b.size) == ("RGB", (45, 42))  # colour visible -> colour fused
    text = capsys.readouterr().out
    assert "a: 44x46" in text and "s per pair" in text

    assert main(["evaluate", "--fused", str(out), "--ir", str(dataset / "ir"),
                 "--vis", str(dataset / "vi"), "--metrics", "EN,SD,VIF",
                 "--markdown", str(tmp_path / "t.md")]) == 0
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == ["a", "b", "mean"]
    assert float(rows[2]["EN"]) == pytest.approx((float(rows[0]["EN"]) + float(rows[1]["EN"]))
                                                 / 2, rel=1e-5)
    data = json.loads((out / "metrics.json").read_text())
    assert data["metrics"] == ["EN", "SD", "VIF"] and len(data["images"]) == 2
    assert "| **mean** |" in (tmp_path / "t.md").read_text()


def test_fuse_single_files_and_exact_tile(tmp_path, weights):
    ir = _img(tmp_path / "ir.png", (20, 24), 5)
    vis = _img(tmp_path / "vis.png", (20, 24), 6)
    out = tmp_path / "o"
    for extra in ([], ["--exact"], ["--tile", "16", "--overlap", "4"]):
        assert main(["fuse", "--weights", str(weights), "--ir", str(ir), "--vis", str(vis),
                     "--out", str(out), "--no-progress", *extra]) == 0
    assert [p.name for p in out.iterdir()] == ["vis.png"]


def test_missing_partner_writes_nothing(tmp_path, dataset, weights, capsys):
    (dataset / "vi" / "b.png").unlink()
    out = tmp_path / "out"
    assert main(["fuse", "--weights", str(weights), "--data", str(dataset), "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "b.png" in err and "partner" in err
    assert not out.exists()


def test_size_mismatch_and_unreadable_write_nothing(tmp_path, dataset, weights, capsys):
    _img(dataset / "vi" / "b.png", (40, 45), 7)
    out = tmp_path / "out"
    assert main(["fuse", "--weights", str(weights), "--data", str(dataset), "--out",
                 str(out)]) == 2
    assert "size mismatch" in capsys.readouterr().err and not out.exists()
    (dataset / "vi" / "b.png").write_bytes(b"garbage")
    assert main(["fuse", "--weights", str(weights), "--data", str(dataset), "--out",
                 str(out)]) == 2
    assert "b.png" in capsys.readouterr().err and not out.exists()


def test_bad_weights_and_missing_fused(tmp_path, dataset, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main(["fuse", "--weights", str(bad), "--data", str(dataset), "--out",
                 str(tmp_path / "o")]) == 2
    assert "bad.pth" in capsys.readouterr().err
    empty = tmp_path / "fused"
    empty.mkdir()
    assert main(["evaluate", "--fused", str(empty), "--data", str(dataset)]) == 2
    assert "a.png" in capsys.readouterr().err


def test_colour_goes_through_ycrcb():
    from hyperleaf.cli.fuse import fuse_arrays
    from hyperleaf.io import rgb_to_ycrcb

    rng = np.random.default_rng(8)
    # low saturation so that no RGB channel clips after the luminance change
    vis = np.clip(0.5 + 0.2 * rng.random((6, 7, 1)) + 0.05 * rng.standard_normal((6, 7, 3)),
                  0, 1)
    ir = rng.random((6, 7)).astype(np.float32)

    def net(v, i):  # a stand-in network: fused Y = (Y + IR) / 2
        return (v + i) / 2

    out = fuse_arrays(net, ir, vis)
    ycc_in, ycc_out = rgb_to_ycrcb(vis.astype(np.float32)), rgb_to_ycrcb(out)
    np.testing.assert_allclose(ycc_out[..., 0], (ycc_in[..., 0] + ir) / 2, atol=2e-3)
    np.testing.assert_allclose(ycc_out[..., 1:], ycc_in[..., 1:], atol=2e-3)
    grey = fuse_arrays(net, ir, vis[..., 0].astype(np.float32))
    np.testing.assert_allclose(grey, (vis[..., 0] + ir) / 2, atol=1e-6)
