"""hyperleaf train/pansharpen/evaluate --task pansharpen, end to end on a tiny HDF5 file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from hyperleaf.cli import main
from hyperleaf.train.config import flatten_config

h5py = pytest.importorskip("h5py", reason="h5py (the 'pan' extra) writes the test file")


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("ps")
    gt = rng.uniform(200, 1800, (3, 4, 32, 32))
    ms = gt[:, :, 2::4, 2::4]
    lms = np.repeat(np.repeat(ms, 4, -1), 4, -2)
    pan = gt.mean(1, keepdims=True)
    with h5py.File(d / "tiny.h5", "w") as f:
        for k, v in {"gt": gt, "lms": lms, "ms": ms, "pan": pan}.items():
            f[k] = v
    return d / "tiny.h5"


def test_train_sharpen_evaluate(tiny_h5, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "pansharpen", "--data", str(tiny_h5), "--steps", "2",
                 "--batch-size", "2", "--n-feat", "4", "--no-leaf", "--log-every", "1",
                 "--no-progress", "--out", str(run)]) == 0
    cfg = flatten_config(yaml.safe_load((run / "config.yaml").read_text()))  # sections -> flat
    assert cfg["ms_bands"] == 4 and cfg["ratio"] == 4 and cfg["task"] == "pansharpen"
    kinds = [json.loads(line)["kind"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert kinds == ["val", "train", "train", "val"]
    out = tmp_path / "fused"
    assert main(["pansharpen", "--weights", str(run), "--data", str(tiny_h5), "--out",
                 str(out)]) == 0
    imgs = sorted(out.glob("*.npy"))
    assert len(imgs) == 3 and np.load(imgs[0]).shape == (4, 32, 32)
    assert main(["pansharpen", "--method", "GSA", "--data", str(tiny_h5), "--out",
                 str(tmp_path / "gsa"), "--format", "mat", "--sensor", "QB"]) == 0
    assert len(list((tmp_path / "gsa").glob("*.mat"))) == 3
    capsys.readouterr()
    md, js, cs = tmp_path / "t.md", tmp_path / "t.json", tmp_path / "t.csv"
    assert main(["evaluate", "--task", "pansharpen", "--data", str(tiny_h5), "--methods",
                 "EXP,MTF-GLP", "--weights", str(run), "--markdown", str(md), "--json",
                 str(js), "--csv", str(cs)]) == 0
    text = capsys.readouterr().out
    assert "| MTF-GLP |" in text and "SAM ↓" in text and "HQNR ↑" in text and "SHIP (run)" in text
    assert "| MTF-GLP |" in md.read_text()
    # the same tables, machine-readable (issue 21: every task writes --csv/--json/--markdown)
    rec = json.loads(js.read_text())
    rr, fr = rec["reduced_resolution"], rec["full_resolution"]
    assert list(rr) == list(fr) == ["EXP", "MTF-GLP", "SHIP (run)"] and rec["ratio"] == 4
    rows = list(csv.DictReader(cs.open()))
    assert [(r["resolution"], r["method"]) for r in rows] == [
        (res, m) for res in ("reduced_resolution", "full_resolution") for m in rr]
    for r in rows:
        table = rec[r["resolution"]][r["method"]]
        for k, v in table.items():
            assert float(r[k]) == pytest.approx(v, rel=1e-9), (r["method"], k)
    md_line = next(ln for ln in md.read_text().splitlines() if ln.startswith("| EXP |"))
    assert f"{rr['EXP']['SAM']:.4f}" in md_line


@pytest.mark.parametrize("argv,msg", [
    (["pansharpen", "--method", "SFIM", "--data", "{h5}", "--out", "{tmp}/o"], "--method"),
    (["pansharpen", "--weights", "{tmp}/none", "--data", "{h5}", "--out", "{tmp}/o"],
     "--weights"),
    (["pansharpen", "--method", "EXP", "--data", "{tmp}/missing.h5", "--out", "{tmp}/o"],
     "does not exist"),
    (["train", "--task", "pansharpen", "--steps", "1", "--out", "{tmp}/o"], "data: the "
     "pansharpen task needs"),
    # given values are validated, never replaced by defaults
    (["train", "--task", "pansharpen", "--data", "{h5}", "--steps", "0", "--out", "{tmp}/o"],
     "--steps: must be >= 1, got 0"),
    (["train", "--task", "pansharpen", "--data", "{h5}", "--lr", "0", "--out", "{tmp}/o"],
     "--lr: must be finite and > 0"),
    (["train", "--task", "pansharpen", "--data", "{h5}", "--lr", "inf", "--out", "{tmp}/o"],
     "--lr: must be finite and > 0"),
    (["train", "--task", "pansharpen", "--data", "{h5}", "--crop", "30", "--steps", "1",
      "--out", "{tmp}/o"], "--crop: 30 must be a multiple of the data's ratio 4"),
    (["train", "--task", "pansharpen", "--data", "{h5}", "--h2fr-weight", "-1",
      "--out", "{tmp}/o"], "--h2fr-weight"),
    # settings of other tasks are refused, not ignored
    (["train", "--task", "pansharpen", "--data", "{h5}", "--recipe", "ship-authors",
      "--out", "{tmp}/o"], "--recipe: does not apply to the pansharpen task"),
    # --out under a file: refused before training
    (["train", "--task", "pansharpen", "--data", "{h5}", "--steps", "1", "--out",
      "{h5}/o"], "--out: "),
    (["evaluate"], "--fused"),
])
def test_errors_are_one_line_exit_2(argv, msg, tiny_h5, tmp_path, capsys):
    argv = [a.format(h5=tiny_h5, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and msg in err[0]
    assert not (tmp_path / "o").exists()
