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
