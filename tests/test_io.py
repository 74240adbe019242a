"""hyperleaf.io: reading, YCrCb, atomic PNG writing, pair discovery (synthetic files only)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hyperleaf.io import (
    ImageError,
    check_pairs,
    find_pairs,
    find_pairs_in,
    read_gray,
    read_image,
    rgb_to_ycrcb,
    write_png,
    ycrcb_to_rgb,
)


def _save(path, arr):
    Image.fromarray(arr).save(path)
    return path


def test_read_gray_8bit_divides_by_255(tmp_path):
    a = np.array([[0, 51], [204, 255]], np.uint8)
    out = read_gray(_save(tmp_path / "g.png", a))
    assert out.dtype == np.float32 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, np.array([[0, 0.2], [0.8, 1.0]], np.float32))


def test_read_gray_16bit(tmp_path):
    a = np.array([[0, 65535], [32768, 1]], np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(a).save(p)
    out = read_gray(p)
    np.testing.assert_allclose(out, a / 65535.0, rtol=0, atol=1e-7)


def test_read_colour_and_its_luminance(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 2] = (10, 200, 30)
    p = _save(tmp_path / "c.png", rgb)
    img = read_image(p)
    assert img.shape == (2, 3, 3)
    np.testing.assert_allclose(img, rgb / 255.0, atol=1e-7)
    y = read_gray(p)
    # Y = 0.299 R + 0.587 G + 0.114 B, by hand for the two coloured pixels
    assert y[0, 0] == pytest.approx(0.299, abs=1e-6)
    assert y[1, 2] == pytest.approx((0.299 * 10 + 0.587 * 200 + 0.114 * 30) / 255, abs=1e-6)
    assert y[0, 1] == 0


def test_ycrcb_formulas_by_hand():
    rgb = np.array([0.2, 0.4, 0.6])
    y = 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6  # 0.363
    expected = [y, 0.713 * (0.2 - y) + 0.5, 0.564 * (0.6 - y) + 0.5]
    np.testing.assert_allclose(rgb_to_ycrcb(rgb), expected, atol=1e-12)
    back = ycrcb_to_rgb(np.array(expected))
    r = y + 1.403 * (expected[1] - 0.5)
    g = y - 0.714 * (expected[1] - 0.5) - 0.344 * (expected[2] - 0.5)
    b = y + 1.773 * (expected[2] - 0.5)
    np.testing.assert_allclose(back, [r, g, b], atol=1e-12)
    # the published coefficients are 3-digit inverses of each other
    np.testing.assert_allclose(back, rgb, atol=2e-3)


def test_ycrcb_torch_and_bad_shape():
    import torch

    t = torch.rand(4, 5, 3, dtype=torch.float64)
    np.testing.assert_allclose(rgb_to_ycrcb(t).numpy(), rgb_to_ycrcb(t.numpy()), atol=1e-15)
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_ycrcb(np.zeros((4, 4)))


def test_write_png_roundtrip_and_atomic(tmp_path):
    a = np.array([[0.0, 0.5], [1.2, -0.1]], np.float32)
    p = write_png(tmp_path / "o.png", a)
    back = np.asarray(Image.open(p))
    np.testing.assert_array_equal(back, [[0, 128], [255, 0]])  # 127.5 rounds half to even -> 128
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.png"]  # no temporary left over
    rgb = np.random.default_rng(0).random((3, 4, 3))
    p2 = write_png(tmp_path / "c.png", rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(p2)), np.rint(rgb * 255).astype(np.uint8))


def test_write_png_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_png(tmp_path / "missing" / "o.png", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        write_png(tmp_path / "o.png", np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="expected"):
        write_png(tmp_path / "o.png", np.zeros((2, 2, 4)))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def grey():
    return (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)


def test_find_pairs_folders_by_stem(tmp_path, grey):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    for n in ("10", "2"):
        _save(tmp_path / "ir" / f"{n}.png", grey)
        _save(tmp_path / "vi" / f"{n}.png", grey)
    (tmp_path / "vi" / "notes.txt").write_text("ignored")
    pairs = find_pairs(ir=tmp_path / "ir", vis=tmp_path / "vi")
    assert [p.name for p in pairs] == ["2", "10"]  # natural order
    assert pairs[0].ir == tmp_path / "ir" / "2.png"
    assert find_pairs_in(tmp_path) == pairs


def test_find_pairs_flat_naming(tmp_path, grey):
    for k in (1, 3):
        _save(tmp_path / f"IR{k}.png", grey)
        _save(tmp_path / f"VIS{k}.png", grey)
    pairs = find_pairs_in(tmp_path)
    assert [(p.name, p.ir.name, p.vis.name) for p in pairs] == [
        ("1", "IR1.png", "VIS1.png"), ("3", "IR3.png", "VIS3.png")]
    assert find_pairs(tmp_path, tmp_path) == pairs


def test_find_pairs_files(tmp_path, grey):
    a, b = _save(tmp_path / "a.png", grey), _save(tmp_path / "b.png", grey)
    (pair,) = find_pairs(ir=a, vis=b)
    assert (pair.name, pair.ir, pair.vis) == ("b", a, b)


def test_missing_partner_names_the_file(tmp_path, grey):
    for k in (1, 2):
        _save(tmp_path / f"IR{k}.png", grey)
    _save(tmp_path / "VIS1.png", grey)
    with pytest.raises(ImageError, match="IR2.png"):
        find_pairs_in(tmp_path)


def test_size_mismatch_and_unreadable(tmp_path, grey):
    _save(tmp_path / "IR1.png", grey)
    _save(tmp_path / "VIS1.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(ImageError, match="VIS1.png.*5x4|size mismatch"):
        check_pairs(find_pairs_in(tmp_path))
    (tmp_path / "VIS1.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match="VIS1.png"):
        check_pairs(find_pairs_in(tmp_path))
    with pytest.raises(ImageError, match="not found"):
        read_gray(tmp_path / "nope.png")


def test_bad_arguments(tmp_path, grey):
    # library errors name the argument; the command line names the flag (hyperleaf.cli.flags)
    with pytest.raises(ImageError, match="^ir: no such file"):
        find_pairs(ir=tmp_path / "x", vis=tmp_path)
    with pytest.raises(ImageError, match="^data_dir: "):
        find_pairs_in(tmp_path)  # empty folder
