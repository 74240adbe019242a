"""Every mistake a user can make on the command line ends in one ``error:`` line, exit status 2,
no traceback, and nothing written.

Each row of :data:`TABLE` is run as its own process (``python -m hyperleaf ...``, as a user
would) in a small workspace of synthetic files (:func:`workspace`), so the table runs without
``../shared``. A row asserts:

* exit status 2;
* its ``expect`` text (the flag or file the message must name) on stderr, on a line holding
  ``error:``;
* no ``Traceback`` anywhere in the output;
* the paths in ``absent`` do not exist afterwards, and the workspace holds exactly the files it
  held before (nothing created, nothing half-written, no empty output folder).

Placeholders in ``argv``: ``{W}`` a SHIP checkpoint in the authors' format (random weights),
``{IR}``/``{VIS}`` one infrared/visible pair (``IR8.png``/``VIS8.png``), ``{T}`` a folder of
two flat IRk/VISk pairs, ``{FILE}`` an existing regular file, ``{BAD}`` a file that is no
checkpoint, ``{NOCFG}`` a folder without ``config.yaml``, ``{UNFINISHED}`` a run folder with
``config.yaml`` but no ``model.safetensors``, ``{BADST}`` a corrupt ``model.safetensors`` with a
valid ``config.yaml`` beside it, ``{ws}`` the workspace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One invocation: ``argv`` after ``hyperleaf`` (placeholders filled from the workspace),
    the text stderr must contain, and paths (relative to the workspace) that must not exist."""

    id: str
    argv: str
    expect: str
    absent: tuple[str, ...] = ()
    needs_no_cuda: bool = False


_FUSE = "fuse --weights {W} --ir {IR} --vis {VIS}"

TABLE: list[Case] = [
    # ---- fuse: options
    Case("fuse-overlap-too-big", _FUSE + " --out {ws}/o --tile 64 --overlap 32", "--overlap",
         ("o",)),
    Case("fuse-tile-too-small", _FUSE + " --out {ws}/o --tile 4", "--tile", ("o",)),
    Case("fuse-overlap-without-tile", _FUSE + " --out {ws}/o --overlap 4", "--overlap", ("o",)),
    Case("fuse-negative-overlap", _FUSE + " --out {ws}/o --tile 16 --overlap -1", "--overlap",
         ("o",)),
    Case("fuse-threads", _FUSE + " --out {ws}/o --threads -1", "--threads", ("o",)),
    Case("fuse-device-unknown", _FUSE + " --out {ws}/o --device foo", "--device", ("o",)),
    Case("fuse-device-cuda-unavailable", _FUSE + " --out {ws}/o --device cuda",
         "--device cuda", ("o",), needs_no_cuda=True),
    Case("fuse-tile-not-int", _FUSE + " --out {ws}/o --tile big", "--tile", ("o",)),
    Case("fuse-no-weights", "fuse --ir {IR} --vis {VIS} --out {ws}/o", "--weights", ("o",)),
    Case("fuse-no-vis", "fuse --weights {W} --ir {IR} --out {ws}/o", "--vis", ("o",)),
    Case("fuse-data-and-ir", "fuse --weights {W} --data {T} --ir {IR} --vis {VIS} --out {ws}/o",
         "--data", ("o",)),
    # ---- fuse: inputs
    Case("fuse-missing-ir", "fuse --weights {W} --ir {ws}/nope.png --vis {VIS} --out {ws}/o",
         "nope.png", ("o",)),
    # ---- fuse: weights
    Case("fuse-weights-missing", "fuse --weights {ws}/missing.pth --ir {IR} --vis {VIS} "
         "--out {ws}/o", "missing.pth", ("o",)),
    Case("fuse-weights-garbage", "fuse --weights {BAD} --ir {IR} --vis {VIS} --out {ws}/o",
         "bad.pth", ("o",)),
    Case("fuse-weights-folder-not-a-run", "fuse --weights {NOCFG} --ir {IR} --vis {VIS} "
         "--out {ws}/o", "config.yaml", ("o",)),
    Case("fuse-weights-unfinished-run", "fuse --weights {UNFINISHED} --ir {IR} --vis {VIS} "
         "--out {ws}/o", "model.safetensors", ("o",)),
    Case("fuse-weights-corrupt-safetensors", "fuse --weights {BADST} --ir {IR} --vis {VIS} "
         "--out {ws}/o", "model.safetensors", ("o",)),
    # ---- fuse: outputs
    Case("fuse-out-is-a-file", _FUSE + " --out {FILE}", "--out"),
    Case("fuse-out-under-a-file", _FUSE + " --out {FILE}/sub", "--out"),
    Case("fuse-out-png-under-a-file", _FUSE + " --out {FILE}/x.png", "--out"),
    Case("fuse-out-jpg", _FUSE + " --out {ws}/fused.jpg", "--out", ("fused.jpg",)),
    Case("fuse-out-png-for-two-pairs", "fuse --weights {W} --data {T} --out {ws}/x.png",
         "exactly one pair", ("x.png",)),
    # ---- train and plot
    Case("train-lr-inf", "train --lr inf --steps 2 --no-progress --out {ws}/o", "--lr: must be finite and > 0", ("o",)),
    Case("train-lr-nan", "train --lr nan --steps 2 --no-progress --out {ws}/o", "--lr: must be finite and > 0", ("o",)),
    Case("train-lr-zero", "train --lr 0 --steps 2 --no-progress --out {ws}/o", "--lr", ("o",)),
    Case("train-out-is-a-file", "train --steps 2 --no-progress --out {FILE}", "--out"),
    Case("train-out-under-a-file", "train --steps 2 --no-progress --out {FILE}/run", "--out"),
    Case("train-resume-without-out", "train --resume --no-progress", "--resume", ("runs",)),
    # keys only the pansharpen task reads are refused, not silently ignored, by the others
    Case("train-fuse-sensor", "train --sensor WV3 --steps 2 --no-progress --out {ws}/o",
         "--sensor: does not apply to the fuse task", ("o",)),
    Case("train-fuse-no-normalise", "train --no-normalise --steps 2 --no-progress --out {ws}/o",
         "--no-normalise: does not apply to the fuse task", ("o",)),
    Case("train-segment-train-index", "train --task segment --train-index 0-3 --steps 2 "
         "--no-progress --out {ws}/o", "--train-index: does not apply to the segment task",
         ("o",)),
    Case("plot-out-under-a-file", "plot {NOCFG} --out {FILE}/leaf.png", "--out"),
    # ---- check: output paths refused before the suite runs
    Case("check-json-is-a-folder", "check --dtype float64 --c 1 --regime tiny --json {ws}",
         "--json"),
    Case("check-json-under-a-file", "check --dtype float64 --c 1 --regime tiny "
         "--json {FILE}/rows.json", "--json"),
    Case("check-markdown-is-a-folder", "check --dtype float64 --c 1 --regime tiny "
         "--markdown {ws}", "--markdown"),
    # ---- evaluate: every task dispatched the same way (issue 21): a flag the task's evaluation
    # does not read is refused by name, a missing one named, every output path and the run
    # --weights checked before any work
    Case("evaluate-unknown-task", "evaluate --task nosuch --weights {W} --data {T}",
         "--task: unknown task 'nosuch'"),
    Case("evaluate-fuse-weights", "evaluate --fused {T} --data {T} --weights {W}",
         "--weights: does not apply to --task fuse"),
    Case("evaluate-fuse-no-fused", "evaluate --data {T}", "--fused: required"),
    Case("evaluate-fuse-fused-not-a-folder", "evaluate --fused {FILE} --data {T}",
         "--fused: not a folder"),
    Case("evaluate-fuse-csv-is-a-folder", "evaluate --fused {T} --data {T} --csv {ws}",
         "--csv"),
    Case("evaluate-fuse-json-under-a-file", "evaluate --fused {T} --data {T} "
         "--json {FILE}/m.json", "--json"),
    Case("evaluate-fuse-markdown-under-a-file", "evaluate --fused {T} --data {T} "
         "--markdown {FILE}/t.md", "--markdown"),
    Case("evaluate-fuse-metrics-unknown", "evaluate --fused {T} --data {T} --metrics nosuch",
         "--metrics"),
    Case("evaluate-segment-convention", "evaluate --task segment --weights {NOCFG} --data {T} "
         "--convention mmif", "--convention: does not apply to --task segment"),
    Case("evaluate-segment-no-weights", "evaluate --task segment --data {T}",
         "--weights: required"),
    Case("evaluate-segment-json-is-a-folder", "evaluate --task segment --weights {NOCFG} "
         "--data {T} --json {ws}", "--json"),
    Case("evaluate-segment-csv-under-a-file", "evaluate --task segment --weights {NOCFG} "
         "--data {T} --csv {FILE}/x.csv", "--csv"),
    Case("evaluate-segment-out-is-a-folder", "evaluate --task segment --weights {NOCFG} "
         "--data {T} --out {ws}", "--out: "),
    Case("evaluate-segment-out-and-json", "evaluate --task segment --weights {NOCFG} --data {T} "
         "--out {ws}/a.json --json {ws}/b.json", "--out, --json: both name the JSON report",
         ("a.json", "b.json")),
    Case("evaluate-segment-weights-not-a-run", "evaluate --task segment --weights {NOCFG} "
         "--data {T} --csv {ws}/s.csv", "config.yaml", ("s.csv",)),
    Case("evaluate-segment-weights-of-a-fuse-run", "evaluate --task segment --weights {W} "
         "--data {T} --markdown {ws}/s.md", "--weights", ("s.md",)),
    Case("evaluate-pansharpen-convention", "evaluate --task pansharpen --data {T} "
         "--convention mmif", "--convention: does not apply to --task pansharpen"),
    Case("evaluate-pansharpen-no-data", "evaluate --task pansharpen", "--data: required"),
    Case("evaluate-pansharpen-json-is-a-folder", "evaluate --task pansharpen --data {T} "
         "--json {ws}", "--json"),
    Case("evaluate-pansharpen-csv-under-a-file", "evaluate --task pansharpen --data {T} "
         "--csv {FILE}/x.csv", "--csv"),
    Case("evaluate-pansharpen-fused-and-methods", "evaluate --task pansharpen --data {T} "
         "--fused {T} --methods EXP --csv {ws}/p.csv",
         "--fused: scores external results alone", ("p.csv",)),
    Case("evaluate-pansharpen-weights-of-a-fuse-run", "evaluate --task pansharpen --data {T} "
         "--weights {W} --json {ws}/p.json", "'fuse' run, not a 'pansharpen' run",
         ("p.json",)),
    # ---- pansharpen: --out checked before the data are read; no empty folder left behind
    Case("pansharpen-out-under-a-file", "pansharpen --method EXP --data {T} --out {FILE}/o",
         "--out: "),
    Case("pansharpen-data-not-pan-leaves-no-folder", "pansharpen --method EXP --data {T} "
         "--out {ws}/o", "no PAN + MS pairs", ("o",)),
    # ---- the top level
    Case("unknown-command", "nosuchcommand", "nosuchcommand"),
]


def _png(path: Path, shape: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, str]:
    """The synthetic files the placeholders name (see the module docstring)."""
    from hyperleaf.models import SHIP

    ws = tmp_path_factory.mktemp("ws")
    torch.manual_seed(0)
    torch.save({"params": SHIP().state_dict()}, ws / "w.pth")
    _png(ws / "IR8.png", (24, 24), 1)
    _png(ws / "VIS8.png", (24, 24), 2)
    (ws / "T").mkdir()
    for k in (1, 2):
        _png(ws / "T" / f"IR{k}.png", (20, 22), 10 + k)
        _png(ws / "T" / f"VIS{k}.png", (20, 22), 20 + k)
    (ws / "file.txt").write_text("a regular file\n")
    (ws / "bad.pth").write_bytes(b"not a checkpoint")
    (ws / "nocfg").mkdir()
    (ws / "unfinished").mkdir()
    (ws / "unfinished" / "config.yaml").write_text("steps: 4\n")
    (ws / "badst").mkdir()
    (ws / "badst" / "config.yaml").write_text("steps: 4\n")
    (ws / "badst" / "model.safetensors").write_bytes(b"\x00" * 5)
    return {"ws": str(ws), "W": str(ws / "w.pth"), "IR": str(ws / "IR8.png"),
            "VIS": str(ws / "VIS8.png"), "T": str(ws / "T"), "FILE": str(ws / "file.txt"),
            "BAD": str(ws / "bad.pth"), "NOCFG": str(ws / "nocfg"),
            "UNFINISHED": str(ws / "unfinished"), "BADST": str(ws / "badst" / "model.safetensors")}


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def run_hyperleaf(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m hyperleaf *argv`` with this checkout first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "hyperleaf", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def assert_clean_error(res: subprocess.CompletedProcess, expect: str) -> None:
    """Exit status 2, ``expect`` on an ``error:`` line of stderr, no traceback."""
    everything = res.stdout + res.stderr
    assert "Traceback" not in everything, everything
    assert res.returncode == 2, (res.returncode, everything)
    lines = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert lines, res.stderr
    assert any(expect in ln for ln in lines), (expect, res.stderr)


@pytest.mark.parametrize("case", TABLE, ids=[c.id for c in TABLE])
def test_cli_error(case: Case, workspace):
    if case.needs_no_cuda and torch.cuda.is_available():
        pytest.skip("this torch can use CUDA: the 'CUDA not available' error cannot occur")
    ws = Path(workspace["ws"])
    argv = [a.format(**workspace) for a in case.argv.split()]
    before = _tree(ws)
    res = run_hyperleaf(argv, cwd=ws)
    assert_clean_error(res, case.expect)
    for rel in case.absent:
        assert not (ws / rel).exists(), rel
    assert _tree(ws) == before, "the workspace changed"
