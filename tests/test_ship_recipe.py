"""The SHIP authors' recipe (``--recipe ship-authors``: loss, saliency mask, schedule, crops) and
fine-tuning from given weights (``--init``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperleaf.cli import main
from hyperleaf.losses import ShipAuthorsLoss, saliency_map, ship_authors_loss, visible_mask
from hyperleaf.train import ConfigError, TrainConfig, train
from hyperleaf.train.build import build_objective
from hyperleaf.train.init import init_objective
from hyperleaf.train.trainer import _lr_lambda
from tests.test_train import load_run

TINY = {"steps": 2, "batch_size": 2, "crop": 16, "val_crop": 24, "val_size": 2,
        "train_size": 16, "n_feat": 4, "hdgfb_hidden": 8, "ball_dim": 4, "save_every": 100,
        "eval_every": 100, "log_every": 1, "w_ssim": 0.0}


def _img(levels, shape=(2, 2)) -> torch.Tensor:
    return torch.tensor(levels, dtype=torch.float64).view(1, 1, *shape) / 255


# --------------------------------------------------------------------------- saliency


def test_saliency_hand_computed():
    # Levels 0, 51, 102, 255: V = sum_j h_j |q - j| = 408, 306, 306, 612 -> min-max [1/3, 0, 0, 1].
    v = saliency_map(_img([0, 51, 102, 255]))
    assert v.dtype == torch.float64
    torch.testing.assert_close(v.flatten(), torch.tensor([1 / 3, 0.0, 0.0, 1.0],
                                                         dtype=torch.float64), rtol=0, atol=1e-15)
    # Three dark pixels, one bright: the bright one is salient (V = 765 vs 255).
    assert saliency_map(_img([0, 0, 0, 255])).flatten().tolist() == [0.0, 0.0, 0.0, 1.0]
    # A constant image has no salient pixel; each image of a batch has its own histogram.
    both = torch.cat([_img([7, 7, 7, 7]), _img([0, 0, 0, 255])])
    assert saliency_map(both).flatten().tolist() == [0.0] * 4 + [0.0, 0.0, 0.0, 1.0]


def test_saliency_matches_a_direct_transcription():
    # V(p) = sum over the image's pixels k of |q_p - q_k| (the histogram sum expanded).
    g = torch.Generator().manual_seed(3)
    img = torch.rand(2, 1, 5, 7, generator=g, dtype=torch.float64)
    q = np.round(img.numpy() * 255).reshape(2, -1)
    want = np.abs(q[:, :, None] - q[:, None, :]).sum(2)
    want = (want - want.min(1, keepdims=True)) / np.ptp(want, axis=1, keepdims=True)
    np.testing.assert_allclose(saliency_map(img).numpy().reshape(2, -1), want, rtol=0,
                               atol=1e-15)


def test_visible_mask_and_bad_input():
    vis = _img([0, 0, 0, 255])
    ir = _img([10, 10, 10, 10])  # constant: saliency 0 everywhere
    assert visible_mask(vis, ir).flatten().tolist() == [0.0, 0.0, 0.0, 1.0]  # ties -> infrared
    assert visible_mask(ir, vis).flatten().tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="img: expected shape"):
        saliency_map(torch.rand(2, 2))
    with pytest.raises(ValueError, match="must have one shape"):
        visible_mask(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match="floating-point"):
        saliency_map(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))


# --------------------------------------------------------------------------- the loss


def test_ship_authors_loss_hand_computed():
    vis = torch.tensor([[0.2, 0.4], [0.6, 0.8]]).view(1, 1, 2, 2)
    ir = torch.tensor([[0.5, 0.1], [0.3, 0.9]]).view(1, 1, 2, 2)
    fused = torch.full((1, 1, 2, 2), 0.3)
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    total, parts = ship_authors_loss(fused, vis, ir, mask, w_mask=3, w_max=10, w_grad=0)
    # |M vis - F| = .1 .3 .3 .5 (mean .3); |F - (1-M) ir| = .3 .2 0 .3 (mean .2)
    assert float(parts["mask"]) == pytest.approx(0.5, abs=1e-7)
    # max(vis, ir) = .5 .4 .6 .9: |F - max| = .2 .1 .3 .6 (mean .3)
    assert float(parts["max"]) == pytest.approx(0.3, abs=1e-7)
    assert float(total) == pytest.approx(3 * 0.5 + 10 * 0.3, abs=1e-6)
    # Constant images: no gradients; equal (zero) saliencies give M = 0 (infrared).
    c = torch.ones(1, 1, 3, 3)
    total, parts = ShipAuthorsLoss()(0.5 * c, 0.25 * c, 0.75 * c)  # exact in binary
    assert float(parts["gradient"]) == 0.0
    assert float(parts["mask"]) == 0.5 + 0.25  # |0 - .5| + |.5 - .75|
    assert float(parts["max"]) == 0.25
    assert float(total) == 3 * 0.75 + 10 * 0.25


def _sobel_abs_sum(x: np.ndarray) -> np.ndarray:
    # Independent transcription: replicate padding, cross-correlation with Sobel x and y.
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    p = np.pad(x, 1, mode="edge")
    h, w = x.shape
    gx, gy = np.zeros_like(x), np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            win = p[i:i + 3, j:j + 3]
            gx[i, j] = (win * sx).sum()
            gy[i, j] = (win * sx.T).sum()
    return np.abs(gx) + np.abs(gy)


def test_ship_authors_loss_matches_a_numpy_transcription():
    g = torch.Generator().manual_seed(0)
    vis, ir, fused = (torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64) for _ in range(3))
    mask = (torch.rand(2, 1, 5, 6, generator=g) > 0.5).double()
    total, parts = ship_authors_loss(fused, vis, ir, mask)
    v, i, f, m = (t.numpy()[:, 0] for t in (vis, ir, fused, mask))
    l_mask = np.abs(m * v - f).mean() + np.abs(f - (1 - m) * i).mean()
    l_max = np.abs(f - np.maximum(v, i)).mean()
    l_grad = np.mean([np.abs(_sobel_abs_sum(f[b]) - np.maximum(_sobel_abs_sum(v[b]),
                                                               _sobel_abs_sum(i[b]))).mean()
                      for b in range(2)])
    for key, want in (("mask", l_mask), ("max", l_max), ("gradient", l_grad)):
        assert float(parts[key]) == pytest.approx(want, rel=1e-12), key
    assert float(total) == pytest.approx(3 * l_mask + 10 * l_max + 10 * l_grad, rel=1e-12)
    # Without a mask the loss computes the saliency mask of the inputs given.
    t2, _ = ship_authors_loss(fused, vis, ir)
    t3, _ = ship_authors_loss(fused, vis, ir, visible_mask(vis, ir))
    assert float(t2) == float(t3)
    with pytest.raises(ValueError, match="w_mask"):
        ShipAuthorsLoss(w_mask=-1)
    with pytest.raises(ValueError, match="mask: expected shape"):
        ship_authors_loss(fused, vis, ir, mask[:, :, :2])


# --------------------------------------------------------------------------- the recipe


def test_recipe_sets_the_authors_values_under_explicit_keys():
    cfg = TrainConfig.from_dict({"recipe": "ship-authors"})
    assert (cfg.loss, cfg.w_mask, cfg.w_intensity, cfg.w_gradient, cfg.w_ssim) == \
        ("ship-authors", 3.0, 10.0, 10.0, 0.0)
    assert (cfg.lr, cfg.lr_schedule, cfg.lr_milestones, cfg.lr_gamma) == \
        (1e-4, "multistep", [15000, 25000], 0.75)
    assert (cfg.crop, cfg.rot90, cfg.n_feat, cfg.warmup) == (128, True, 16, 0)
    assert TrainConfig.from_dict({"recipe": "ship-authors", "crop": 64}).crop == 64
    # What config.yaml stores rebuilds the same configuration.
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="recipe: unknown recipe 'nope'"):
        TrainConfig.from_dict({"recipe": "nope"})
    with pytest.raises(ConfigError, match="lr_milestones"):
        TrainConfig.from_dict({"lr_milestones": [5, 3]})
    with pytest.raises(ConfigError, match="loss"):
        TrainConfig.from_dict({"loss": "l2"})


def test_multistep_schedule_is_torchs_multisteplr():
    cfg = TrainConfig.from_dict({"lr_schedule": "multistep", "lr_milestones": [3, 5],
                                 "lr_gamma": 0.75, "warmup": 0, "lr": 1e-4, "lr_min": 0.0})
    ours = [cfg.lr * _lr_lambda(cfg)(i) for i in range(8)]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 5], gamma=0.75)
    want = []
    for _ in range(8):
        want.append(ref.get_last_lr()[0])
        opt.step()
        ref.step()
    assert ours == pytest.approx(want, rel=1e-15)


def test_rot90_augmentation_rotates_the_flipped_crop(tmp_path):
    from hyperleaf.data import PairDataset
    from hyperleaf.io import find_pairs_in, write_png

    rng = np.random.default_rng(0)
    for k in (1, 2):
        write_png(tmp_path / f"IR{k}.png", rng.random((20, 24)))
        write_png(tmp_path / f"VIS{k}.png", rng.random((20, 24)))
    pairs = find_pairs_in(tmp_path)
    plain = PairDataset(pairs, crop=12, train=True)
    rot = PairDataset(pairs, crop=12, train=True, rot90=True)
    seen = set()
    for s in range(24):
        a = plain.get(0, torch.Generator().manual_seed(s))
        b = rot.get(0, torch.Generator().manual_seed(s))
        ks = [k for k in range(4) if torch.equal(torch.rot90(a["ir"], k, (1, 2)), b["ir"])
              and torch.equal(torch.rot90(a["vis"], k, (1, 2)), b["vis"])]
        assert ks, f"seed {s}: not a rotation of the unrotated sample"
        seen.update(ks)
    assert seen == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="rot90"):
        PairDataset(pairs, crop=None, rot90=True)


def test_recipe_trains_end_to_end(tmp_path):
    cfg = TrainConfig.from_dict({"recipe": "ship-authors", **TINY, "out": str(tmp_path / "r")})
    r = train(cfg, progress=False)
    rec = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    train_recs = [x for x in rec if x["kind"] == "train"]
    assert {"mask", "max", "gradient", "h2fr"} <= set(train_recs[0])
    assert train_recs[0]["lr"] == pytest.approx(1e-4)
    assert {"mask", "max", "gradient"} <= set(r.val_last)


# --------------------------------------------------------------------------- --init


def test_init_from_a_run_folder_reproduces_it_with_leaf_added(tmp_path):
    train(TrainConfig.from_dict({**TINY, "leaf": False, "out": str(tmp_path / "plain")}),
          progress=False)
    src, _ = load_run(tmp_path / "plain")
    obj = build_objective(TrainConfig.from_dict({**TINY, "leaf": True}))
    missing = init_objective(obj, tmp_path / "plain")
    assert missing and all(k.startswith(("net.hdgfb", "head.")) for k in missing)
    vis, ir = torch.rand(2, 1, 20, 20), torch.rand(2, 1, 20, 20)
    obj.eval()
    with torch.no_grad():
        assert torch.equal(obj.net(vis, ir), src.net(vis, ir))
    # The other way round (LEAF weights into plain SHIP) and a wrong width are refused.
    train(TrainConfig.from_dict({**TINY, "out": str(tmp_path / "leaf")}), progress=False)
    with pytest.raises(ConfigError, match="init: .* tensor\\(s\\) this model lacks"):
        init_objective(build_objective(TrainConfig.from_dict({**TINY, "leaf": False})),
                       tmp_path / "leaf")
    with pytest.raises(ConfigError, match="init: .*has shape"):
        init_objective(build_objective(TrainConfig.from_dict({**TINY, "n_feat": 8})),
                       tmp_path / "leaf")
    with pytest.raises(ConfigError, match="does not exist"):
        init_objective(obj, tmp_path / "nothing")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="neither"):
        init_objective(obj, tmp_path / "x.txt")


def test_cli_init_errors_are_one_line(tmp_path, capsys):
    code = main(["train", "--init", str(tmp_path / "missing.pth"), "--steps", "1",
                 "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "error: --init:" in err
    assert not (tmp_path / "o" / "config.yaml").exists()


@pytest.mark.shared
def test_init_from_the_authors_checkpoint_reproduces_their_network_at_step_0(shared_dir,
                                                                              tmp_path):
    from hyperleaf.compat.ship import ship_from_official

    ckpt = shared_dir / "checkpoints" / "ship_irvis_official.pth"
    authors = ship_from_official(ckpt)
    obj = build_objective(TrainConfig.from_dict({"recipe": "ship-authors"}))
    init_objective(obj, ckpt)
    g = torch.Generator().manual_seed(1)
    vis, ir = torch.rand(2, 1, 36, 28, generator=g), torch.rand(2, 1, 36, 28, generator=g)
    obj.eval()
    with torch.no_grad():
        assert torch.equal(obj.net(vis, ir), authors(vis, ir))
    # Through training: the step-0 validation of SHIP + LEAF and of plain SHIP, both started
    # from the authors' weights, are the same numbers (the HDGFB branches add exactly zero).
    kw = {**TINY, "recipe": "ship-authors", "init": str(ckpt), "steps": 1, "val_crop": 32,
          "n_feat": 16}
    vals = []
    for leaf in (True, False):
        out = tmp_path / f"leaf{leaf}"
        train(TrainConfig.from_dict({**kw, "leaf": leaf, "out": str(out)}), progress=False)
        rec = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
        vals.append(next(x for x in rec if x["kind"] == "val" and x["step"] == 0))
    for key in ("loss", "mask", "max", "gradient", "ssim_ir", "ssim_vis"):
        assert vals[0][key] == vals[1][key], key
    with pytest.raises(ConfigError, match="n_feat 16.*set n_feat: 16"):
        init_objective(build_objective(TrainConfig.from_dict({**TINY})), ckpt)


def test_docs_name_the_recipe():
    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    assert "--recipe ship-authors" in text and "--init" in text
