"""`hyperleaf check`: the grid passes, its outputs are written, failures set the exit status."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from hyperleaf.cli import main
from hyperleaf.verify import check


def test_full_grid_has_no_unexpected_failure():
    report = check.run_checks()
    assert report.rows
    assert not report.failures, check.format_table(report.failures)
    kinds = {r.comparison for r in report.rows}
    assert kinds == {"geometry vs closed form", "geometry vs geoopt", "paper vs NumPy",
                     "paper vs geometry"}
    assert {r.dtype for r in report.rows} == set(check.DTYPES)
    # every expected divergence of the doc is present and measured
    expected = {r.op for r in report.rows if r.verdict == "expected"}
    assert {"euclid_to_hyper", "hyper_distance", "hyper_to_euclid", "mobius_add"} <= expected


def test_errors_measure():
    a, r, ok = check.errors(np.array([1.0, 2.0]), np.array([1.0, 2.5]), rtol=0.1)
    assert a == 0.5 and math.isclose(r, 0.2) and not ok
    _, _, ok = check.errors(np.array([np.nan]), np.array([np.nan]))
    assert ok
    a, r, ok = check.errors(np.array([np.nan]), np.array([1.0]), rtol=1.0)
    assert math.isinf(r) and not ok


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text(f"# title\n\nhand-written\n\n{check.BEGIN}\nold\n{check.END}\n\ntail\n")
    out_json = tmp_path / "rows.json"
    rc = main(["check", "--dtype", "float64", "--c", "0.5", "--json", str(out_json),
               "--markdown", str(doc)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "verdict" in printed and "0 unexpected failures" in printed
    rows = json.loads(out_json.read_text())
    assert rows and {"op", "comparison", "dtype", "c", "regime", "max_abs", "max_rel", "tol",
                     "verdict"} <= set(rows[0])
    text = doc.read_text()
    assert text.startswith("# title\n\nhand-written") and text.rstrip().endswith("tail")
    assert "old" not in text and "| op | comparison |" in text


def test_cli_exit_status_on_failure(monkeypatch, capsys):
    monkeypatch.setattr(check, "tolerance", lambda *a: (0.0, 0.0))
    rc = main(["check", "--dtype", "float32", "--c", "1", "--regime", "interior"])
    assert rc == 1
    assert "FAIL" in capsys.readouterr().err


def test_cli_rejects_bad_curvature(capsys):
    assert main(["check", "--c", "-1"]) == 2
    assert "--c must be finite and > 0" in capsys.readouterr().err


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "hyperleaf", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "check" in out


def test_bad_grid_arguments():
    with pytest.raises(ValueError, match="dtype must be one of"):
        check.run_checks(dtypes=["float16"])
