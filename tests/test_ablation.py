"""``hyperleaf ablate`` / ``hyperleaf.experiments``: the statistics against closed forms and
scipy, the paired differences, the split by name, a tiny end-to-end ablation (tables, JSON, CSV,
plot), parallel == serial, and the command line's error lines."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from hyperleaf.cli import main as cli_main
from hyperleaf.experiments import (
    AblationError,
    AblationSpec,
    confidence_interval,
    heldout_count,
    make_split_view,
    markdown_report,
    paired_difference,
    run_ablation,
    split_by_name,
    summarise,
    t_critical,
)

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------- statistics


def test_t_critical_matches_closed_forms():
    # dof 1 is the Cauchy law: F(t) = 1/2 + atan(t)/pi, so t_{0.975} = tan(0.475 pi).
    assert t_critical(0.95, 1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-12)
    # dof 2: F(t) = 1/2 + t / (2 sqrt(t^2 + 2)); F = 0.975 gives t^2 = 2 q^2 / (1 - q^2), q=0.95.
    q = 0.95
    assert t_critical(0.95, 2) == pytest.approx(math.sqrt(2 * q * q / (1 - q * q)), rel=1e-12)
    # 90 % with dof 2: q = 0.90.
    assert t_critical(0.90, 2) == pytest.approx(math.sqrt(2 * 0.81 / (1 - 0.81)), rel=1e-12)
    # large dof tends to the normal quantile 1.959964
    assert t_critical(0.95, 10**7) == pytest.approx(stats.norm.ppf(0.975), rel=1e-6)


def test_confidence_interval_by_hand_and_against_scipy():
    ci = confidence_interval([1.0, 2.0, 3.0])
    t2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))
    assert ci.mean == 2.0 and ci.sd == pytest.approx(1.0, rel=1e-15) and ci.n == 3
    assert ci.half_width == pytest.approx(t2 / math.sqrt(3), rel=1e-12)
    assert (ci.low, ci.high) == pytest.approx((2 - t2 / math.sqrt(3), 2 + t2 / math.sqrt(3)))
    rng = np.random.default_rng(5)
    for k in (2, 3, 5, 8):
        xs = rng.normal(3.0, 2.0, size=k)
        ci = confidence_interval(xs, level=0.95)
        lo, hi = stats.t.interval(0.95, k - 1, loc=xs.mean(), scale=stats.sem(xs))
        assert (ci.low, ci.high) == pytest.approx((lo, hi), rel=1e-10, abs=1e-12)
        assert ci.sd == pytest.approx(np.std(xs, ddof=1), rel=1e-12)
    assert confidence_interval([4.0, 4.0, 4.0]).half_width == 0.0


@pytest.mark.parametrize("values", [[], [1.0]])
def test_confidence_interval_needs_two_values(values):
    with pytest.raises(AblationError, match="K >= 2") as info:
        confidence_interval(values)
    assert info.value.key == "seeds"
    with pytest.raises(AblationError, match="non-finite"):
        confidence_interval([1.0, float("nan")])


def test_paired_difference_by_hand_and_against_ttest_rel():
    d = paired_difference([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])
    assert d.per_seed == (2.0, 3.0, 1.0)
    # mean 2, s = 1: t = 2 / (1 / sqrt 3) = 2 sqrt 3
    assert d.t == pytest.approx(2 * math.sqrt(3), rel=1e-12)
    assert d.interval.mean == 2.0
    rng = np.random.default_rng(11)
    for k in (2, 3, 6):
        a, b = rng.normal(size=k), rng.normal(size=k)
        d = paired_difference(a, b)
        ref = stats.ttest_rel(a, b)
        assert d.t == pytest.approx(ref.statistic, rel=1e-10)
        assert d.p == pytest.approx(ref.pvalue, rel=1e-9)
        assert d.per_seed == pytest.approx(tuple(a - b), abs=0)
        # the paired interval is the one-sample interval of the differences, not of the arms
        assert d.interval == confidence_interval(a - b)
    same = paired_difference([1.0, 2.0], [1.0, 2.0])
    assert math.isnan(same.t) and same.p == 1.0 and same.interval.half_width == 0.0
    shifted = paired_difference([2.0, 3.0], [1.0, 2.0])
    assert shifted.t == math.inf and shifted.p == 0.0
    with pytest.raises(AblationError, match="one of each per seed"):
        paired_difference([1.0, 2.0], [1.0])


def _runs(values: dict[tuple[str, int], dict[str, float]]):
    return [{"arm": a, "seed": s, "metrics": m} for (a, s), m in values.items()]


def _with_images(vals):
    # one held-out image per run, its score the run's score
    return [{**r, "images": [{"image": "a", **r["metrics"]}]} for r in _runs(vals)]


def test_summarise_pairs_by_seed_and_refuses_verdicts_below_five_seeds():
    # leaf beats ship on EN by 1 +- 0.1 for every seed: with K = 3 seeds still no verdict.
    vals = {}
    for s, (en, sd, nabf) in enumerate([(5.0, 30.0, 0.10), (6.0, 35.0, 0.20), (7.0, 40.0, 0.30)]):
        vals["ship", s] = {"EN": en, "SD": sd, "Nabf": nabf}
        vals["leaf", s] = {"EN": en + 1 + 0.1 * (s - 1), "SD": sd + (-1.0, 2.0, -1.5)[s],
                           "Nabf": nabf + 0.5 + 0.01 * s}
    out = summarise(_with_images(vals), ("ship", "leaf"), (0, 1, 2), ("EN", "SD", "Nabf"),
                    n_boot=500)
    comp = out["paired"]["leaf-ship"]
    assert comp["EN"]["per_seed"] == pytest.approx([0.9, 1.0, 1.1])
    assert {comp[m]["verdict"] for m in comp} == {"too few seeds"}
    assert comp["EN"]["sign_p"] == 0.25  # 3 pairs: the exact sign test cannot go lower
    assert out["arms"]["ship"]["EN"]["mean"] == 6.0
    assert out["arms"]["ship"]["EN"]["half_width"] == pytest.approx(
        t_critical(0.95, 2) * 1.0 / math.sqrt(3))
    assert "Unit of replication" in out["unit"]
    with pytest.raises(AblationError, match="no record"):
        summarise(_runs(vals), ("ship", "leaf"), (0, 1, 2, 3), ("EN",))


def test_summarise_verdicts_with_eight_seeds_and_holm():
    # EN: leaf higher by ~1 every seed -> better. Nabf (lower is better): leaf higher by ~0.5
    # -> SHIP better. SD: differences within +-0.2 around 0, min effect 1.0 -> no difference.
    # SF: differences +-5 around 0, min effect 0.5 -> too noisy to say.
    rng = np.random.default_rng(0)
    vals = {}
    for s in range(8):
        base = {"EN": 5 + s, "SD": 30 + s, "Nabf": 0.1 * s, "SF": 10 + s}
        vals["ship", s] = dict(base)
        vals["leaf", s] = {"EN": base["EN"] + 1 + 0.05 * rng.standard_normal(),
                           "SD": base["SD"] + 0.1 * (-1) ** s,
                           "Nabf": base["Nabf"] + 0.5 + 0.01 * rng.standard_normal(),
                           "SF": base["SF"] + 5 * (-1) ** s + rng.standard_normal()}
    metrics = ("EN", "SD", "Nabf", "SF")
    out = summarise(_with_images(vals), ("ship", "leaf"), tuple(range(8)), metrics, n_boot=2000)
    comp = out["paired"]["leaf-ship"]
    assert comp["EN"]["verdict"] == "SHIP+LEAF better"
    assert comp["Nabf"]["verdict"] == "SHIP better"
    assert comp["SD"]["verdict"] == "no difference (within ±1)"
    assert comp["SF"]["verdict"] == "too noisy to say"
    # Holm over the table's 4 tests, recomputed here by the step-down rule
    ps = [comp[m]["p"] for m in metrics]
    order = sorted(range(4), key=lambda i: ps[i])
    running, expect = 0.0, [0.0] * 4
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (4 - rank) * ps[i]))
        expect[i] = running
    assert [comp[m]["p_holm"] for m in metrics] == pytest.approx(expect, rel=1e-12)
    # the same table with the min effect of SD raised past the noise keeps "no difference";
    # lowered below it, SD becomes "too noisy to say"
    out2 = summarise(_with_images(vals), ("ship", "leaf"), tuple(range(8)), metrics,
                     min_effect={"SD": 0.01}, n_boot=2000)
    assert out2["paired"]["leaf-ship"]["SD"]["verdict"] == "too noisy to say"


# ---------------------------------------------------------------------------- split


def test_split_is_by_name_hash_and_independent_of_order():
    pairs = [SimpleNamespace(name=str(i)) for i in range(1, 22)]
    ranked = sorted((hashlib.sha256(p.name.encode()).hexdigest(), p.name) for p in pairs)
    expect = {name for _h, name in ranked[:5]}
    tr, ho = split_by_name(pairs, 5)
    assert {p.name for p in ho} == expect and len(tr) == 16
    assert [p.name for p in tr] == [p.name for p in pairs if p.name not in expect]  # order kept
    shuffled = pairs[:]
    random.Random(3).shuffle(shuffled)
    assert {p.name for p in split_by_name(shuffled, 5)[1]} == expect
    # a subset of names keeps its members' fate relative to each other: same rank rule
    assert {p.name for p in split_by_name(pairs[:10], 3)[1]} == {
        n for _h, n in sorted((hashlib.sha256(str(i).encode()).hexdigest(), str(i))
                              for i in range(1, 11))[:3]}
    assert (heldout_count(21), heldout_count(40), heldout_count(40, 8)) == (5, 10, 8)
    for bad in (0, 21):
        with pytest.raises(AblationError, match="heldout"):
            heldout_count(21, bad)
    with pytest.raises(AblationError, match="at least 2 pairs"):
        heldout_count(1)
    with pytest.raises(AblationError, match="share a name"):
        split_by_name([SimpleNamespace(name="a"), SimpleNamespace(name="a")], 1)


def _write_pairs(folder: Path, n: int = 6, side: int = 48) -> Path:
    from hyperleaf.data import SyntheticFusion
    from hyperleaf.io import write_png

    folder.mkdir(parents=True, exist_ok=True)
    ds = SyntheticFusion(n, side, "val", 0)
    for i in range(n):
        s = ds[i]
        write_png(folder / f"IR{i + 1}.png", s["ir"][0].numpy())
        write_png(folder / f"VIS{i + 1}.png", s["vis"][0].numpy())
    return folder


def test_split_view_trains_on_train_pairs_and_validates_on_heldout(tmp_path):
    from hyperleaf.data import PairDataset
    from hyperleaf.io import find_pairs_in

    pairs = find_pairs_in(_write_pairs(tmp_path / "src", n=7))
    tr, ho = split_by_name(pairs, 3)
    view = make_split_view(tr, ho, tmp_path / "view")
    fit = PairDataset.from_folder(view, crop=16, train=True, val_fraction=3 / 7)
    val = PairDataset.from_folder(view, crop=16, train=False, val_fraction=3 / 7)
    assert sorted(p.name for p in fit.pairs) == sorted(f"fit-{p.name}" for p in tr)
    assert sorted(p.name for p in val.pairs) == sorted(f"held-{p.name}" for p in ho)
    for p in val.pairs:  # links to the original files
        src = next(q for q in ho if f"held-{q.name}" == p.name)
        assert p.ir.resolve() == src.ir.resolve() and p.vis.resolve() == src.vis.resolve()
    make_split_view(tr, ho, tmp_path / "view")  # idempotent


# ---------------------------------------------------------------------------- end to end

TINY = {"n_feat": 4, "val_crop": 16, "ball_dim": 4, "hdgfb_hidden": 8, "steps": 2,
        "crop": 16, "batch_size": 2}


@pytest.fixture(scope="module")
def tiny_ablations(tmp_path_factory):
    """The same tiny ablation (2 seeds x {ship, leaf}, 2 steps, 16-pixel crops, 6 synthetic
    48x48 pairs) run serially and with 2 worker processes."""
    root = tmp_path_factory.mktemp("ablation")
    data = _write_pairs(root / "pairs")
    out, said = {}, {}
    for workers in (1, 2):
        spec = AblationSpec(data=str(data), out=str(root / f"w{workers}"), seeds=(0, 1),
                            arms=("ship", "leaf"), config=dict(TINY), heldout=2,
                            workers=workers)
        said[workers] = []
        out[workers] = run_ablation(spec, report=said[workers].append)
    return data, root, out, said


def test_tiny_ablation_writes_tables_json_csv_plot(tiny_ablations):
    from hyperleaf.io import find_pairs_in
    from hyperleaf.metrics.folder import evaluate_folder

    data, root, out, _said = tiny_ablations
    rec = out[1]
    folder = root / "w1"
    for name in ("ablation.json", "ablation.csv", "ablation.md", "ablation.png"):
        assert (folder / name).is_file(), name
    assert not list(folder.glob(".*.tmp"))
    assert json.loads((folder / "ablation.json").read_text()) == json.loads(json.dumps(rec))
    assert rec["format"] == "hyperleaf-ablation/2"
    assert rec["metrics"] == ["EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM"]
    assert len(rec["split"]["heldout"]) == 2 and len(rec["split"]["train"]) == 4
    assert {(r["arm"], r["seed"]) for r in rec["runs"]} == {(a, s) for a in ("ship", "leaf")
                                                            for s in (0, 1)}
    held = [p for p in find_pairs_in(data) if p.name in rec["split"]["heldout"]]
    for r in rec["runs"]:
        run_dir = Path(r["out"])
        cfg = (run_dir / "config.yaml").read_text()
        assert f"seed: {r['seed']}" in cfg and f"leaf: {str(r['arm'] == 'leaf').lower()}" in cfg
        # the fused held-out images, re-measured independently of the run, give its scores
        rows = evaluate_folder(run_dir / "heldout", held, rec["metrics"])
        assert [row["image"] for row in rows] == [im["image"] for im in r["images"]]
        for row, im in zip(rows, r["images"], strict=True):
            for m in rec["metrics"]:
                assert row[m] == im[m]
        for m in rec["metrics"]:
            assert r["metrics"][m] == pytest.approx(np.mean([im[m] for im in r["images"]]),
                                                    rel=1e-14)
    # the summary is the interval of the per-run scores, and the paired differences by seed
    for m in rec["metrics"]:
        per = {(r["arm"], r["seed"]): r["metrics"][m] for r in rec["runs"]}
        ci = confidence_interval([per["leaf", 0], per["leaf", 1]])
        assert rec["summary"]["arms"]["leaf"][m]["half_width"] == pytest.approx(ci.half_width)
        assert rec["summary"]["paired"]["leaf-ship"][m]["per_seed"] == pytest.approx(
            [per["leaf", 0] - per["ship", 0], per["leaf", 1] - per["ship", 1]])
    md = (folder / "ablation.md").read_text()
    assert md == markdown_report(rec)
    assert "| metric | SHIP | SHIP+LEAF |" in md and "Paired difference SHIP+LEAF − SHIP" in md
    assert "Student t, K - 1 = 1 dof" in md and "held out" in md
    assert "Unit of replication: the training run" in md and "| parameters |" in md
    assert all(c["verdict"] == "too few seeds"
               for c in rec["summary"]["paired"]["leaf-ship"].values())
    assert rec["parameters"]["leaf"] > rec["parameters"]["ship"]
    with open(folder / "ablation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * (2 + 1)
    assert {r["image"] for r in rows} == {*rec["split"]["heldout"], "mean"}
    assert all(r["convention"] == "standard" for r in rows)
    assert {r["unit_of_replication"] for r in rows} == {"training run (seed)"}


def test_parallel_equals_serial(tiny_ablations):
    _data, _root, out, said = tiny_ablations
    key = lambda r: (r["arm"], r["seed"])  # noqa: E731
    serial = sorted(out[1]["runs"], key=key)
    parallel = sorted(out[2]["runs"], key=key)
    assert [key(r) for r in serial] == [key(r) for r in parallel]
    for a, b in zip(serial, parallel, strict=True):
        assert a["images"] == b["images"]  # bit-equal: same seeds, deterministic training
        assert a["val_last"] == b["val_last"]
    assert out[1]["summary"] == out[2]["summary"]
    for workers in (1, 2):  # every finished run is reported, counted in order of completion
        done = [m for m in said[workers] if m.startswith("[")]
        assert [m.split("]")[0] for m in done] == ["[1/4", "[2/4", "[3/4", "[4/4"]
        assert "2 held out" in said[workers][0]


def test_existing_ablation_folder_is_refused(tiny_ablations):
    data, root, _out, _said = tiny_ablations
    spec = AblationSpec(data=str(data), out=str(root / "w1"), seeds=(0, 1), config=dict(TINY))
    with pytest.raises(AblationError, match="already holds an ablation"):
        run_ablation(spec, report=lambda msg: None)


# ---------------------------------------------------------------------------- command line


def _cli_error(argv, capsys) -> str:
    rc = cli_main(["ablate", *argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyperleaf ablate: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_cli_errors(tmp_path, capsys):
    data = _write_pairs(tmp_path / "pairs", n=4)
    out = tmp_path / "out"
    base = ["--data", str(data), "--out", str(out), "--steps", "2", "--crop", "16"]
    assert "--seeds: need K >= 2" in _cli_error([*base, "--seeds", "1"], capsys)
    assert "--seeds: need K >= 2" in _cli_error([*base, "--seeds", "7,"], capsys)
    assert "--seeds: repeated" in _cli_error([*base, "--seeds", "1,1"], capsys)
    assert "--seeds: expected" in _cli_error([*base, "--seeds", "a,b"], capsys)
    assert "--arms: unknown arm 'hyper'" in _cli_error([*base, "--arms", "ship,hyper"], capsys)
    assert "--arms: need at least two" in _cli_error([*base, "--arms", "leaf"], capsys)
    assert "--data: not a folder" in _cli_error(
        ["--data", str(tmp_path / "missing"), "--out", str(out)], capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "--data:" in _cli_error(["--data", str(empty), "--out", str(out)], capsys)
    assert "--workers: expected an integer >= 1" in _cli_error([*base, "--workers", "0"],
                                                               capsys)
    assert "--heldout: expected 1 to 3" in _cli_error([*base, "--heldout", "4"], capsys)
    assert "--metrics: unknown metric 'XYZ'" in _cli_error([*base, "--metrics", "EN,XYZ"],
                                                           capsys)
    assert "--crop: must be >= 16" in _cli_error([*base[:-1], "8"], capsys)
    assert "--data:" in _cli_error([*base[:-1], "64"], capsys)  # larger than the images
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("no_such_key: 1\n")
    assert "unknown key 'no_such_key'" in _cli_error([*base, "--config", str(bad_cfg)], capsys)
    own = tmp_path / "own.yaml"
    own.write_text("seed: 3\n")
    assert "set by the ablation itself" in _cli_error([*base, "--config", str(own)], capsys)
    assert "--init:" in _cli_error([*base, "--init", str(tmp_path / "none.pth")], capsys)
    assert not out.exists()  # nothing written by any refused command


def test_the_old_module_entry_point_names_the_command(tmp_path):
    """`python -m hyperleaf.train.ablation` is no longer a second front end (issue 21: no
    importlib around the import contracts): it says which command to run, exit status 2."""
    res = subprocess.run([sys.executable, "-m", "hyperleaf.train.ablation", "--data",
                          str(tmp_path / "missing")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "run `hyperleaf ablate ARGS`" in res.stderr
    res = subprocess.run([sys.executable, "-m", "hyperleaf", "ablate", "--data",
                          str(tmp_path / "missing"), "--out", str(tmp_path / "o")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--data: not a folder" in res.stderr


@pytest.mark.parametrize("seed", [0, 3])
def test_arms_share_their_common_initial_weights(seed):
    """From scratch, the same seed gives SHIP's layers the same initial weights in both arms
    (the trainer seeds torch, then builds; LEAF's modules are drawn after SHIP's), so the
    paired difference compares the arms from one start."""
    import torch

    from hyperleaf.train import TrainConfig
    from hyperleaf.train.build import build_objective

    nets = {}
    for leaf in (False, True):
        torch.manual_seed(seed)
        nets[leaf] = build_objective(TrainConfig(leaf=leaf, n_feat=4, seed=seed).validate()).net
    plain, with_leaf = (n.state_dict() for n in (nets[False], nets[True]))
    assert set(plain) < set(with_leaf)  # LEAF only adds
    assert all(torch.equal(plain[k], with_leaf[k]) for k in plain)
    # ...and a different seed does change them (the check can fail)
    torch.manual_seed(seed + 1)
    other = build_objective(TrainConfig(leaf=False, n_feat=4).validate()).net.state_dict()
    assert not all(torch.equal(plain[k], other[k]) for k in plain)


def test_report_cells_hold_no_table_separator():
    """Every verdict and cell fits a markdown table: no '|' inside a cell."""
    from hyperleaf.experiments import verdict

    words = {verdict(8, 0.6, -0.02, 0.03, -0.05, 0.05, 0.0, True, 0.1, "leaf", "ship"),
             verdict(8, 0.01, 0.2, 0.4, 0.1, 0.5, 0.3, True, 0.5, "leaf", "ship"),
             verdict(8, 0.6, -0.5, 0.6, -0.4, 0.4, 0.0, True, 0.1, "leaf", "ship"),
             verdict(3, 0.6, -0.5, 0.6, -0.4, 0.4, 0.0, True, 0.1, "leaf", "ship")}
    assert all("|" not in w for w in words), words
