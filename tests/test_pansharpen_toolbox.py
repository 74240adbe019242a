"""``convention="toolbox"``: the degradation and the indices against independent transcriptions
of the MATLAB toolbox of Vivone et al. (``genMTF.m``, ``MTF.m``, ``resize_images.m``,
``D_lambda.m``, ``q2n.m`` with ``onions_quality``/``onion_mult``/``norm_blocco``).

The transcriptions below are written from the MATLAB sources' structure (loops over blocks and
bands, a direct DFT sum instead of an FFT, scalar hypercomplex products), not from the library,
so that an error in the vectorised library code cannot cancel. Tolerances: float64, <= 1e-9
(absolute) for every index; the Pleiades ``lrms`` to <= 1e-10.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyperleaf.pansharpen import (
    bicubic,
    degrade,
    degrade_ms,
    get_sensor,
    interp23,
    mtf_filter,
    toolbox_mtf_kernel,
)
from hyperleaf.pansharpen import metrics as pm

F64 = torch.float64


def _rand(*shape, seed=0, lo=0.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=F64)


# ----------------------------------------------------------------------------- transcriptions


def _ref_genmtf(gain: float, ratio: int, n: int = 41, span: int | None = None) -> np.ndarray:
    """genMTF.m for one band: fspecial Gaussian, Hd = H / max H, fwind1(Hd, kaiser(n)).
    ``span``: N - 1 in genMTF, N in LPfilterGauss.m."""
    span = n - 1 if span is None else span
    alpha = math.sqrt((span * (1 / ratio) / 2) ** 2 / (-2 * math.log(gain)))
    c = (n - 1) / 2
    big = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            big[i, j] = math.exp(-((i - c) ** 2 + (j - c) ** 2) / (2 * alpha * alpha))
    big[big < np.finfo(float).eps * big.max()] = 0
    big /= big.sum()
    hd = big / big.max()
    # fsamp2: h(n1, n2) = 1/N^2 sum_k1,k2 Hd(k1, k2) exp(+2 pi i (k1 n1 + k2 n2) / N), both index
    # sets centred on 0 (odd N); Hd is even, so the sum is real (cosines).
    k = np.arange(n) - c
    cos = np.cos(2 * np.pi * np.outer(k, k) / n)  # (n index, k index)
    h = cos @ hd @ cos.T / (n * n)
    # the rotationally symmetric Kaiser window (beta 0.5), linear interpolation in the radius
    beta = 0.5
    w1 = np.array([np.i0(beta * math.sqrt(1 - (2 * m / (n - 1) - 1) ** 2)) / np.i0(beta)
                   for m in range(n)])
    t = np.array([-1 + 2 * m / (n - 1) for m in range(n)])
    w = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            r = math.hypot(t[i], t[j])
            if r <= 1:
                m = min(int((r + 1) / (2 / (n - 1))), n - 2)
                f = (r - t[m]) / (t[m + 1] - t[m])
                w[i, j] = (1 - f) * w1[m] + f * w1[m + 1]
    return h * w


def _ref_imfilter_replicate(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """imfilter(x, h, 'replicate') of one (H, W) band: correlation, replicated borders."""
    p = h.shape[0] // 2
    xp = np.pad(x, p, mode="edge")
    out = np.zeros_like(x)
    for di in range(h.shape[0]):
        for dj in range(h.shape[1]):
            out += h[di, dj] * xp[di:di + x.shape[0], dj:dj + x.shape[1]]
    return out


def _ref_uqi(x, y):
    """D_lambda.m's uqi: 4 C12 mx my / (C11 + C22) / (mx^2 + my^2), cov with N - 1."""
    x, y = np.ravel(x), np.ravel(y)
    c = np.cov(x, y)
    return 4 * c[0, 1] * x.mean() * y.mean() / (c[0, 0] + c[1, 1]) / (x.mean() ** 2
                                                                      + y.mean() ** 2)


def _ref_blockproc_q(a, b, s):
    return np.mean([_ref_uqi(a[i:i + s, j:j + s], b[i:i + s, j:j + s])
                    for i in range(0, a.shape[0], s) for j in range(0, a.shape[1], s)])


def _ref_d_lambda_toolbox(fused, ms_up, s, p=1):
    """D_lambda.m, flag_orig_paper = 0: I_F against I_MS (the upsampled MS), S x S blocks."""
    nb = fused.shape[0]
    total = 0.0
    for i in range(nb - 1):
        for j in range(i + 1, nb):
            q_exp = _ref_blockproc_q(ms_up[i], ms_up[j], s)
            q_fus = _ref_blockproc_q(fused[i], fused[j], s)
            total += abs(q_fus - q_exp) ** p
    return (total / ((nb * nb - nb) / 2)) ** (1 / p)


def _ref_uint16(x):
    """MATLAB uint16(): round half away from zero, saturate."""
    y = np.sign(x) * np.floor(np.abs(x) + 0.5)
    return np.clip(y, 0, 65535)


def _ref_onion_mult(o1, o2):
    """onion_mult.m on 1-D sequences (scalars at the leaves)."""
    n = len(o1)
    if n == 1:
        return [o1[0] * o2[0]]
    half = n // 2
    a, b = list(o1[:half]), list(o1[half:])
    b = [b[0]] + [-v for v in b[1:]]
    c, d = list(o2[:half]), list(o2[half:])
    d = [d[0]] + [-v for v in d[1:]]
    if n == 2:
        return [a[0] * c[0] - d[0] * b[0], a[0] * d[0] + c[0] * b[0]]
    r1 = _ref_onion_mult(a, c)
    r2 = _ref_onion_mult(d, [b[0]] + [-v for v in b[1:]])
    r3 = _ref_onion_mult([a[0]] + [-v for v in a[1:]], d)
    r4 = _ref_onion_mult(c, b)
    return [u - v for u, v in zip(r1, r2, strict=True)] + [u + v for u, v in
                                                           zip(r3, r4, strict=True)]


def _ref_onions_quality(d1, d2, size):
    """onions_quality.m on (size, size, N3) blocks."""
    d1 = d1.astype(float).copy()
    d2 = d2.astype(float).copy()
    d2[:, :, 1:] = -d2[:, :, 1:]
    n3 = d1.shape[2]
    for i in range(n3):
        band = d1[:, :, i]
        s = band.mean()
        t = band.std(ddof=1)
        if t == 0:
            t = np.finfo(float).eps
        d1[:, :, i] = (band - s) / t + 1
        if s == 0:
            d2[:, :, i] = d2[:, :, i] - s + 1 if i == 0 else -(-d2[:, :, i] - s + 1)
        else:
            d2[:, :, i] = (d2[:, :, i] - s) / t + 1 if i == 0 else -((-d2[:, :, i] - s) / t + 1)
    m1 = [d1[:, :, i].mean() for i in range(n3)]
    m2 = [d2[:, :, i].mean() for i in range(n3)]
    mod_q1m = math.sqrt(sum(v * v for v in m1))
    mod_q2m = math.sqrt(sum(v * v for v in m2))
    mod_q1 = np.sqrt((d1 ** 2).sum(2))
    mod_q2 = np.sqrt((d2 ** 2).sum(2))
    k = size * size / (size * size - 1)
    int1 = k * np.mean(mod_q1 ** 2)
    int2 = k * np.mean(mod_q2 ** 2)
    t3 = int1 + int2 - k * (mod_q1m ** 2 + mod_q2m ** 2)
    mean_bias = 2 * mod_q1m * mod_q2m / (mod_q1m ** 2 + mod_q2m ** 2)
    if t3 == 0:
        q = np.zeros(n3)
        q[-1] = mean_bias
        return q
    qu = np.zeros(n3)
    for r in range(size):
        for c in range(size):
            qu += np.array(_ref_onion_mult(list(d1[r, c]), list(d2[r, c])))
    qu /= size * size
    qm = np.array(_ref_onion_mult(m1, m2))
    return (k * qu - k * qm) * mean_bias * 2 / t3


def _ref_q2n(gt, fu, bs=32, shift=32, rounding=True):
    """q2n.m on (H, W, C) arrays: mirror extension, uint16, band padding, blocks."""
    n1, n2, n3 = gt.shape
    stepx, stepy = math.ceil(n1 / shift), math.ceil(n2 / shift)
    est1, est2 = (stepx - 1) * shift + bs - n1, (stepy - 1) * shift + bs - n2

    def extend(img):
        out = np.zeros((n1 + est1, n2 + est2, n3))
        for b in range(n3):
            ia = np.zeros((n1 + est1, n2 + est2))
            ia[:n1, :n2] = img[:, :, b]
            for e in range(est2):  # ia(:, N2+1:N2+est2) = ia(:, N2:-1:N2-est2+1)
                ia[:, n2 + e] = ia[:, n2 - 1 - e]
            for e in range(est1):
                ia[n1 + e, :] = ia[n1 - 1 - e, :]
            out[:, :, b] = ia
        return out

    if est1 or est2:
        gt, fu = extend(gt), extend(fu)
    if rounding:
        gt, fu = _ref_uint16(gt), _ref_uint16(fu)
    nb = 2 ** math.ceil(math.log2(n3))
    if nb != n3:
        z = np.zeros(gt.shape[:2] + (nb - n3,))
        gt, fu = np.concatenate([gt, z], 2), np.concatenate([fu, z], 2)
    vals = []
    for j in range(stepx):
        for i in range(stepy):
            sl = (slice(j * shift, j * shift + bs), slice(i * shift, i * shift + bs))
            o = _ref_onions_quality(gt[sl], fu[sl], bs)
            vals.append(math.sqrt((o ** 2).sum()))
    return float(np.mean(vals))


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.numpy().transpose(1, 2, 0)


# ----------------------------------------------------------------------------- filter, Wald


@pytest.mark.parametrize("gain,ratio", [(0.3, 4), (0.15, 4), (0.355, 4), (0.29, 2), (0.3, 3)])
def test_genmtf_kernel_equals_a_direct_dft_transcription(gain, ratio):
    got = toolbox_mtf_kernel(gain, ratio).numpy()
    want = _ref_genmtf(gain, ratio)
    assert np.abs(got - want).max() <= 1e-14
    # not the legacy sampled Gaussian: DC gain below 1, response near G^1.05 at Nyquist
    assert 0.99 < got.sum() < 1.0
    nyq = 1 / (2 * ratio)
    x = np.arange(41) - 20
    resp = float(np.sum(got * np.cos(2 * np.pi * nyq * x)[None, :]))  # along one axis
    assert abs(resp - gain ** 1.05) < 0.02 * gain


def test_mtf_filter_toolbox_is_imfilter_replicate_with_the_kernel():
    x = _rand(1, 3, 24, 28, seed=1)
    gains = (0.3, 0.25, 0.35)
    got = mtf_filter(x, gains, 4)
    for b, g in enumerate(gains):
        want = _ref_imfilter_replicate(x[0, b].numpy(), _ref_genmtf(g, 4))
        assert np.abs(got[0, b].numpy() - want).max() <= 1e-13


def test_lp_filter_gauss_is_lpfiltergauss():
    from hyperleaf.pansharpen import lp_filter_gauss

    x = _rand(1, 1, 24, 24, seed=9)
    want = _ref_imfilter_replicate(x[0, 0].numpy(), _ref_genmtf(0.3, 4, span=41))
    assert np.abs(lp_filter_gauss(x, 4)[0, 0].numpy() - want).max() <= 1e-13


def test_degrade_ms_is_filter_then_matlab_nearest_decimation():
    ms = _rand(2, 4, 32, 32, seed=2)
    got = degrade_ms(ms, 4, "QB")
    gains = get_sensor("QB").ms_gains
    for n in range(2):
        for b in range(4):
            low = _ref_imfilter_replicate(ms[n, b].numpy(), _ref_genmtf(gains[b], 4))
            # imresize(.., 1/4, 'nearest'): output i (1-based) takes input 4 i - 1 (1-based)
            want = low[[4 * i - 2 for i in range(1, 9)]][:, [4 * i - 2 for i in range(1, 9)]]
            assert np.abs(got[n, b].numpy() - want).max() <= 1e-13
    with pytest.raises(ValueError, match="convention"):
        degrade_ms(ms, 4, convention="wald")


def test_degrade_toolbox_pan_is_bicubic_imresize():
    pan, ms = _rand(1, 1, 64, 64, seed=3), _rand(1, 4, 16, 16, seed=4)
    pan_lr, ms_lr = degrade(pan, ms, 4, None)
    torch.testing.assert_close(pan_lr, bicubic(pan, size=(16, 16)), rtol=0, atol=0)
    torch.testing.assert_close(ms_lr, degrade_ms(ms, 4), rtol=0, atol=0)
    legacy_pan, legacy_ms = degrade(pan, ms, 4, None, convention="legacy")
    assert float((legacy_pan - pan_lr).abs().max()) > 1e-3  # the two PAN degradations differ
    assert float((legacy_ms - ms_lr).abs().max()) > 1e-4


@pytest.mark.shared
def test_pleiades_lrms_regenerates_from_its_gt(shared_dir):
    sio = pytest.importorskip("scipy.io")
    m = sio.loadmat(shared_dir / "data" / "pansharpening" / "pleiades" / "Pleiades_test.mat")
    gt = torch.from_numpy(m["gt"]).permute(2, 0, 1)
    lrms = torch.from_numpy(m["lrms"]).permute(2, 0, 1)
    got = degrade_ms(gt, 4)  # generic gains 0.3: Pleiades has no toolbox entry
    assert float((got - lrms).abs().max()) <= 1e-10
    # the legacy filter cannot regenerate it
    legacy = degrade_ms(gt, 4, convention="legacy")
    assert float((legacy - lrms).abs().max()) > 1e-3


# ----------------------------------------------------------------------------- indices


def test_d_lambda_toolbox_equals_the_transcription_and_exp_scores_zero():
    ms = _rand(4, 16, 16, seed=5, lo=0.1)
    lms = interp23(ms, 4)
    fused = lms + 0.1 * _rand(4, 64, 64, seed=6, lo=-1)
    got = pm.d_lambda(fused, ms, 4, block=32)
    want = _ref_d_lambda_toolbox(fused.numpy(), lms.numpy(), 32)
    assert abs(got - want) <= 1e-9
    assert pm.d_lambda(lms, ms, 4) == 0.0  # EXP, exactly as in the toolbox
    assert pm.d_lambda(lms, ms, 4, convention="legacy") > 1e-3  # the QNR paper's option
    # a given upsampled MS is used instead of the 23-tap interpolation
    other = bicubic(ms, size=(64, 64))
    assert pm.d_lambda(other, ms, 4, lms=other) == 0.0
    assert abs(pm.d_lambda(fused, ms, 4, lms=other)
               - _ref_d_lambda_toolbox(fused.numpy(), other.numpy(), 32)) <= 1e-9


@pytest.mark.parametrize("bands,size", [(4, 64), (8, 64), (4, 50), (8, 40), (3, 45)])
def test_q2n_toolbox_equals_the_transcription(bands, size):
    """Digital numbers (11 bit); sizes that are not a multiple of the block are mirror-extended."""
    ref = _rand(bands, size, size, seed=bands + size, lo=50, hi=2000)
    fus = 0.8 * ref + 0.2 * _rand(bands, size, size, seed=7, lo=50, hi=2000) + 3.3
    got = pm.q2n(ref, fus)
    want = _ref_q2n(_hwc(ref), _hwc(fus))
    assert abs(got - want) <= 1e-9
    # the uint16 rounding matters: without it the value moves (the legacy convention)
    legacy = pm.q2n(ref, fus, convention="legacy")
    assert abs(legacy - _ref_q2n(_hwc(ref), _hwc(fus), rounding=False)) <= 1e-9
    assert legacy != got


def test_q8_is_not_symmetric_and_each_order_matches():
    """Distinct, non-symmetric inputs: swapping the operands changes Q8, and each order equals
    the transcription in that order (the blocks are normalised by the reference's moments)."""
    ref = _rand(8, 64, 64, seed=11, lo=10, hi=900)
    fus = 1.3 * ref + 0.2 * ref.flip(0) + 0.3 * _rand(8, 64, 64, seed=12, lo=10, hi=900)
    ab, ba = pm.q2n(ref, fus), pm.q2n(fus, ref)
    assert 0.2 < ab < 1 and abs(ab - ba) > 1e-3
    assert abs(ab - _ref_q2n(_hwc(ref), _hwc(fus))) <= 1e-9
    assert abs(ba - _ref_q2n(_hwc(fus), _hwc(ref))) <= 1e-9


def test_q2n_toolbox_rounds_like_matlab_uint16_and_scales():
    ref = _rand(4, 32, 32, seed=13)  # in [0, 1]: refused without a scale
    with pytest.raises(ValueError, match="scale="):
        pm.q2n(ref, ref)
    fus = ref + 0.01 * _rand(4, 32, 32, seed=14, lo=-1)
    got = pm.q2n(ref, fus, scale=255)
    want = _ref_q2n(_hwc(ref * 255), _hwc(fus * 255))
    assert abs(got - want) <= 1e-9
    x = torch.tensor([0.5, 1.5, 2.5, -0.4, 65535.6, float("nan")], dtype=F64)
    assert pm.matlab_uint16(x).tolist() == [1.0, 2.0, 3.0, 0.0, 65535.0, 0.0]


def test_d_lambda_khan_toolbox_is_one_minus_q2n_of_the_genmtf_filtered_image():
    ms = _rand(4, 16, 16, seed=15, lo=100, hi=1500)
    fused = interp23(ms, 4) + 30 * _rand(4, 64, 64, seed=16, lo=-1)
    gains = get_sensor("QB").ms_gains
    low = np.stack([_ref_imfilter_replicate(fused[b].numpy(), _ref_genmtf(gains[b], 4))
                    for b in range(4)], 2)
    want = 1 - _ref_q2n(_hwc(interp23(ms, 4)), low)
    assert abs(pm.d_lambda_khan(fused, ms, 4, "QB") - want) <= 1e-9


def test_full_resolution_toolbox_composes_and_every_index_takes_convention():
    ms = _rand(4, 16, 16, seed=17, lo=100, hi=1500)
    pan = _rand(1, 64, 64, seed=18, lo=100, hi=1500)
    fused = interp23(ms, 4) + 0.2 * (pan - pan.mean())
    out = pm.full_resolution(fused, ms, pan, 4, "QB")
    assert out["D_lambda"] == pytest.approx(pm.d_lambda(fused, ms, 4), abs=0)
    assert out["QNR"] == pytest.approx((1 - out["D_lambda"]) * (1 - out["D_s"]), rel=1e-14)
    assert out["HQNR"] == pytest.approx((1 - out["D_lambda_K"]) * (1 - out["D_s"]), rel=1e-14)
    ref = _rand(4, 32, 32, seed=19, lo=100, hi=1500)
    for fn, args in [(pm.sam, (ref, ref)), (pm.ergas, (ref, ref, 4)), (pm.q_index, (ref, ref)),
                     (pm.scc, (ref, ref)), (pm.q2n, (ref, ref)),
                     (pm.uiqi, (ref[0], ref[0])), (pm.reduced_resolution, (ref, ref, 4)),
                     (pm.d_lambda, (fused, ms, 4)), (pm.d_s, (fused, ms, pan, 4)),
                     (pm.qnr, (fused, ms, pan, 4)), (pm.d_lambda_khan, (fused, ms, 4)),
                     (pm.hqnr, (fused, ms, pan, 4)), (pm.full_resolution, (fused, ms, pan, 4))]:
        fn(*args, convention="legacy")
        fn(*args, convention="toolbox")
        with pytest.raises(ValueError, match="convention: expected one of"):
            fn(*args, convention="matlab")


@pytest.mark.parametrize("shape,ratio", [((3, 16, 16), 4), ((2, 5, 7), 2), ((1, 3, 4), 4),
                                         ((8, 9, 6), 8)])
def test_interp23_polyphase_equals_zero_insertion_and_23_tap_filtering(shape, ratio):
    """interp23.m: zero insertion then the 23-tap kernel along rows and columns, circular
    borders (a direct loop transcription), also for sides shorter than the kernel."""
    from hyperleaf.pansharpen.filters import INTERP23_HALF

    k = np.concatenate([np.array(INTERP23_HALF)[::-1], np.array(INTERP23_HALF)[1:]])
    x = _rand(*shape, seed=21)
    y = x.numpy()
    first, r = True, ratio
    while r > 1:
        c, h, w = y.shape
        up = np.zeros((c, 2 * h, 2 * w))
        o = 1 if first else 0
        up[:, o::2, o::2] = y
        rows = np.zeros_like(up)
        for j in range(2 * w):
            for t in range(-11, 12):
                rows[:, :, j] += k[t + 11] * up[:, :, (j + t) % (2 * w)]
        y = np.zeros_like(up)
        for i in range(2 * h):
            for t in range(-11, 12):
                y[:, i, :] += k[t + 11] * rows[:, (i + t) % (2 * h), :]
        first, r = False, r // 2
    got = interp23(x, ratio)
    assert np.abs(got.numpy() - y).max() <= 1e-14
    assert interp23(x.float(), ratio).dtype == torch.float32


def test_docs_conventions_table_is_rendered_from_the_results_file():
    import importlib.util
    import json as _json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_pansharpen",
                                                  root / "benchmarks" / "bench_pansharpen.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rec = _json.loads((root / "results" / "pansharpen_conventions.json").read_text())
    doc = (root / "docs" / "pansharpening.md").read_text()
    assert mod.BEGIN + "\n\n" + mod.render(rec) + "\n\n" + mod.END in doc
    assert rec["pleiades_lrms_max_abs_diff"]["toolbox"] <= 1e-10
