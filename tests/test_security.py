"""Nothing hyperleaf reads may run code; files it writes are readable as the umask says.

The malicious files are real pickles whose object's ``__reduce__`` runs a shell command that
creates a marker file: if hyperleaf ever unpickled them with ``weights_only=False``, the marker
would appear. Each command-line case runs in a subprocess (exit status, stderr, marker).
"""

from __future__ import annotations

import os
import pickle
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hyperleaf.atomic import (
    LocationError,
    UnreadableFileError,
    UnsafeFileError,
    atomic_torch_save,
    atomic_write_path,
    atomic_write_text,
    check_writable_location,
    safe_torch_load,
)
from hyperleaf.compat.leaf import load_reference_file
from hyperleaf.compat.ship import ShipCheckpointError, load_official_state_dict

REPO = Path(__file__).resolve().parents[1]


class _RunsShell:
    """Unpickling this runs ``touch MARKER`` through the shell."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def write_malicious(path: Path, marker: Path, legacy: bool = False, wrap: str | None = None
                    ) -> Path:
    """A pickle that creates ``marker`` when loaded with ``weights_only=False`` (torch's zip
    format, or a plain ``pickle.dump`` when ``legacy``), nested under key ``wrap`` if given."""
    payload = {wrap: _RunsShell(marker)} if wrap else _RunsShell(marker)
    if legacy:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    else:
        torch.save(payload, path)
    return path


def hyperleaf_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "hyperleaf", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def assert_clean_refusal(p: subprocess.CompletedProcess, marker: Path, *needles: str) -> None:
    assert not marker.exists(), "the malicious pickle ran its command"
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    assert "\x1b[" not in p.stderr, "ANSI escapes in the message"
    assert "weights_only" not in p.stderr, "torch's advice to load unsafely leaked through"
    for needle in needles:
        assert needle in p.stderr, (needle, p.stderr)


# --------------------------------------------------------------------------- safe_torch_load


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_safe_torch_load_refuses_code_and_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "MARKER"
    path = write_malicious(tmp_path / "evil.pt", marker, legacy=legacy, wrap="params")
    # The test's premise: an unsafe load really would run the command.
    if not legacy:
        torch.load(path, weights_only=False)
        assert marker.exists()
        marker.unlink()
    with pytest.raises(UnsafeFileError) as info:
        safe_torch_load(path, what="SHIP weights")
    msg = str(info.value)
    assert not marker.exists()
    assert str(path) in msg and "SHIP weights" in msg and "refused" in msg
    assert "\n" not in msg and "\x1b" not in msg and "weights_only" not in msg
    if not legacy:
        assert "posix.system" in msg  # the object it would have built is named


def test_safe_torch_load_reads_tensors_and_names_damage(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"a": torch.arange(3), "b": [1, 2.5, "x", None, (True,)]}, good)
    got = safe_torch_load(good)
    assert torch.equal(got["a"], torch.arange(3)) and got["b"] == [1, 2.5, "x", None, (True,)]

    data = good.read_bytes()
    cases = {"truncated.pt": data[: len(data) // 2], "empty.pt": b"", "text.pt": b"hello"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UnreadableFileError) as info:
            safe_torch_load(tmp_path / name, what="a hyperleaf checkpoint")
        assert not isinstance(info.value, UnsafeFileError), name
        msg = str(info.value)
        assert name in msg and "a hyperleaf checkpoint" in msg and "\n" not in msg, msg
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        safe_torch_load(tmp_path / "missing.pt")


def test_numpy_objects_are_refused(tmp_path):
    """NumPy arrays are rebuilt by a NumPy function: not plain data, refused (hyperleaf's own
    files store them as tensors)."""
    path = tmp_path / "np.pt"
    torch.save({"state": np.random.get_state()}, path)
    with pytest.raises(UnsafeFileError, match="numpy"):
        safe_torch_load(path)


def test_leaf_loader_reads_the_authors_numpy_scalar_only(tmp_path):
    """The LEAF authors' ``.pth.tar`` holds ``best_acc1`` as a ``numpy.float64``: read through
    safe_torch_load with exactly that allowed; anything else is refused in hyperleaf's words."""
    good = tmp_path / "Hyfusion_model.pth.tar"
    torch.save({"epoch": 4, "state_dict": {"w": torch.arange(3.0)},
                "best_acc1": np.float64(0.375)}, good)
    with pytest.raises(pickle.UnpicklingError):  # the premise: plain weights_only refuses it
        torch.load(good, map_location="cpu", weights_only=True)
    got = load_reference_file(good)
    assert type(got["best_acc1"]) is np.float64 and got["best_acc1"] == 0.375
    assert got["epoch"] == 4 and torch.equal(got["state_dict"]["w"], torch.arange(3.0))

    marker = tmp_path / "MARKER"
    evil = write_malicious(tmp_path / "evil.pth.tar", marker, wrap="best_acc1")
    arrays = tmp_path / "arrays.pth.tar"
    torch.save({"state_dict": {}, "rng": np.random.get_state()}, arrays)  # numpy arrays
    for path, kind in ((evil, UnsafeFileError), (arrays, UnsafeFileError)):
        with pytest.raises(kind) as info:
            load_reference_file(path)
        msg = str(info.value)
        assert path.name in msg and "LEAF checkpoint" in msg and "refused" in msg, msg
        assert "\n" not in msg and "\x1b" not in msg and "weights_only" not in msg, msg
    assert not marker.exists()

    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(UnreadableFileError) as info:
        load_reference_file(cut)
    assert "cut.pth.tar" in str(info.value) and "weights_only" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.pth.tar"):
        load_reference_file(tmp_path / "missing.pth.tar")


def test_ship_loader_refuses_malicious_weights(tmp_path):
    marker = tmp_path / "MARKER"
    path = write_malicious(tmp_path / "ship.pth", marker, wrap="params")
    with pytest.raises(ShipCheckpointError, match="refused") as info:
        load_official_state_dict(path)
    assert isinstance(info.value.__cause__, UnsafeFileError)
    assert not marker.exists()
    other = tmp_path / "list.pth"
    torch.save([torch.ones(1)], other)
    with pytest.raises(ShipCheckpointError, match=r"list\.pth: expected SHIP weights"):
        load_official_state_dict(other)


def _pair(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ir, vis = folder / "IR1.png", folder / "VIS1.png"
    Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(ir)
    Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(vis)
    return ir, vis


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_fuse_with_malicious_weights_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "MARKER"
    weights = write_malicious(tmp_path / "ship.pth", marker, legacy=legacy, wrap="params")
    ir, vis = _pair(tmp_path / "pair")
    p = hyperleaf_cli("fuse", "--weights", str(weights), "--ir", str(ir), "--vis", str(vis),
                      "--out", str(tmp_path / "fused"), cwd=tmp_path)
    assert_clean_refusal(p, marker, "ship.pth", "refused")
    assert not (tmp_path / "fused").exists()


# --------------------------------------------------------------------------- file modes


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(saved)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    written = [atomic_write_text(tmp_path / "a.txt", "x"),
               atomic_torch_save(tmp_path / "b.pt", {"w": torch.ones(1)})]
    with atomic_write_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"c")
    written.append(tmp_path / "c.bin")
    from hyperleaf.io import write_png

    written.append(write_png(tmp_path / "d.png", np.zeros((4, 4), np.uint8)))
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.pt", "c.bin", "d.png"]


def test_atomic_write_path_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.bin"]


def test_writable_location_names_the_file_in_the_way(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker / "leaf.png", blocker / "a" / "b.txt"):
        with pytest.raises(LocationError, match=f"{blocker} is a file, not a folder"):
            check_writable_location(target)
        with pytest.raises(LocationError):
            atomic_write_text(target, "x")
    with pytest.raises(LocationError, match="is a file"):
        check_writable_location(blocker, folder=True)
    assert check_writable_location(tmp_path / "new" / "x.txt") == tmp_path / "new" / "x.txt"
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run (checkpoints at steps 2 and 4), written under umask 022."""
    from hyperleaf.train import train
    from tests.test_train import tiny

    out = tmp_path_factory.mktemp("run") / "run"
    saved = os.umask(0o022)
    try:
        train(tiny(out, steps=4, save_every=2, log_every=1), progress=False)
    finally:
        os.umask(saved)
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


def test_run_outputs_follow_the_umask(finished_run):
    files = [p for p in finished_run.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"model.safetensors", "config.yaml", "log.jsonl", "leaf.png",
            "step_00000004.pt"} <= names
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


@pytest.mark.parametrize("which", ["newest", "every"])
def test_resume_never_runs_a_planted_checkpoint(finished_run, tmp_path, which):
    run = _copy_run(finished_run, tmp_path / "run")
    marker = tmp_path / "MARKER"
    ckpts = sorted((run / "checkpoints").glob("step_*.pt"))
    assert [p.name for p in ckpts] == ["step_00000002.pt", "step_00000004.pt"]
    for p in ckpts if which == "every" else ckpts[-1:]:
        write_malicious(p, marker, wrap="model")
    before = _snapshot(run)
    p = hyperleaf_cli("train", "--resume", "--out", str(run), "--steps", "6", "--no-progress",
                      cwd=tmp_path)
    # The newest file is refused and the resume stops there: no silent fall back past it.
    assert_clean_refusal(p, marker, "step_00000004.pt", "refused")
    assert "step_00000002.pt" not in p.stderr.split("error:", 1)[1]
    assert _snapshot(run) == before, "a refused resume rewrote the run folder"


def test_resume_reports_a_skipped_damaged_checkpoint(finished_run, tmp_path, capsys):
    from hyperleaf.train import Trainer
    from tests.test_train import tiny

    run = _copy_run(finished_run, tmp_path / "run")
    newest = run / "checkpoints" / "step_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # cut short, as by a full disk
    t = Trainer(tiny(run, steps=6, save_every=2, log_every=1), resume=True, progress=False,
                explicit=frozenset({"steps"}))
    t.run()
    err = capsys.readouterr().err
    # the library names the key; `hyperleaf train` words it as the flag (tests/test_architecture.py)
    assert "\nresume: skipped step_00000004.pt: cannot be read as a hyperleaf train " \
           "checkpoint" in "\n" + err, err
    assert "\nresume: resuming from step_00000002.pt (step 2)" in "\n" + err, err
    assert t.resumed_from.step == 2 and [q.name for q, _ in t.resumed_from.skipped] == \
        ["step_00000004.pt"]
    import json

    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # the log of steps 3-4 was redone, not duplicated


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_resume_with_no_loadable_checkpoint_stops_and_rewrites_nothing(finished_run, tmp_path,
                                                                       damage):
    run = _copy_run(finished_run, tmp_path / "run")
    for ck in (run / "checkpoints").glob("step_*.pt"):
        if damage == "truncated":
            ck.write_bytes(ck.read_bytes()[:500])
        else:  # a loadable pickle of plain data, but not a hyperleaf checkpoint
            torch.save({"state_dict": {"w": torch.ones(2)}}, ck)
    before = _snapshot(run)
    p = hyperleaf_cli("train", "--resume", "--out", str(run), "--no-progress", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "no checkpoint can be loaded" in p.stderr, p.stderr
    assert "step_00000002.pt" in p.stderr and "step_00000004.pt" in p.stderr
    if damage == "foreign":
        assert "format is None" in p.stderr
    assert _snapshot(run) == before


def test_checkpoint_validation_names_the_problem(tmp_path):
    from hyperleaf.train import CheckpointError
    from hyperleaf.train.checkpoint import load_checkpoint

    cases = {
        "list.pt": ([1, 2], "holds a list, expected a dict"),
        "old.pt": ({"format": "hyperleaf-train-checkpoint/1"}, "format is 'hyperleaf-train"),
        "keys.pt": ({"format": "hyperleaf-train-checkpoint/2", "step": 3},
                    "missing config, counters"),
    }
    for name, (obj, needle) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match=needle) as info:
            load_checkpoint(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: not a hyperleaf train checkpoint")
