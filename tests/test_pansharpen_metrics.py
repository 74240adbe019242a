"""Pan-sharpening quality indices against hand-computed values, independent formulas (NumPy
covariances, complex numbers) and identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyperleaf.pansharpen import interp23
from hyperleaf.pansharpen import metrics as pm

F64 = torch.float64


def _rand(*shape, seed=0, lo=0.1, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=F64)


def _np_q(x, y):
    """UIQI of two arrays via NumPy's covariance matrix (an independent formula)."""
    x, y = np.ravel(x), np.ravel(y)
    c = np.cov(x, y)
    return 4 * c[0, 1] * x.mean() * y.mean() / ((c[0, 0] + c[1, 1]) * (x.mean() ** 2 + y.mean() ** 2))


# ----------------------------------------------------------------------------- SAM, ERGAS


def test_sam_by_hand():
    ref = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]], dtype=F64)  # (2 bands, 1, 3)
    fus = torch.tensor([[[1.0, 0.0, 5.0]], [[1.0, 2.0, 5.0]]], dtype=F64)
    # pixel 0: (1,0) vs (1,1) -> 45 deg; pixel 1: (0,1) vs (0,2) -> 0; pixel 2: |ref| = 0, left out
    assert pm.sam(ref, fus) == pytest.approx(22.5, abs=1e-12)


def test_sam_of_a_scaled_image_is_zero():
    x = _rand(4, 8, 8)
    assert pm.sam(x, 3.7 * x) == pytest.approx(0.0, abs=1e-5)  # acos near 1: ~1e-8 rad


def test_ergas_by_hand():
    ref = torch.stack([torch.full((4, 4), 2.0), torch.full((4, 4), 4.0)]).to(F64)
    fus = torch.stack([torch.full((4, 4), 3.0), torch.full((4, 4), 4.0)]).to(F64)
    # band 0: MSE 1 / mean^2 4 = 0.25; band 1: 0 -> 100/4 * sqrt(0.125)
    assert pm.ergas(ref, fus, 4) == pytest.approx(25 * math.sqrt(0.125), rel=1e-14)
    assert pm.ergas(ref, ref, 4) == 0.0


# ----------------------------------------------------------------------------- Q, Q2n


def test_uiqi_one_window_matches_numpy_covariance():
    x = _rand(6, 6, seed=1)
    y = 0.5 * x + _rand(6, 6, seed=2) * 0.3
    assert pm.uiqi(x, y, block=6) == pytest.approx(_np_q(x.numpy(), y.numpy()), rel=1e-12)
    assert pm.uiqi(x, x, block=3) == pytest.approx(1.0, abs=1e-12)
    # constant windows: img_qi's conventions
    c2, c3 = torch.full((4, 4), 2.0, dtype=F64), torch.full((4, 4), 3.0, dtype=F64)
    assert pm.uiqi(c2, c2, block=4) == 1.0
    assert pm.uiqi(c2, c3, block=4) == pytest.approx(2 * 6 / 13, rel=1e-14)


def test_q_index_averages_sliding_windows_and_bands():
    x, y = _rand(2, 5, 5, seed=3), _rand(2, 5, 5, seed=4)
    want = np.mean([np.mean([_np_q(x[b, i:i + 4, j:j + 4].numpy(), y[b, i:i + 4, j:j + 4].numpy())
                             for i in range(2) for j in range(2)]) for b in range(2)])
    assert pm.q_index(x, y, block=4) == pytest.approx(want, rel=1e-12)


def _normalised(ref, fus):
    m, s = ref.mean(), ref.std(ddof=1)
    return (ref - m) / s + 1, (fus - m) / s + 1


def test_q2n_one_band_is_uiqi_of_the_normalised_block():
    x = _rand(1, 8, 8, seed=5).numpy()
    y = (0.8 * x + 0.2 * _rand(1, 8, 8, seed=6).numpy())
    a, b = _normalised(x[0], y[0])
    assert pm.q2n(x, y, block=8, convention="legacy") == pytest.approx(abs(_np_q(a, b)), rel=1e-12)


def test_q2n_two_bands_is_the_complex_uiqi():
    x = _rand(2, 8, 8, seed=7).numpy()
    y = 0.7 * x + 0.3 * _rand(2, 8, 8, seed=8).numpy()
    n0 = _normalised(x[0], y[0])
    n1 = _normalised(x[1], y[1])
    z = (n0[0] + 1j * n1[0]).ravel()
    w = (n0[1] + 1j * n1[1]).ravel()
    k = z.size / (z.size - 1)
    cov = k * (np.mean(z * np.conj(w)) - z.mean() * np.conj(w.mean()))
    var = k * (np.mean(abs(z) ** 2) - abs(z.mean()) ** 2) + k * (np.mean(abs(w) ** 2)
                                                                 - abs(w.mean()) ** 2)
    q = cov * 2 * abs(z.mean()) * abs(w.mean()) / (abs(z.mean()) ** 2 + abs(w.mean()) ** 2) * 2 / var
    assert pm.q2n(x, y, block=8, convention="legacy") == pytest.approx(abs(q), rel=1e-12)


@pytest.mark.parametrize("bands", [3, 4, 8])
def test_q2n_identities(bands):
    x = _rand(bands, 40, 40, seed=bands)
    assert pm.q2n(x, x, convention="legacy") == pytest.approx(1.0, abs=1e-12)  # 40 px: mirror-extended to 64
    noisy = x + 0.2 * _rand(bands, 40, 40, seed=99, lo=-1)
    assert 0 < pm.q2n(x, noisy, convention="legacy") < 1
    flat = torch.full((bands, 32, 32), 0.5, dtype=F64)
    assert pm.q2n(flat, flat, convention="legacy") == pytest.approx(1.0, abs=1e-12)  # degenerate block branch


def test_q2n_mirror_extension_by_hand():
    x = torch.arange(5, dtype=F64).view(1, 1, 5).expand(1, 5, 5)
    ext, sx, sy = pm._mirror_extend(x, 4, 4)
    assert (sx, sy) == (2, 2) and ext[0, 0].tolist() == [0, 1, 2, 3, 4, 4, 3, 2]


# ----------------------------------------------------------------------------- SCC


def test_scc_identities_and_a_hand_value():
    x = _rand(3, 12, 12, seed=11)
    assert pm.scc(x, x) == pytest.approx(1.0, abs=1e-14)
    assert pm.scc(x, 2 * x) == pytest.approx(1.0, abs=1e-14)
    # not offset-invariant: the zero padding turns an offset into border gradients (toolbox)
    assert pm.scc(x, x + 5) < 0.99
    # A 3x3 interior: Sobel magnitude on a 3x3 window with zero padding.
    ramp = torch.arange(5, dtype=F64).view(1, 1, 5).expand(1, 5, 5).contiguous()
    flat = torch.ones(1, 5, 5, dtype=F64)
    g_ramp = pm._sobel_magnitude(ramp[None])[0, 0]
    # interior pixel (1,1) of the cropped 3x3 [1 2 3] rows: gx = (3-1)*(1+2+1) = 8, gy = 0
    assert float(g_ramp[1, 1]) == pytest.approx(8.0, abs=1e-14)
    assert pm._sobel_magnitude(flat[None])[0, 0, 1, 1] == 0


# ----------------------------------------------------------------------------- full resolution


def _np_block_q(x, y, b):
    h, w = x.shape
    return np.mean([_np_q(x[i:i + b, j:j + b], y[i:i + b, j:j + b])
                    for i in range(0, h, b) for j in range(0, w, b)])


def test_d_lambda_matches_a_loop_transcription_and_is_zero_for_replicated_ms():
    ms = _rand(3, 4, 4, seed=12)
    fused = _rand(3, 16, 16, seed=13)
    want = np.mean([abs(_np_block_q(fused[i].numpy(), fused[j].numpy(), 8)
                        - _np_block_q(ms[i].numpy(), ms[j].numpy(), 2))
                    for i in range(3) for j in range(i + 1, 3)])
    assert pm.d_lambda(fused, ms, 4, block=8, convention="legacy") == pytest.approx(want, rel=1e-12)
    nearest = ms.repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert pm.d_lambda(nearest, ms, 4, block=8, convention="legacy") == pytest.approx(0.0, abs=1e-12)


def test_d_s_matches_a_loop_transcription():
    from hyperleaf.pansharpen import bicubic

    ms, pan = _rand(2, 8, 8, seed=14), _rand(1, 32, 32, seed=15)
    fused = interp23(ms, 4) + 0.3 * (pan - 0.5)
    lms = interp23(ms, 4)
    pan_f = interp23(bicubic(pan, size=(8, 8)), 4)
    want = np.mean([abs(_np_block_q(fused[b].numpy(), pan[0].numpy(), 16)
                        - _np_block_q(lms[b].numpy(), pan_f[0].numpy(), 16)) for b in range(2)])
    assert pm.d_s(fused, ms, pan, 4, block=16) == pytest.approx(want, rel=1e-12)


def test_qnr_hqnr_compose_their_distortions():
    ms, pan = _rand(4, 16, 16, seed=16), _rand(1, 64, 64, seed=17)
    fused = interp23(ms, 4) + 0.2 * (pan - pan.mean())
    out = pm.full_resolution(fused, ms, pan, 4, "QB", convention="legacy")
    assert out["QNR"] == pytest.approx((1 - out["D_lambda"]) * (1 - out["D_s"]), rel=1e-14)
    assert out["HQNR"] == pytest.approx((1 - out["D_lambda_K"]) * (1 - out["D_s"]), rel=1e-14)
    assert pm.qnr(fused, ms, pan, 4, convention="legacy") == pytest.approx(out["QNR"], rel=1e-14)
    assert pm.hqnr(fused, ms, pan, 4, "QB", convention="legacy") == pytest.approx(out["HQNR"], rel=1e-14)
    assert all(0 <= out[k] <= 1 for k in pm.FULL_RESOLUTION)


def test_d_lambda_khan_composes_mtf_and_q2n():
    from hyperleaf.pansharpen import get_sensor, mtf_filter

    ms = _rand(4, 16, 16, seed=20)
    good = interp23(ms, 4)
    bad = _rand(4, 64, 64, seed=21)
    low = mtf_filter(good, get_sensor("QB").ms_gains, 4, convention="legacy")
    want = 1 - pm.q2n(interp23(ms, 4), low, convention="legacy")
    assert pm.d_lambda_khan(good, ms, 4, "QB", convention="legacy") == pytest.approx(want, rel=1e-14)
    lk = {"convention": "legacy"}
    assert 0 <= pm.d_lambda_khan(good, ms, 4, "QB", **lk) < pm.d_lambda_khan(bad, ms, 4, "QB",
                                                                                **lk) <= 1


def test_reduced_resolution_table_and_cut():
    ref = _rand(4, 64, 64, seed=18)
    fus = ref + 0.05 * _rand(4, 64, 64, seed=19, lo=-1)
    out = pm.reduced_resolution(ref, fus, 4, convention="legacy")
    assert list(out) == list(pm.REDUCED_RESOLUTION)
    cut = pm.reduced_resolution(ref, fus, 4, cut=11, convention="legacy")
    assert cut["SAM"] == pytest.approx(pm.sam(ref[:, 10:53, 10:53], fus[:, 10:53, 10:53]))
    ident = pm.reduced_resolution(ref, ref, 4, convention="legacy")
    assert ident["SAM"] == pytest.approx(0, abs=1e-5) and ident["ERGAS"] == 0
    assert ident["Q2n"] == pytest.approx(1) and ident["Q"] == pytest.approx(1)
    clipped = pm.reduced_resolution(ref, ref + 2, 4, clip=1.0,
                                    convention="legacy")
    assert clipped["ERGAS"] == pm.ergas(ref, torch.ones_like(ref), 4)


def test_errors_name_the_argument():
    x = _rand(3, 8, 8)
    with pytest.raises(ValueError, match=r"ref \(1, 3, 8, 8\) and fused \(1, 3, 8, 4\)"):
        pm.sam(x, x[..., :4])
    with pytest.raises(ValueError, match="ratio"):
        pm.ergas(x, x, 0)
    with pytest.raises(ValueError, match="pan: expected one band"):
        pm.d_s(x, x[:, :2, :2], x, 4)
    with pytest.raises(TypeError, match="fused: expected a tensor or array"):
        pm.scc(x, [1, 2])
