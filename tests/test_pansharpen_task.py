"""task="pansharpen" through the engine (hyperleaf.tasks.pansharpen): run folders, resume after
SIGKILL, the train/validation split, validation scores, and the CLI's error lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hyperleaf.cli import main
from hyperleaf.data import PanCollection
from hyperleaf.pansharpen.evaluation import evaluate_methods
from hyperleaf.pansharpen.network import sharpen
from hyperleaf.runs import load_run
from hyperleaf.tasks import get_task, list_tasks
from hyperleaf.tasks.pansharpen import (
    PansharpenObjective,
    Standardised,
    band_statistics,
    build_pansharpen_objective,
    parse_index,
    patches,
    split_samples,
)
from hyperleaf.train import TrainConfig, train
from hyperleaf.train.checkpoint import list_checkpoints
from hyperleaf.train.config import flatten_config
from tests.test_train import _records, kill_and_resume

h5py = pytest.importorskip("h5py", reason="h5py (the 'pan' extra) writes the test file")

REPO = Path(__file__).resolve().parents[1]


def _load(run):
    """``(network, configuration dict)`` of a pan-sharpening run (hyperleaf.runs.load_run)."""
    loaded = load_run(run, task="pansharpen")
    return loaded.model, loaded.config.to_dict()
TINY = {"task": "pansharpen", "steps": 6, "batch_size": 2, "crop": 16, "val_crop": 32,
        "n_feat": 4, "ball_dim": 4, "save_every": 2, "eval_every": 100, "log_every": 1}


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory) -> Path:
    """Five reduced-resolution samples (4 bands, ratio 4, 32x32 PAN grid, 11-bit)."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(200, 1800, (5, 4, 32, 32))
    ms = gt[:, :, 2::4, 2::4]
    lms = np.repeat(np.repeat(ms, 4, -1), 4, -2)
    pan = gt.mean(1, keepdims=True)
    path = tmp_path_factory.mktemp("ps") / "tiny.h5"
    with h5py.File(path, "w") as f:
        for k, v in {"gt": gt, "lms": lms, "ms": ms, "pan": pan}.items():
            f[k] = v
    return path


def _cfg(data, out, **kw) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "data": str(data), "out": str(out), **kw})


def test_registered_with_its_defaults():
    assert "pansharpen" in list_tasks()
    task = get_task("pansharpen")
    assert task.inputs == ("pan", "lms", "gt")
    cfg = TrainConfig.from_dict({"task": "pansharpen", "data": "x.h5"})
    # the task's defaults, under the file and the flags
    assert (cfg.lr, cfg.batch_size, cfg.h2fr_weight, cfg.val_fraction) == (1e-3, 8, 0.1, 0.2)
    assert TrainConfig.from_dict({"task": "pansharpen", "data": "x.h5", "lr": 0.01}).lr == 0.01
    assert TrainConfig.from_dict({}).lr == TrainConfig().lr  # fuse keeps the global defaults


def test_index_parsing_and_split_by_hand():
    assert parse_index("3") == [3]
    assert parse_index(" 0-2 ,5, 4-4") == [0, 1, 2, 4, 5]
    for bad in ("", "a", "3-1", "1--2", "-1"):
        with pytest.raises(ValueError, match="train_index"):
            parse_index(bad, "train_index")
    # 100 samples, the protocol: 80 train, 20 validate
    tr, va = split_samples(100)
    assert tr == list(range(80)) and va == list(range(80, 100))
    tr, va = split_samples(100, val_fraction=0.1)
    assert len(va) == 10 and va[0] == 90
    assert split_samples(5, train_index="0,2") == ([0, 2], [1, 3, 4])
    assert split_samples(5, "0-1", "4") == ([0, 1], [4])
    with pytest.raises(ValueError, match="val_index: samples \\[1\\] are also in train_index"):
        split_samples(5, "0-1", "1-2")
    with pytest.raises(ValueError, match="train_index: sample 7 is out of range"):
        split_samples(5, "0-7")
    with pytest.raises(ValueError, match="val_index: no samples left"):
        split_samples(3, "0-2")


def test_split_selects_the_samples(tiny_h5):
    given = _cfg(tiny_h5, "unused", train_index="1-3", val_index="0")
    cfg, train_set, val_set = get_task("pansharpen").open_data(given)
    # the data decide bands, ratio and statistics; datasets() reports them, never writes them
    assert (given.ms_bands, given.ratio, given.pan_statistics) == (0, 0, None)
    assert train_set.resolved["ms_bands"] == 4
    ds = PanCollection(tiny_h5, dtype=torch.float64)
    assert len(train_set) == 3 * 4 and len(val_set) == 1  # 16-pixel tiles; one whole 32 tile
    torch.testing.assert_close(val_set[0]["gt"], ds[0]["gt"], rtol=0, atol=0)
    torch.testing.assert_close(train_set[0]["gt"], ds[1]["gt"][:, :16, :16].float(),
                               rtol=0, atol=0)
    assert (cfg.ms_bands, cfg.ratio) == (4, 4)
    expected = band_statistics(patches(ds, None, 16, [1, 2, 3]))
    assert cfg.pan_statistics.keys() == expected.keys()
    for k, v in expected.items():
        assert cfg.pan_statistics[k] == pytest.approx(v, rel=1e-6)  # float32 tiles
    # default split (val_fraction 0.2 of 5): samples 0-3 train, 4 validates
    cfg = _cfg(tiny_h5, "unused")
    train_set, val_set = get_task("pansharpen").datasets(cfg)
    torch.testing.assert_close(val_set[0]["pan"], ds[4]["pan"], rtol=0, atol=0)


def test_engine_run_folder_loads_and_scores_as_the_tables(tiny_h5, tmp_path):
    run = tmp_path / "run"
    res = train(_cfg(tiny_h5, run, train_index="0-3", val_index="4"), progress=False)
    for name in ("config.yaml", "model.safetensors", "log.jsonl"):
        assert (run / name).is_file()
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [4, 6]
    saved = flatten_config(yaml.safe_load((run / "config.yaml").read_text()))  # sections -> flat
    assert saved["task"] == "pansharpen" and saved["ms_bands"] == 4 and saved["ratio"] == 4
    assert saved["pan_statistics"]["ms_std"] and saved["hdgfb_mode"] == "paper"
    recs = _records(run, "train")
    assert [r["step"] for r in recs] == list(range(1, 7))
    assert all("h2fr" in r and "l1" in r for r in recs)  # LEAF by default
    net, cfg = _load(run)
    assert isinstance(net, Standardised) and cfg["ratio"] == 4
    # the final validation record equals the evaluation tables' function on the same tile
    ds = PanCollection(tiny_h5, dtype=torch.float64)
    table = evaluate_methods({"m": net}, [ds[4]], 4, scale=ds.scale)["m"]
    val = _records(run, "val")[-1]
    assert val["step"] == 6
    # float32 network (the run used 1 thread, this process maybe more: another summation
    # order), float64 indices
    for k, v in table.items():
        assert val[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    assert res.val_last["SAM"] == val["SAM"]
    # keys of other tasks in a run's config.yaml (their defaults may change later) are ignored
    saved.update(num_classes=7, w_ssim=0.9)
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    again, _ = _load(run)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                 net.state_dict().values(), strict=True))
    out = np.load(run / "samples" / "val_000.npy")
    np.testing.assert_allclose(out, sharpen(net, ds[4]["pan"], ds[4]["lms"]).numpy(),
                               rtol=0, atol=1e-6)


def test_plain_ship_raw_inputs_and_h2fr_off(tiny_h5, tmp_path):
    run = tmp_path / "plain"
    train(_cfg(tiny_h5, run, leaf=False, normalise=False, steps=2), progress=False)
    net, cfg = _load(run)
    assert not isinstance(net, Standardised) and cfg["pan_statistics"] is None
    assert "h2fr" not in _records(run, "train")[0]
    obj = load_run(run, objective=True).objective
    assert isinstance(obj, PansharpenObjective) and obj.head is None


def test_legacy_run_folder_still_loads(tmp_path):
    """A folder of the earlier separate loop (config.json + model.safetensors)."""
    from safetensors.torch import save_model

    from hyperleaf.models import SHIP

    torch.manual_seed(0)
    net = Standardised(SHIP(n_feat=4, task="pansharpen", ms_bands=3, ratio=2), [0.3], [0.1],
                       [0.2, 0.25, 0.3], [0.05, 0.04, 0.1])
    torch.nn.init.normal_(net.net.reconstruction.conv_last.weight, std=0.1)
    save_model(net, str(tmp_path / "model.safetensors"))
    config = {"task": "pansharpen", "n_feat": 4, "ms_bands": 3, "ratio": 2, "leaf": False,
              "normalisation": {"pan_mean": [0.3], "pan_std": [0.1],
                                "ms_mean": [0.2, 0.25, 0.3], "ms_std": [0.05, 0.04, 0.1]}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = load_run(tmp_path, task="pansharpen")
    pan, lms = torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(run.model(pan, lms), net.eval()(pan, lms))
        assert torch.equal(run.predict(pan=pan, lms=lms), run.model(pan, lms))
    assert (run.config.ms_bands, run.config.ratio, run.config.normalise) == (3, 2, True)
    # the deprecated loader still returns the stored config.json as it was
    from hyperleaf.train import pansharpen as old

    with pytest.warns(DeprecationWarning, match="hyperleaf.runs"):
        load_pansharpen = old.load_pansharpen
    loaded, cfg = load_pansharpen(tmp_path)
    assert cfg == config and torch.equal(loaded(pan, lms), run.model(pan, lms))
    with pytest.raises(ValueError, match="not a 'fuse' run"):
        load_run(tmp_path, task="fuse")


def test_sigkill_then_resume_is_bit_exact(tiny_h5, tmp_path):
    conf = tmp_path / "tiny.yaml"
    conf.write_text(yaml.safe_dump({**TINY, "data": str(tiny_h5), "steps": 14,
                                    "eval_every": 5}))
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    kill_and_resume(conf, ref, cut, kill_after=4, steps=14)
    assert [r["step"] for r in _records(cut, "val")] == [0, 5, 10, 14]
    assert _records(cut, "val")[-1] == _records(ref, "val")[-1]


@pytest.mark.parametrize("extra,msg", [
    (["--train-index", "0-x"], "--train-index: expected indices such as '0-79'"),
    (["--val-index", "0-9"], "--val-index: sample 9 is out of range for the 5 samples"),
    (["--train-index", "0-2", "--val-index", "2-4"], "--val-index: samples [2] are also in"),
    (["--crop", "30"], "--crop: 30 must be a multiple of the data's ratio 4"),
    (["--val-fraction", "1.5"], "--val-fraction: must be in (0, 1)"),
    (["--sensor", "HUBBLE"], "--sensor: unknown 'HUBBLE'"),
    (["--recipe", "ship-authors"], "--recipe: does not apply to the pansharpen task"),
    (["--init", "x.pth"], "--init: does not apply to the pansharpen task"),
    (["--num-classes", "3"], "--num-classes: does not apply"),
    (["--steps", "0"], "--steps: must be >= 1, got 0"),
    (["--lr", "inf"], "--lr: must be finite and > 0"),
    (["--h2fr-weight", "-1"], "--h2fr-weight: must be finite and >= 0"),
])
def test_bad_flags_give_one_error_line(extra, msg, tiny_h5, tmp_path, capsys):
    argv = ["train", "--task", "pansharpen", "--data", str(tiny_h5), "--steps", "1",
            "--no-progress", "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hyperleaf train: error: ") and msg in err[0], err
    assert not (tmp_path / "o").exists()


def test_missing_data_is_one_error_line(tmp_path, capsys):
    assert main(["train", "--task", "pansharpen", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: data: the pansharpen task needs PAN + MS data" in err[0]
    assert not (tmp_path / "o").exists()


def _ddp_worker(rank, world, port, cfg_dict):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(TrainConfig.from_dict(cfg_dict), progress=False)


def test_ddp_equals_single_process_on_union_batch(tiny_h5, tmp_path):
    """2 ranks x batch 2 end at the weights of one process with batch 4 (as for the other
    tasks; RiemannianSGD, see tests/test_ddp.py), H2FR on the union batch."""
    import socket

    import torch.distributed as dist
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def cfg(out, b):
        return {**TINY, "data": str(tiny_h5), "out": str(out), "steps": 3, "batch_size": b,
                "seed": 5, "optimizer": "rsgd", "lr": 0.05, "train_index": "0-3",
                "val_index": "4"}

    mp.spawn(_ddp_worker, args=(2, port, cfg(tmp_path / "ddp", 2)), nprocs=2, join=True)
    torch.set_num_threads(1)
    train(TrainConfig.from_dict(cfg(tmp_path / "one", 4)), progress=False)
    a = load_file(tmp_path / "ddp" / "model.safetensors")
    b = load_file(tmp_path / "one" / "model.safetensors")
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=k)
    # the runs moved the weights (not a comparison of two untouched initialisations)
    c, _, _ = get_task("pansharpen").open_data(TrainConfig.from_dict(cfg(tmp_path / "x", 4)))
    torch.manual_seed(5)
    init = build_pansharpen_objective(c).state_dict()
    assert max(float((b[k] - init[k]).abs().max()) for k in b) > 1e-3
