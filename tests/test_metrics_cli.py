"""``hyperleaf evaluate``: exact 8-bit reading, conventions in every output, case-insensitive
names, worker processes, progress bar, and no third-party warnings."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperleaf import metrics as M
from hyperleaf.cli import main
from hyperleaf.io import read_gray_levels

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(20)
    arrays = {}
    for sub in ("ir", "vi", "fused"):
        (tmp_path / sub).mkdir()
    for name in ("p1", "p2", "p3"):
        ir, vis = (rng.integers(0, 256, (48, 50)).astype(np.uint8) for _ in range(2))
        fused = ((ir.astype(np.uint16) + vis) // 2).astype(np.uint8)
        for sub, arr in (("ir", ir), ("vi", vis), ("fused", fused)):
            Image.fromarray(arr).save(tmp_path / sub / f"{name}.png")
        arrays[name] = (fused, ir, vis)
    return tmp_path, arrays


def _args(tmp, *extra):
    return ["evaluate", "--fused", str(tmp / "fused"), "--ir", str(tmp / "ir"), "--vis",
            str(tmp / "vi"), "--no-progress", *extra]


def test_read_gray_levels_is_exact(tmp_path):
    a = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(a).save(tmp_path / "g.png")
    got = read_gray_levels(tmp_path / "g.png")
    assert got.dtype == np.uint8 and np.array_equal(got, a)
    rgb = np.stack([a, a[::-1], a.T], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    y = read_gray_levels(tmp_path / "c.png")
    expected = (0.299 * a.astype(float) + 0.587 * a[::-1] + 0.114 * a.T) / 255
    assert y.dtype == np.float64 and np.allclose(y, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("convention", ["standard", "mmif"])
def test_cli_equals_metrics_on_the_uint8_arrays(folders, convention, capsys):
    tmp, arrays = folders
    assert main(_args(tmp, "--metrics", "all", "--convention", convention)) == 0
    data = json.loads((tmp / "fused" / "metrics.json").read_text())
    assert data["convention"] == convention
    assert data["higher_is_better"]["Nabf"] is False and data["higher_is_better"]["EN"] is True
    for row in data["images"]:
        f, ir, vis = arrays[row["image"]]
        expected = M.evaluate(f, ir=ir, vis=vis, metrics="all", convention=convention)
        assert {k: v for k, v in row.items() if k != "image"} == expected  # bit for bit
    with open(tmp / "fused" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["convention"] for r in rows} == {convention}
    assert [r["image"] for r in rows] == ["p1", "p2", "p3", "mean"]
    out = capsys.readouterr().out
    assert f"{convention} convention" in out and "Nabf ↓" in out and "Qabf ↑" in out


def test_metric_names_case_insensitive_and_unknown(folders, capsys):
    tmp, _ = folders
    assert main(_args(tmp, "--metrics", "en, QABF,psnr", "--markdown", str(tmp / "t.md"))) == 0
    data = json.loads((tmp / "fused" / "metrics.json").read_text())
    assert data["metrics"] == ["EN", "Qabf", "PSNR"]
    md = (tmp / "t.md").read_text()
    assert "Convention: standard" in md and "| image | EN ↑ | Qabf ↑ | PSNR ↑ |" in md
    capsys.readouterr()
    assert main(_args(tmp, "--metrics", "EN,nope", "--json", str(tmp / "x.json"))) == 2
    err = capsys.readouterr().err
    assert "--metrics" in err and "'nope'" in err and "Qabf" in err and "Traceback" not in err
    assert not (tmp / "x.json").exists()


def test_workers_give_the_same_rows(folders):
    tmp, _ = folders
    assert main(_args(tmp, "--json", str(tmp / "one.json"))) == 0
    assert main(_args(tmp, "--json", str(tmp / "two.json"), "--workers", "2")) == 0
    one = json.loads((tmp / "one.json").read_text())
    two = json.loads((tmp / "two.json").read_text())
    assert one == two


def test_bad_workers_and_convention(folders, capsys):
    tmp, _ = folders
    assert main(_args(tmp, "--workers", "0", "--json", str(tmp / "x.json"))) == 2
    assert "--workers" in capsys.readouterr().err and not (tmp / "x.json").exists()
    with pytest.raises(SystemExit) as exc:
        main(_args(tmp, "--convention", "matlab"))
    assert exc.value.code == 2


def test_progress_bar_and_no_third_party_warnings(folders):
    tmp, _ = folders
    args = [a for a in _args(tmp, "--metrics", "all") if a != "--no-progress"]
    proc = subprocess.run([sys.executable, "-m", "hyperleaf", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "PYTHONWARNINGS": "default"})
    assert proc.returncode == 0, proc.stderr
    assert "evaluating" in proc.stderr and "3/3" in proc.stderr
    assert "Warning" not in proc.stderr and "warn" not in proc.stderr.lower()
