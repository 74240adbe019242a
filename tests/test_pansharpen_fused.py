"""External results scored (``hyperleaf evaluate --task pansharpen --fused PATH``) and the
readers of the community's layouts (PanCollection ``lrms``, toolbox ``I_*``, Z-PNN
``I_MS_LR``, the ``ms/``, ``pan/``, ``gt/`` folder of TIFFs, bit depth ``L``, data in [0, 1])."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hyperleaf.cli import main
from hyperleaf.data import PanCollection
from hyperleaf.pansharpen import interp23
from hyperleaf.pansharpen import metrics as pm
from hyperleaf.pansharpen.data import match_files, read_image

h5py = pytest.importorskip("h5py", reason="h5py (the 'pan' extra) writes the test files")
sio = pytest.importorskip("scipy.io", reason="scipy writes the .mat files")
tifffile = pytest.importorskip("tifffile", reason="tifffile (the 'pan' extra) writes TIFFs")

SCALE = 2047.0


def _scenes(n=3, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(200, 1800, (n, 4, 64, 64))
    ms = np.stack([interp23(torch.from_numpy(g), 1).numpy() for g in gt])[:, :, 2::4, 2::4]
    lms = np.stack([interp23(torch.from_numpy(m), 4).numpy() for m in ms])
    pan = gt.mean(1, keepdims=True) + rng.normal(0, 20, (n, 1, 64, 64))
    return {"gt": gt, "ms": ms, "lms": lms, "pan": pan}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("fused")
    s = _scenes()
    with h5py.File(d / "rr.h5", "w") as f:
        for k, v in s.items():
            f[k] = v
        f.attrs["scale"] = SCALE
    # another method's outputs in digital numbers, three formats, three naming schemes
    rng = np.random.default_rng(1)
    fused = s["lms"] + 0.3 * (s["pan"] - s["pan"].mean()) + rng.normal(0, 5, s["lms"].shape)
    out = d / "method"
    out.mkdir()
    np.save(out / "0000.npy", fused[0])                                        # (C, H, W)
    sio.savemat(out / "fused_1.mat", {"I_F": np.moveaxis(fused[1], 0, -1)})   # (H, W, C)
    tifffile.imwrite(out / "2_out.tif", fused[2].astype(np.float32), planarconfig="separate",
                     photometric="minisblack")
    (out / "notes.txt").write_text("ignored: not an image type")
    return d, s, fused


def test_fused_folder_scores_each_scene_as_the_library(data, tmp_path, capsys):
    d, s, fused = data
    js = tmp_path / "scores.json"
    assert main(["evaluate", "--task", "pansharpen", "--data", str(d / "rr.h5"), "--fused",
                 str(d / "method"), "--json", str(js), "--markdown", str(tmp_path / "t.md")]) == 0
    rec = json.loads(js.read_text())
    assert rec["convention"] == "toolbox" and rec["dn_scale"] == SCALE
    rr, fr = rec["reduced_resolution"], rec["full_resolution"]
    assert [r["scene"] for r in rr["scenes"]] == ["0", "1", "2"]
    assert [r["file"].split("/")[-1] for r in rr["scenes"]] == ["0000.npy", "fused_1.mat",
                                                                 "2_out.tif"]
    for i in range(3):
        f = fused[i] / SCALE
        if i == 2:
            f = fused[i].astype(np.float32).astype(np.float64) / SCALE
        want = pm.reduced_resolution(s["gt"][i] / SCALE, f, 4, 32, scale=SCALE)
        for k, v in want.items():
            assert rr["scenes"][i][k] == pytest.approx(v, abs=1e-12), (i, k)
        want = pm.full_resolution(f, s["ms"][i] / SCALE, s["pan"][i] / SCALE, 4, block=32,
                                  scale=SCALE, lms=s["lms"][i] / SCALE)
        for k, v in want.items():
            assert fr["scenes"][i][k] == pytest.approx(v, abs=1e-12), (i, k)
    for k in pm.REDUCED_RESOLUTION:
        assert rr["mean"][k] == pytest.approx(np.mean([r[k] for r in rr["scenes"]]), rel=1e-12)
    text = capsys.readouterr().out
    assert "| 2 |" in text and "Full resolution" in text
    assert (tmp_path / "t.md").read_text().startswith("Convention: toolbox")


def test_exp_given_as_a_file_scores_d_lambda_zero(tmp_path):
    s = _scenes(1, seed=3)
    mat = tmp_path / "scene.mat"
    # the PanCollection / CDIF .mat layout (bands last), in [0, 1], with its bit depth L
    sio.savemat(mat, {"gt": np.moveaxis(s["gt"][0], 0, -1) / 2047,
                      "lrms": np.moveaxis(s["ms"][0], 0, -1) / 2047,
                      "pan": s["pan"][0, 0] / 2047, "L": 11.0, "sensor": "WV2"})
    ds = PanCollection(mat)
    assert ds.scale == 1.0 and ds.dn_scale == 2047.0 and ds.sensor == "WV2"
    assert ds.scale_source == "data already in [0, 1]"
    np.save(tmp_path / "exp.npy", np.moveaxis(s["lms"][0], 0, -1) / 2047)  # [0, 1], (H, W, C)
    js = tmp_path / "o.json"
    assert main(["evaluate", "--task", "pansharpen", "--data", str(mat), "--fused",
                 str(tmp_path / "exp.npy"), "--json", str(js)]) == 0
    rec = json.loads(js.read_text())
    # the file's lms is the 23-tap interpolation of the DN image, divided: equal to rounding
    assert rec["full_resolution"]["scenes"][0]["D_lambda"] <= 1e-12
    assert rec["reduced_resolution"]["scenes"][0]["ERGAS"] > 0


@pytest.mark.parametrize("argv,message", [
    (["--fused", "{d}/method", "--json", "{d}"], "--json: .* is a folder"),
    (["--fused", "{d}/missing"], "--fused: .*missing does not exist"),
    (["--fused", "{d}/method/0000.npy"], "--fused: a single file, but --data holds 3 scenes"),
    (["--fused", "{d}/empty"], "--fused: .*no file for scene '0'"),
    (["--fused", "{d}/method", "--methods", "EXP"], "--fused: scores external results alone"),
])
def test_fused_errors_name_the_flag(data, argv, message, capsys):
    d, _, _ = data
    (d / "empty").mkdir(exist_ok=True)
    args = [a.format(d=d) for a in argv]
    assert main(["evaluate", "--task", "pansharpen", "--data", str(d / "rr.h5"), *args]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_unit_data_without_bit_depth_needs_scale(tmp_path, capsys):
    s = _scenes(1, seed=4)
    mat = tmp_path / "scene.mat"
    sio.savemat(mat, {"gt": np.moveaxis(s["gt"][0], 0, -1) / 2047,
                      "lrms": np.moveaxis(s["ms"][0], 0, -1) / 2047, "pan": s["pan"][0, 0] / 2047})
    np.save(tmp_path / "f.npy", s["lms"][0])
    argv = ["evaluate", "--task", "pansharpen", "--data", str(mat), "--fused",
            str(tmp_path / "f.npy")]
    assert main(argv) == 2
    assert "--scale:" in capsys.readouterr().err
    assert main([*argv, "--scale", "2047", "--json", str(tmp_path / "o.json")]) == 0
    rec = json.loads((tmp_path / "o.json").read_text())
    assert rec["dn_scale"] == 2047 and rec["full_resolution"]["scenes"][0]["D_lambda"] <= 1e-12


# ----------------------------------------------------------------------------- readers


def test_read_image_layouts_and_errors(tmp_path):
    a = np.random.default_rng(0).uniform(size=(4, 8, 6))
    np.save(tmp_path / "chw.npy", a)
    np.save(tmp_path / "hwc.npy", np.moveaxis(a, 0, -1))
    np.save(tmp_path / "batch.npy", a[None])
    for name in ("chw", "hwc", "batch"):
        np.testing.assert_array_equal(read_image(tmp_path / f"{name}.npy", (4, 8, 6)), a)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["sr"] = a[None]
    np.testing.assert_array_equal(read_image(tmp_path / "x.h5", (4, 8, 6)), a)
    sio.savemat(tmp_path / "two.mat", {"a": a, "b": a})
    with pytest.raises(ValueError, match=r"got keys \['a', 'b'\]"):
        read_image(tmp_path / "two.mat", (4, 8, 6))
    with pytest.raises(ValueError, match=r"neither \(4, 8, 8\)"):
        read_image(tmp_path / "chw.npy", (4, 8, 8))
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported file type '.png'"):
        read_image(tmp_path / "x.png")


def test_match_files_by_name_token_and_index(tmp_path):
    for n in ("scene_a.npy", "b_fused.mat", "output_mulExm_3.mat", "x.txt"):
        (tmp_path / n).write_bytes(b"")
    got = match_files(["scene_a", "b", "3"], tmp_path)
    assert [p.name for p in got] == ["scene_a.npy", "b_fused.mat", "output_mulExm_3.mat"]
    (tmp_path / "b_other.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="2 files .* for scene 'b'"):
        match_files(["b"], tmp_path)


def test_toolbox_and_zpnn_mat_layouts(tmp_path):
    s = _scenes(1, seed=5)
    hwc = {k: np.moveaxis(v[0], 0, -1) for k, v in s.items()}
    sio.savemat(tmp_path / "tb.mat", {"I_GT": hwc["gt"], "I_MS": hwc["lms"],
                                       "I_MS_LR": hwc["ms"], "I_PAN": hwc["pan"][..., 0],
                                       "L": 11})
    ds = PanCollection(tmp_path / "tb.mat", dtype=torch.float64)
    assert ds.scale == 2047 and ds.scale_source == "file attribute" and ds.reduced
    np.testing.assert_allclose(ds[0]["gt"].numpy(), s["gt"][0] / 2047, rtol=1e-15)
    sio.savemat(tmp_path / "zpnn.mat", {"I_MS_LR": hwc["ms"], "I_PAN": hwc["pan"][..., 0]})
    z = PanCollection(tmp_path / "zpnn.mat", dtype=torch.float64)
    assert not z.reduced and z.ratio == 4 and z.names == ["zpnn"]
    sio.savemat(tmp_path / "bad.mat", {"foo": hwc["ms"], "bar": hwc["pan"]})
    with pytest.raises(ValueError, match=r"got \['bar', 'foo'\]"):
        PanCollection(tmp_path / "bad.mat")


def test_folder_of_tiffs_layout(tmp_path):
    s = _scenes(2, seed=6)
    for k in ("ms", "pan", "gt"):
        (tmp_path / k).mkdir()
        for i in range(2):
            arr = s[k][i].astype(np.uint16)
            kw = {"planarconfig": "separate"} if k != "pan" else {}
            tifffile.imwrite(tmp_path / k / f"{i + 1}.tif", arr[0] if k == "pan" else arr,
                             photometric="minisblack", **kw)
    ds = PanCollection(tmp_path, dtype=torch.float64)
    assert ds.names == ["1", "2"] and ds.reduced and ds.ratio == 4 and ds.scale == 2047
    np.testing.assert_allclose(ds[1]["gt"].numpy(), s["gt"][1].astype(np.uint16) / 2047)
    (tmp_path / "gt" / "2.tif").unlink()
    with pytest.raises(ValueError, match="no file for scene '2'"):
        PanCollection(tmp_path)


@pytest.mark.shared
def test_pleiades_file_reads_and_exp_scores(shared_dir, tmp_path):
    path = shared_dir / "data" / "pansharpening" / "pleiades" / "Pleiades_test.mat"
    ds = PanCollection(path, scale=1023, dtype=torch.float64)
    assert ds.scale == 1.0 and ds.dn_scale == 1023 and ds.reduced and ds.ratio == 4
    np.save(tmp_path / "exp.npy", ds[0]["lms"].numpy())
    js = tmp_path / "o.json"
    assert main(["evaluate", "--task", "pansharpen", "--data", str(path), "--scale", "1023",
                 "--fused", str(tmp_path / "exp.npy"), "--json", str(js)]) == 0
    assert json.loads(js.read_text())["full_resolution"]["scenes"][0]["D_lambda"] == 0.0


def test_h5_with_lrms_and_bit_depth(tmp_path):
    s = _scenes(2, seed=7)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["gt"], f["lrms"], f["pan"] = s["gt"], s["ms"], s["pan"]
        f.attrs["L"] = 11
    ds = PanCollection(tmp_path / "x.h5", dtype=torch.float64)
    assert ds.scale == 2047 and ds.names == ["0", "1"]
    np.testing.assert_allclose(ds[1]["ms"].numpy(), s["ms"][1] / 2047, rtol=1e-15)
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["gt"], f["pan"] = s["gt"], s["pan"]
    with pytest.raises(ValueError, match=r"missing datasets \['ms'\]; has \['gt', 'pan'\]"):
        PanCollection(tmp_path / "y.h5")


def test_sharpened_folder_scores_back_by_scene_name(tmp_path, capsys):
    """hyperleaf pansharpen names its outputs after the scenes, so evaluate --fused matches
    them back (a folder of K_pan.mat + K_ms.mat pairs, scenes "1", "2", "10")."""
    rng = np.random.default_rng(9)
    d = tmp_path / "pairs"
    d.mkdir()
    for k in (1, 2, 10):
        sio.savemat(d / f"{k}_ms.mat", {"m": rng.integers(10, 250, (32, 32, 3)).astype(np.uint8)})
        sio.savemat(d / f"{k}_pan.mat", {"p": rng.integers(10, 250, (64, 64)).astype(np.uint8)})
    assert main(["pansharpen", "--method", "EXP", "--data", str(d), "--out",
                 str(tmp_path / "exp")]) == 0
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["1.npy", "10.npy", "2.npy"]
    js = tmp_path / "o.json"
    assert main(["evaluate", "--task", "pansharpen", "--data", str(d), "--fused",
                 str(tmp_path / "exp"), "--json", str(js)]) == 0
    rec = json.loads(js.read_text())
    assert rec["reduced_resolution"] is None
    rows = rec["full_resolution"]["scenes"]
    assert [r["scene"] for r in rows] == ["1", "2", "10"]
    assert all(r["file"].endswith(f"/{r['scene']}.npy") for r in rows)
    # EXP, written as float32 digital numbers: D_lambda = 0 up to float32 rounding
    assert all(r["D_lambda"] <= 1e-5 for r in rows), [r["D_lambda"] for r in rows]
