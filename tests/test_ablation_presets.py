"""The named ablation presets (``hyperleaf ablate --preset``): every one is a valid experiment
for its task, and, on the real data (marked ``shared``), the pansharpen and segment presets run
end to end at a tiny scale; the segment task's named held-out items (``heldout_items``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperleaf.cli import main as cli_main
from hyperleaf.experiments import ARMS, PRESETS, AblationError, AblationSpec, run_ablation
from hyperleaf.experiments.design import make_item_view, split_items
from hyperleaf.tasks import get_task
from hyperleaf.train.build import load_run
from hyperleaf.train.config import TrainConfig


def _preset_spec(name: str, data: str, out: str, **over) -> AblationSpec:
    p = PRESETS[name]
    kw = {"data": data, "out": out, "seeds": tuple(range(p.seeds)), "arms": p.arms,
          "config": dict(p.config), "task": p.task, "heldout": p.heldout,
          "heldout_items": p.heldout_items or None}
    kw.update(over)
    return AblationSpec(**kw)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid_for_its_task(name, tmp_path):
    p = PRESETS[name]
    assert p.seeds >= 8, "a preset gives verdicts: K >= 8 seeds"
    assert len(p.arms) >= 2 and all(a in ARMS for a in p.arms)
    assert p.arms[0] == "ship"  # the reference of the paired differences
    _preset_spec(name, "x", "y").validate()
    # every arm's configuration validates for the task (its own section's checks included);
    # the data need not exist for that
    for arm in p.arms:
        cfg = TrainConfig.from_dict({**p.config, **ARMS[arm], "task": p.task,
                                     "shared_init": True, "seed": 0, "data": str(tmp_path)},
                                    source=f"preset {name}").validate()
        assert cfg.task == p.task
        for key, value in p.config.items():
            if key != "recipe":
                assert getattr(cfg, key) == value, (name, arm, key)
    if p.task == "segment":
        assert "euclidean" not in p.arms
    if p.task == "pansharpen" and "euclidean" in p.arms:
        assert p.config.get("hdgfb_mode") == "geodesic"  # the c -> 0 limit of geodesic LEAF


def test_presets_are_listed_by_the_command_line(capsys):
    with pytest.raises(SystemExit):
        cli_main(["ablate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in PRESETS:
        assert name in text


def test_cli_heldout_items_errors(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    assert cli_main(["ablate", "--data", str(d), "--out", str(tmp_path / "o"),
                     "--heldout-items", "a"]) == 2
    err = capsys.readouterr().err
    assert "--heldout-items: only the segment task holds out named items" in err
    assert not (tmp_path / "o").exists()


def test_split_items_and_errors():
    assert split_items(["a", "b", "c"], ["c", "a"]) == (["b"], ["a", "c"])
    with pytest.raises(AblationError, match="heldout_items: 'z' is not an item") as e:
        split_items(["a", "b"], ["z"])
    assert e.value.key == "heldout_items"
    with pytest.raises(AblationError, match="expected 1 to 1 of the 2 items"):
        split_items(["a", "b"], ["a", "b"])
    with pytest.raises(AblationError, match="heldout_items: only the segment task"):
        AblationSpec(data="x", out="y", task="fuse", heldout_items=("a",)).validate()


def test_item_view_holds_out_the_named_item(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = {}
    for case in ("p07", "p19"):
        files[case] = {}
        for key in ("A", "B", "GT"):
            f = src / f"{case}_{key}.nii.gz"
            f.write_bytes(case.encode())
            files[case][key] = f
    view = make_item_view([(c, files[c]) for c in ("p07", "p19")], ["p07"], tmp_path / "v")
    names = sorted(p.name for p in view.iterdir())
    assert names == ["fit-p19_A.nii.gz", "fit-p19_B.nii.gz", "fit-p19_GT.nii.gz",
                     "held-p07_A.nii.gz", "held-p07_B.nii.gz", "held-p07_GT.nii.gz"]
    assert (view / "held-p07_GT.nii.gz").read_bytes() == b"p07"
    # written again (same targets): unchanged, no error
    make_item_view([(c, files[c]) for c in ("p07", "p19")], ["p07"], tmp_path / "v")
    assert sorted(p.name for p in view.iterdir()) == names


def _nifti(path, arr):
    nib = pytest.importorskip("nibabel", reason="NIfTI folders need nibabel")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4)), str(path))


def test_segment_ablation_holds_out_named_items(tmp_path):
    """``heldout_items`` on a flat NIfTI folder: the first item in name order is held out (the
    task's own split would hold out the last), the runs validate on it, and its score is the
    task's evaluation of the saved run on it."""
    r = np.random.default_rng(3)
    data = tmp_path / "vols"
    for case in ("a1", "b2", "c3"):
        for m in ("T1", "T2"):
            _nifti(data / f"{case}_{m}.nii.gz", r.random((16, 16, 16)).astype(np.float32))
        _nifti(data / f"{case}_GT.nii.gz", (r.random((16, 16, 16)) > 0.8).astype(np.uint8))
    cfg = {"steps": 2, "batch_size": 1, "crop": 16, "val_crop": 16, "num_classes": 2,
           "model": "leaf-unet3d", "widths3d": [8, 16], "feature_dim": 16, "hdgfb_hidden": 16,
           "mlp_dim": 32, "lesion_fraction": 0.5}
    spec = AblationSpec(data=str(data), out=str(tmp_path / "abl"), seeds=(0, 1),
                        arms=("ship", "leaf"), config=cfg, task="segment", n_boot=200,
                        heldout_items=("a1",))
    rec = run_ablation(spec, report=lambda m: None)
    assert rec["split"]["heldout"] == ["a1"] and rec["split"]["train"] == ["b2", "c3"]
    assert "heldout_items" in rec["split"]["rule"]
    for run in rec["runs"]:
        objective, saved = load_run(run["out"])
        task = get_task("segment")
        train_set, val = task.datasets(saved)
        assert [str(p) for p in val.pairs] == ["held-a1"]
        assert sorted(str(p) for p in train_set.pairs) == ["fit-b2", "fit-c3"]
        assert [im["image"] for im in run["images"]] == ["held-a1"]
        scores = task.evaluate(saved, objective, val, torch.device("cpu"))
        for m in rec["metrics"]:
            assert run["images"][0][m] == pytest.approx(scores[m], rel=1e-12, nan_ok=True)
    with pytest.raises(AblationError, match="heldout_items: 'zz' is not an item"):
        run_ablation(AblationSpec(data=str(data), out=str(tmp_path / "abl2"), seeds=(0, 1),
                                  arms=("ship", "leaf"), config=cfg, task="segment",
                                  heldout_items=("zz",)), report=lambda m: None)
    assert not (tmp_path / "abl2").exists()


# --------------------------------------------------------------------------- real data


@pytest.mark.shared
def test_pansharpen_preset_on_landsat_tiny(shared_dir, tmp_path):
    """``pansharpen-hour`` on the ten Landsat 7 scenes, 2 steps, 2 seeds, two of its arms:
    scenes 9 and 10 are the held-out items, scored whole, with the preset's geodesic HDGFB."""
    pytest.importorskip("scipy", reason="the .mat readers need scipy (the 'pan' extra)")
    data = shared_dir / "data" / "pansharpening" / "landsat7"
    if not data.is_dir():
        pytest.skip(f"{data} is missing from the shared folder")
    spec = _preset_spec("pansharpen-hour", str(data), str(tmp_path / "abl"), seeds=(0, 1),
                        arms=("ship", "euclidean"), n_boot=200,
                        config={**PRESETS["pansharpen-hour"].config, "steps": 2})
    rec = run_ablation(spec, report=lambda m: None)
    assert rec["task"] == "pansharpen" and len(rec["runs"]) == 4
    assert rec["config"]["val_index"] == "8-9" and rec["config"]["hdgfb_mode"] == "geodesic"
    assert len(rec["split"]["heldout"]) == 2  # two whole scenes (val_crop 400 >= 400x400)
    for run in rec["runs"]:
        assert len(run["images"]) == 2
        assert all(np.isfinite(im["SAM"]) and im["SAM"] > 0 for im in run["images"])
    assert rec["parameters"]["euclidean"] > rec["parameters"]["ship"]


@pytest.mark.shared
def test_segment3d_preset_on_open_ms_tiny(shared_dir, tmp_path):
    """``segment3d-hour``'s configuration and held-out item on open_ms, 2 steps, 2 seeds, on a
    64-voxel cube of each real volume (written to tmp_path: a whole volume takes a minute per
    evaluation on a CPU): p19 trains, p07 is held out."""
    nib = pytest.importorskip("nibabel", reason="NIfTI volumes need nibabel")
    src = shared_dir / "data" / "open_ms" / "volumes"
    if not src.is_dir():
        pytest.skip(f"{src} is missing from the shared folder")
    data = tmp_path / "vols"
    data.mkdir()
    for f in sorted(src.glob("*.nii.gz")):
        img = nib.load(str(f))
        cube = np.asarray(img.dataobj)[59:123, 77:141, 59:123]
        nib.save(nib.Nifti1Image(cube, img.affine), str(data / f.name))
    p = PRESETS["segment3d-hour"]
    spec = _preset_spec("segment3d-hour", str(data), str(tmp_path / "abl"), seeds=(0, 1),
                        arms=("ship", "leaf"), n_boot=200, config={**p.config, "steps": 2})
    rec = run_ablation(spec, report=lambda m: None)
    assert rec["split"]["heldout"] == ["p07"] and rec["split"]["train"] == ["p19"]
    assert rec["config"]["model"] == "leaf-unet3d" and rec["config"]["lesion_fraction"] == 0.5
    for run in rec["runs"]:
        assert [im["image"] for im in run["images"]] == ["held-p07"]
        assert 0.0 <= run["metrics"]["pixel_acc"] <= 1.0
    assert rec["parameters"]["leaf"] > rec["parameters"]["ship"]
