r"""Does LEAF help? K seeds x {SHIP, SHIP + LEAF}, evaluated on held-out real pairs.

``hyperleaf ablate`` (and ``python -m hyperleaf.train.ablation``, the same command line) trains
every *arm* (:data:`ARMS`) with every seed on the same training pairs, the same budget and the
same seeds, fuses the **held-out** pairs (whole images) with each trained network and measures
them with :mod:`hyperleaf.metrics` (by default :data:`DEFAULT_METRICS`). It reports, per metric:

* per arm, the mean over seeds of the per-run score (a run's score is the mean over the held-out
  images) with its 95 % confidence interval, ``mean ± t_{0.975, K-1} · s / sqrt(K)`` (Student t,
  ``K - 1`` degrees of freedom, ``s`` the sample standard deviation, ``ddof = 1``);
* per other arm, the **paired** difference to the reference arm (the first, ``ship``) seed by
  seed, ``d_k = score(arm, k) - score(ship, k)``, with the same interval on the ``d_k``, the
  paired t statistic ``mean(d) / (s_d / sqrt(K))`` and its two-sided p-value (what
  ``scipy.stats.ttest_rel`` computes), and a verdict: better/worse when the interval excludes 0
  (in the metric's direction), else "not distinguishable".

Split: every pair is ranked by the SHA-256 of its name (:func:`split_by_name`); the first
``n_heldout`` are held out, the rest train. The rule depends on the names only (not on the
folder's order or the seeds), so adding a run or a seed never moves a pair between the parts.
Training sees only the training pairs: the runs read a *split view* of the data folder
(``OUT/data``: symbolic links named ``fit-NAME`` and ``held-NAME``) whose last ``n_heldout``
pairs in name order, the ones :func:`hyperleaf.data.pairs.split_pairs` holds out, are exactly
the held-out pairs (the trainer's own validation, at step 0 and at the end, uses their centre
crops; nothing is selected on it).

Outputs in ``OUT``: ``runs/ARM-seedK/`` (each a ``hyperleaf train`` run folder, plus
``heldout/NAME.png``, the fused held-out images, and ``heldout.json``), ``ablation.json`` (every
run's per-image and mean metrics, the summary, the split, the configuration, wall times),
``ablation.csv`` (one row per run and held-out image, and the run's mean), ``ablation.md``
(the printed tables) and ``ablation.png`` (per metric: every seed's score per arm, paired seeds
joined, means with their intervals). Every file is written atomically.

Example::

    >>> from hyperleaf.train.ablation import confidence_interval
    >>> ci = confidence_interval([1.0, 2.0, 3.0])
    >>> round(ci.mean, 6), round(ci.half_width, 6)    # 4.302653 * 1 / sqrt(3)
    (2.0, 2.484138)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import t as student_t

from hyperleaf.atomic import atomic_write_bytes, atomic_write_text, check_writable_location
from hyperleaf.data.pairs import split_pairs
from hyperleaf.io import (
    ImageError,
    ImagePair,
    check_pairs,
    find_pairs_in,
    image_size,
    read_gray,
    read_gray_levels,
    write_png,
)
from hyperleaf.metrics import evaluate
from hyperleaf.metrics.folder import evaluate_pair, quiet_third_party
from hyperleaf.metrics.registry import check_convention, get, resolve
from hyperleaf.train.build import load_run
from hyperleaf.train.config import ConfigError, TrainConfig
from hyperleaf.train.trainer import train

__all__ = ["ARMS", "ARM_LABELS", "DEFAULT_METRICS", "AblationError", "AblationSpec",
           "Interval", "PairedDifference", "confidence_interval", "paired_difference",
           "t_critical", "heldout_count", "split_by_name", "make_split_view", "run_ablation",
           "summarise", "markdown_report", "plot_ablation", "FORMAT"]

#: Format tag of ``ablation.json``.
FORMAT = "hyperleaf-ablation/1"

#: The arms: TrainConfig keys each arm sets over the shared configuration. ``leaf`` uses the
#: configuration's H2FR (geodesic by default); ``leaf-paper`` the seed's loss (paper mode).
ARMS: dict[str, dict[str, Any]] = {
    "ship": {"leaf": False},
    "leaf": {"leaf": True},
    "leaf-paper": {"leaf": True, "h2fr_mode": "paper", "h2fr_core": "origin"},
}
ARM_LABELS = {"ship": "SHIP", "leaf": "SHIP+LEAF", "leaf-paper": "SHIP+LEAF (paper H2FR)"}

#: The metrics most infrared-visible fusion papers tabulate (e.g. CDDFuse, SHIP's comparisons).
DEFAULT_METRICS = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")

#: TrainConfig keys the ablation sets itself for every run (a configuration may not).
_OWN_KEYS = frozenset({"seed", "data", "val_fraction", "out", "leaf"})


class AblationError(ValueError):
    """An argument of the ablation is invalid; ``key`` names it (``seeds``, ``arms``, ...)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


# --------------------------------------------------------------------------- statistics


def t_critical(level: float, dof: int) -> float:
    """The two-sided Student t critical value: ``t`` with ``P(|T| <= t) = level`` for ``dof``
    degrees of freedom (``scipy.stats.t.ppf((1 + level) / 2, dof)``).

    >>> round(t_critical(0.95, 2), 6)
    4.302653
    """
    if not 0 < level < 1:
        raise AblationError(f"level: expected a probability in (0, 1), got {level!r}", "level")
    if dof < 1:
        raise AblationError(f"dof: need at least 1 degree of freedom (2 values), got {dof}",
                            "seeds")
    return float(student_t.ppf(0.5 + level / 2, dof))


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval ``[low, high] = mean ∓ half_width``."""

    mean: float
    half_width: float
    low: float
    high: float
    sd: float        # sample standard deviation (ddof = 1)
    n: int
    level: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def confidence_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``values`` (K >= 2 numbers) and its Student-t interval at ``level``:
    ``mean ± t_{(1+level)/2, K-1} · s / sqrt(K)``, ``s`` with ``ddof = 1``.

    Raises :class:`AblationError` for fewer than two values or a non-finite one.

    >>> confidence_interval([2.0, 2.0]).half_width
    0.0
    """
    xs = [float(v) for v in values]
    if len(xs) < 2:
        raise AblationError(f"seeds: a confidence interval needs at least 2 values (K >= 2), "
                            f"got {len(xs)}", "seeds")
    if not all(math.isfinite(v) for v in xs):
        raise AblationError(f"values: non-finite value among {xs}", "values")
    n = len(xs)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in xs) / (n - 1))
    half = t_critical(level, n - 1) * sd / math.sqrt(n)
    return Interval(mean, half, mean - half, mean + half, sd, n, level)


@dataclass(frozen=True)
class PairedDifference:
    """``treated - control`` seed by seed, its interval, the paired t statistic and p-value."""

    per_seed: tuple[float, ...]
    interval: Interval
    t: float
    p: float


def paired_difference(treated: Sequence[float], control: Sequence[float],
                      level: float = 0.95) -> PairedDifference:
    """Paired comparison of two arms run with the same seeds (``treated[k]`` and
    ``control[k]`` from seed k): ``d_k = treated[k] - control[k]``, the interval of their mean
    (:func:`confidence_interval`), ``t = mean(d) / (s_d / sqrt(K))`` and the two-sided p-value
    ``2 · P(T_{K-1} >= |t|)`` (equal to ``scipy.stats.ttest_rel(treated, control)``). All
    differences equal: ``t`` is ±inf (p 0), or nan (p 1) when they are all 0.

    >>> d = paired_difference([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])
    >>> d.per_seed, round(d.t, 6)
    ((2.0, 3.0, 1.0), 3.464102)
    """
    if len(treated) != len(control):
        raise AblationError(f"paired values: {len(treated)} treated vs {len(control)} control "
                            "(one of each per seed)", "seeds")
    d = tuple(float(a) - float(b) for a, b in zip(treated, control, strict=True))
    ci = confidence_interval(d, level)
    n = len(d)
    if ci.sd > 0:
        t = ci.mean / (ci.sd / math.sqrt(n))
        p = float(2 * student_t.sf(abs(t), n - 1))
    elif ci.mean == 0:
        t, p = float("nan"), 1.0
    else:
        t, p = math.copysign(math.inf, ci.mean), 0.0
    return PairedDifference(d, ci, float(t), p)


# --------------------------------------------------------------------------- split


def heldout_count(n_pairs: int, heldout: int | None = None, fraction: float = 0.25) -> int:
    """How many of ``n_pairs`` to hold out: ``heldout`` if given, else
    ``max(1, round(n_pairs · fraction))``; at least one pair must remain for training.

    >>> heldout_count(21), heldout_count(40), heldout_count(40, heldout=8)
    (5, 10, 8)
    """
    if n_pairs < 2:
        raise AblationError(f"data: need at least 2 pairs (1 to train, 1 held out), got "
                            f"{n_pairs}", "data")
    if heldout is None:
        if not 0 < fraction < 1:
            raise AblationError(f"heldout_fraction: expected a value in (0, 1), got {fraction}",
                                "heldout_fraction")
        heldout = max(1, round(n_pairs * fraction))
    if not 1 <= heldout <= n_pairs - 1:
        raise AblationError(f"heldout: expected 1 to {n_pairs - 1} of the {n_pairs} pairs, got "
                            f"{heldout}", "heldout")
    return int(heldout)


def _name_rank(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def split_by_name(pairs: Sequence[Any], n_heldout: int) -> tuple[list[Any], list[Any]]:
    """``(train, heldout)``: the ``n_heldout`` pairs whose names have the smallest SHA-256
    (hex digest of the UTF-8 name) are held out. Both parts keep the input order. The split
    depends on the names alone, not on their order or on anything random.

    >>> from types import SimpleNamespace as P
    >>> tr, ho = split_by_name([P(name=str(i)) for i in range(1, 6)], 2)
    >>> [p.name for p in ho], [p.name for p in tr]
    (['3', '4'], ['1', '2', '5'])
    """
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise AblationError("data: two pairs share a name", "data")
    n_heldout = heldout_count(len(names), n_heldout)
    held = set(sorted(names, key=lambda s: (_name_rank(s), s))[:n_heldout])
    return ([p for p in pairs if p.name not in held], [p for p in pairs if p.name in held])


def make_split_view(train: Sequence[Any], heldout: Sequence[Any], folder: str | Path) -> Path:
    """A folder ``folder/ir``, ``folder/vi`` of symbolic links, ``fit-NAME`` to each training
    pair and ``held-NAME`` to each held-out one (absolute targets, extensions kept), so that a
    ``hyperleaf train`` run with ``data: folder`` and ``val_fraction = len(heldout) / n``
    trains on exactly ``train`` and validates on ``heldout``. Returns ``folder``."""
    root = Path(folder)
    for part in ("ir", "vi"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for prefix, group in (("fit-", train), ("held-", heldout)):
        for p in group:
            for part, src in (("ir", Path(p.ir)), ("vi", Path(p.vis))):
                link = root / part / f"{prefix}{p.name}{src.suffix.lower()}"
                target = src.resolve()
                if link.is_symlink() and Path(os.readlink(link)) == target:
                    continue
                if link.exists() or link.is_symlink():
                    link.unlink()
                link.symlink_to(target)
    # The view must split exactly as intended; check with the trainer's own rule.
    found = find_pairs_in(root)
    fit, held = split_pairs(found, len(heldout) / len(found))
    if ({p.name for p in held} != {f"held-{p.name}" for p in heldout}
            or {p.name for p in fit} != {f"fit-{p.name}" for p in train}):
        raise AblationError(f"data: the split view {root} does not split as intended (stale "
                            "files from another ablation? use a new `out`)", "out")
    return root


# --------------------------------------------------------------------------- specification


@dataclass
class AblationSpec:
    """What to run. ``config``: TrainConfig keys shared by every run (``steps``, ``crop``,
    ``recipe``, ``init``, ...); the ablation sets ``seed``, ``data``, ``val_fraction``,
    ``out`` and the arm's keys itself."""

    data: str
    out: str
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ("ship", "leaf")
    config: dict[str, Any] | None = None
    heldout: int | None = None
    heldout_fraction: float = 0.25
    metrics: tuple[str, ...] = DEFAULT_METRICS
    convention: str = "standard"
    workers: int = 1
    level: float = 0.95

    def validate(self) -> AblationSpec:
        """Check every argument (no file is written); raises :class:`AblationError`."""
        seeds = tuple(self.seeds)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise AblationError(f"seeds: expected integers >= 0, got {seeds!r}", "seeds")
        if len(seeds) < 2:
            raise AblationError(f"seeds: need K >= 2 seeds for a confidence interval, got "
                                f"{len(seeds)}", "seeds")
        if len(set(seeds)) != len(seeds):
            raise AblationError(f"seeds: repeated seed in {seeds!r}", "seeds")
        self.seeds = seeds
        arms = tuple(self.arms)
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise AblationError(f"arms: unknown arm {unknown[0]!r}; known: "
                                f"{', '.join(ARMS)}", "arms")
        if len(arms) < 2 or len(set(arms)) != len(arms):
            raise AblationError(f"arms: need at least two different arms, got {arms!r}", "arms")
        self.arms = arms
        if (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                or self.workers < 1):
            raise AblationError(f"workers: expected an integer >= 1, got {self.workers!r}",
                                "workers")
        try:
            check_convention(self.convention)
            self.metrics = resolve(list(self.metrics))
        except ValueError as exc:
            key = "convention" if "convention" in str(exc) else "metrics"
            raise AblationError(str(exc), key) from None
        if not 0 < self.level < 1:
            raise AblationError(f"level: expected a value in (0, 1), got {self.level}", "level")
        clash = sorted(_OWN_KEYS & set(self.config or {}))
        if clash:
            raise AblationError(f"config: {', '.join(clash)} are set by the ablation itself "
                                "(per run and arm)", "config")
        return self


def _run_config(spec: AblationSpec, arm: str, seed: int, view: Path, n_pairs: int,
                n_heldout: int) -> dict[str, Any]:
    steps = int((spec.config or {}).get("steps", TrainConfig.steps))
    d = {"eval_every": steps, "save_every": steps, "log_every": max(1, steps // 10),
         **(spec.config or {}), **ARMS[arm], "seed": seed, "data": str(view),
         "val_fraction": n_heldout / n_pairs,
         "out": str(Path(spec.out) / "runs" / f"{arm}-seed{seed}")}
    return TrainConfig.from_dict(d, source="config").to_dict()


# --------------------------------------------------------------------------- one run


def _fuse_gray(net, ir, vis):
    """Fused luminance ``(H, W)`` float in [0, 1] of ``net`` for ``ir``/``vis`` (H, W)."""
    v = torch.from_numpy(np.ascontiguousarray(vis, dtype=np.float32))[None, None]
    i = torch.from_numpy(np.ascontiguousarray(ir, dtype=np.float32))[None, None]
    with torch.inference_mode():
        return net(v, i)[0, 0].clamp(0, 1).float().numpy()


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one ``(arm, seed)`` run and evaluate it on the held-out pairs (a worker's task).

    ``job``: ``{"arm", "seed", "config" (a TrainConfig dict), "heldout" ([name, ir, vis]
    lists), "metrics", "convention"}``. Returns the run's record (see ``ablation.json``) and
    writes ``heldout/NAME.png`` and ``heldout.json`` into the run folder.
    """


    quiet_third_party()
    cfg = TrainConfig.from_dict(job["config"], source="ablation")
    t0 = time.perf_counter()
    result = train(cfg, progress=False)
    t_train = time.perf_counter() - t0

    t1 = time.perf_counter()
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)  # as in training: same sums in every process
    try:
        objective, _ = load_run(cfg.out)
        net = objective.net.eval()
        fused_dir = Path(cfg.out) / "heldout"
        fused_dir.mkdir(exist_ok=True)
        images = []
        for name, ir_path, vis_path in job["heldout"]:
            pair = ImagePair(name=name, ir=Path(ir_path), vis=Path(vis_path))
            write_png(fused_dir / f"{name}.png",
                      _fuse_gray(net, read_gray(pair.ir), read_gray(pair.vis)))
            images.append(evaluate_pair(fused_dir, pair, job["metrics"], job["convention"]))
    finally:
        torch.set_num_threads(threads)
    t_eval = time.perf_counter() - t1
    mean = {m: math.fsum(r[m] for r in images) / len(images) for m in job["metrics"]}
    record = {"arm": job["arm"], "seed": job["seed"], "out": str(cfg.out),
              "train_seconds": t_train, "eval_seconds": t_eval, "metrics": mean,
              "images": images, "val_last": dict(result.val_last),
              "train_loss_first": result.first_loss, "train_loss_last": result.last_loss,
              "skipped_nonfinite": result.skipped_nonfinite}
    atomic_write_text(Path(cfg.out) / "heldout.json", json.dumps(record, indent=2) + "\n")
    return record


def _run_jobs(jobs: list[dict[str, Any]], workers: int,
              report: Callable[[str], None]) -> list[dict[str, Any]]:
    """Records of ``jobs`` in job order; ``workers`` > 1 runs them in spawned processes."""
    done: list[dict[str, Any] | None] = [None] * len(jobs)

    def note(i: int, rec: dict[str, Any]) -> None:
        done[i] = rec
        n = sum(r is not None for r in done)
        scores = ", ".join(f"{m} {v:.4f}" for m, v in list(rec["metrics"].items())[:4])
        report(f"[{n}/{len(jobs)}] {rec['arm']} seed {rec['seed']}: train "
               f"{rec['train_seconds']:.0f} s, held-out evaluation {rec['eval_seconds']:.0f} s; "
               f"{scores}, ...")

    def failed(job: dict[str, Any], exc: BaseException) -> AblationError:
        return AblationError(f"run {job['arm']} seed {job['seed']} "
                             f"({job['config']['out']}) failed: {exc}", "run")

    if workers == 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            try:
                note(i, run_one(job))
            except (ValueError, RuntimeError, OSError) as exc:
                raise failed(job, exc) from exc
        return done  # type: ignore[return-value]


    # spawn, not fork: a forked child would inherit this process's torch thread pools.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures = {pool.submit(run_one, job): i for i, job in enumerate(jobs)}
        pending = set(futures)
        while pending:
            # each finished run is reported at once; the first failure stops the rest
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = futures[fut]
                exc = fut.exception()
                if exc is not None:
                    for other in pending:
                        other.cancel()
                    raise failed(jobs[i], exc) from exc
                note(i, fut.result())
    return done  # type: ignore[return-value]


# --------------------------------------------------------------------------- summary


def summarise(runs: Sequence[dict[str, Any]], arms: Sequence[str], seeds: Sequence[int],
              metrics: Sequence[str], level: float = 0.95) -> dict[str, Any]:
    """Per arm and metric the interval of the per-run scores; per non-reference arm and metric
    the paired difference to the reference arm ``arms[0]`` (seed by seed, in ``seeds`` order).

    ``runs``: records with ``arm``, ``seed`` and ``metrics`` (``{name: score}``).
    """
    score = {(r["arm"], r["seed"]): r["metrics"] for r in runs}
    missing = [(a, s) for a in arms for s in seeds if (a, s) not in score]
    if missing:
        raise AblationError(f"runs: no record for {missing[:3]}", "runs")
    out: dict[str, Any] = {"level": level, "reference": arms[0], "arms": {}, "paired": {}}
    for a in arms:
        out["arms"][a] = {m: asdict(confidence_interval([score[a, s][m] for s in seeds], level))
                          for m in metrics}
    ref = arms[0]
    for a in arms[1:]:
        comp = {}
        for m in metrics:
            pd = paired_difference([score[a, s][m] for s in seeds],
                                   [score[ref, s][m] for s in seeds], level)
            up = get(m).higher_is_better
            ci = pd.interval
            if ci.excludes_zero():
                better = (ci.low > 0) == up
                verdict = f"{ARM_LABELS[a] if better else ARM_LABELS[ref]} better"
            else:
                verdict = "not distinguishable"
            comp[m] = {"per_seed": list(pd.per_seed), **asdict(ci), "t": pd.t, "p": pd.p,
                       "verdict": verdict}
        out["paired"][f"{a}-{ref}"] = comp
    return out


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def markdown_report(record: dict[str, Any]) -> str:
    """The tables ``hyperleaf ablate`` prints (and writes to ``ablation.md``), from the
    ``ablation.json`` record."""
    summ, arms, metrics = record["summary"], record["arms"], record["metrics"]
    seeds, split = record["seeds"], record["split"]
    k = len(seeds)
    pct = f"{100 * summ['level']:g} %"
    cfg = record["config"]
    budget = ", ".join(f"{key} {cfg[key]}" for key in ("steps", "batch_size", "crop", "lr",
                                                        "n_feat", "loss", "recipe", "init")
                       if cfg.get(key) is not None)
    lines = [
        f"Data: {record['data']}; {len(split['train'])} training pairs, "
        f"{len(split['heldout'])} held out ({split['rule']}): {', '.join(split['heldout'])}.",
        f"Budget per run: {budget}. Seeds: {', '.join(map(str, seeds))} (K = {k}). "
        f"Metrics: hyperleaf.metrics, convention {record['convention']}, on the whole "
        "held-out images; a run's score is its mean over them.",
        f"Cells: mean over seeds ± half-width of the {pct} confidence interval "
        f"(Student t, K - 1 = {k - 1} dof).", "",
        "| metric | " + " | ".join(ARM_LABELS[a] for a in arms) + " |",
        "|---|" + "---:|" * len(arms)]
    for m in metrics:
        cells = [f"{_fmt(summ['arms'][a][m]['mean'])} ± {_fmt(summ['arms'][a][m]['half_width'])}"
                 for a in arms]
        lines.append(f"| {m} {get(m).direction} | " + " | ".join(cells) + " |")
    ref = summ["reference"]
    for a in arms[1:]:
        comp = summ["paired"][f"{a}-{ref}"]
        name = f"{ARM_LABELS[a]} − {ARM_LABELS[ref]}"
        lines += ["", f"Paired difference {name}, seed by seed ({', '.join(map(str, seeds))}), "
                  f"mean ± {pct} CI half-width, paired t test:", "",
                  f"| metric | per seed | mean ± CI | {pct} CI | t | p | verdict |",
                  "|---|---|---:|---|---:|---:|---|"]
        for m in metrics:
            c = comp[m]
            per = ", ".join(f"{v:+.4f}" for v in c["per_seed"])
            lines.append(f"| {m} {get(m).direction} | {per} | {c['mean']:+.4f} ± "
                         f"{c['half_width']:.4f} | [{c['low']:+.4f}, {c['high']:+.4f}] | "
                         f"{c['t']:.2f} | {c['p']:.3f} | {c['verdict']} |")
    secs = [r["train_seconds"] for r in record["runs"]]
    evals = [r["eval_seconds"] for r in record["runs"]]
    lines += ["", f"Wall time: {record['wall_seconds'] / 60:.1f} min for {len(record['runs'])} "
              f"runs with {record['workers']} worker process(es); training {min(secs):.0f}-"
              f"{max(secs):.0f} s per run, held-out evaluation {min(evals):.0f}-"
              f"{max(evals):.0f} s per run."]
    return "\n".join(lines) + "\n"


def plot_ablation(record: dict[str, Any], path: str | Path) -> Path:
    """The ablation's figure, written to ``path`` (PNG) atomically.

    Upper panels, one per metric: every seed's score per arm (the runs of one seed joined by a
    grey line) and each arm's mean with its confidence interval. Lower panels: the paired
    differences to the reference arm, seed by seed (grey) and their mean with its interval
    (colour), with 0 dashed: an interval that crosses it is "not distinguishable".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms, metrics, seeds = record["arms"], record["metrics"], record["seeds"]
    summ = record["summary"]
    ref = summ["reference"]
    score = {(r["arm"], r["seed"]): r["metrics"] for r in record["runs"]}
    ncol = min(4, len(metrics))
    nblock = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(2 * nblock, ncol, figsize=(3.2 * ncol, 2.8 * 2 * nblock),
                             squeeze=False)
    top = [axes[r, c] for r in range(nblock) for c in range(ncol)]
    low = [axes[nblock + r, c] for r in range(nblock) for c in range(ncol)]
    xs = list(range(len(arms)))
    others = arms[1:]
    for i, m in enumerate(metrics):
        ax = top[i]
        for s in seeds:
            ax.plot(xs, [score[a, s][m] for a in arms], color="0.75", lw=0.8, zorder=1)
            ax.scatter(xs, [score[a, s][m] for a in arms], s=14, color="0.45", zorder=2)
        for x, a in zip(xs, arms, strict=True):
            ci = summ["arms"][a][m]
            ax.errorbar([x + 0.12], [ci["mean"]], yerr=[[ci["half_width"]], [ci["half_width"]]],
                        fmt="o", color=f"C{x}", capsize=4, zorder=3)
        ax.set_xticks(xs, [ARM_LABELS[a].replace(" (", "\n(") for a in arms], fontsize=7)
        ax.set_xlim(-0.5, len(arms) - 0.5)
        ax.set_title(f"{m} {get(m).direction}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax = low[i]
        ax.axhline(0.0, color="0.3", ls="--", lw=0.8)
        for j, a in enumerate(others):
            c = summ["paired"][f"{a}-{ref}"][m]
            ax.scatter([j] * len(c["per_seed"]), c["per_seed"], s=14, color="0.45", zorder=2)
            ax.errorbar([j + 0.12], [c["mean"]], yerr=[[c["half_width"]], [c["half_width"]]],
                        fmt="o", color=f"C{arms.index(a)}", capsize=4, zorder=3)
        ax.set_xticks(range(len(others)),
                      [f"{ARM_LABELS[a]} − {ARM_LABELS[ref]}".replace(" (", "\n(")
                       for a in others], fontsize=7)
        ax.set_xlim(-0.5, len(others) - 0.5)
        ax.set_title(f"{m}: paired difference", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in top[len(metrics):] + low[len(metrics):]:
        ax.axis("off")
    pct = f"{100 * summ['level']:g} %"
    fig.suptitle(f"{Path(record['data']).name}: {len(record['split']['heldout'])} held-out "
                 f"pairs, K = {len(seeds)} seeds; grey: runs (paired by seed); colour: mean ± "
                 f"{pct} CI", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _csv(record: dict[str, Any]) -> str:
    buf = io.StringIO()
    metrics = record["metrics"]
    w = csv.writer(buf)
    w.writerow(["arm", "seed", "image", "convention", *metrics, "train_seconds",
                "eval_seconds"])
    for r in record["runs"]:
        for row in [*r["images"], {"image": "mean", **r["metrics"]}]:
            w.writerow([r["arm"], r["seed"], row["image"], record["convention"],
                        *(f"{row[m]:.10g}" for m in metrics),
                        f"{r['train_seconds']:.1f}", f"{r['eval_seconds']:.1f}"])
    return buf.getvalue()


# --------------------------------------------------------------------------- the ablation


def run_ablation(spec: AblationSpec, report: Callable[[str], None] | None = None
                 ) -> dict[str, Any]:
    """Run the whole ablation; returns the record written to ``OUT/ablation.json``.

    Checks everything before the first file is written: the arguments
    (:meth:`AblationSpec.validate`), the data (every pair decoded, sizes at least the crops),
    every run's configuration, and that ``out`` holds no earlier ablation.
    """
    say = report or (lambda msg: print(msg, file=sys.stderr))
    spec = spec.validate()
    try:
        pairs = find_pairs_in(spec.data)
        check_pairs(pairs, decode=True)
    except ImageError as exc:
        raise AblationError(str(exc), "data") from None
    n_held = heldout_count(len(pairs), spec.heldout, spec.heldout_fraction)
    train_pairs, held = split_by_name(pairs, n_held)
    out = Path(spec.out)
    try:
        check_writable_location(out, folder=True)
    except (OSError, ValueError) as exc:
        raise AblationError(f"out: {exc}", "out") from None
    if (out / "ablation.json").exists() or (out / "runs").exists():
        raise AblationError(f"out: {out} already holds an ablation; choose another folder",
                            "out")
    view = out / "data"
    try:
        configs = {(a, s): _run_config(spec, a, s, view.resolve(), len(pairs), n_held)
                   for s in spec.seeds for a in spec.arms}
    except ConfigError as exc:
        raise AblationError(str(exc), exc.key or "config") from None
    any_cfg = next(iter(configs.values()))
    if any_cfg["init"] is not None and not Path(any_cfg["init"]).exists():
        raise AblationError(f"init: {any_cfg['init']} does not exist", "init")
    need = max(any_cfg["crop"], any_cfg["val_crop"])
    for p in pairs:
        h, w = image_size(p.ir)
        if min(h, w) < need:
            raise AblationError(f"data: {p.ir} is {h}x{w}, smaller than the crop {need} "
                                "(crop / val_crop)", "data")

    # The metrics' own requirements (e.g. VIF's minimum size) on the smallest held-out pair,
    # the visible image standing in for the fused one: fail now rather than after training.
    small = min(held, key=lambda p: image_size(p.ir)[0] * image_size(p.ir)[1])
    try:
        vis_levels = read_gray_levels(small.vis)
        evaluate(vis_levels, ir=read_gray_levels(small.ir), vis=vis_levels,
                 metrics=spec.metrics, convention=spec.convention)
    except (ValueError, ImageError) as exc:
        raise AblationError(f"data: held-out pair {small.name}: {exc}", "data") from None

    t0 = time.perf_counter()
    make_split_view(train_pairs, held, view)
    rule = "the pairs whose SHA-256(name) are smallest"
    say(f"hyperleaf ablate: {len(pairs)} pairs in {spec.data}: {len(train_pairs)} train, "
        f"{len(held)} held out ({rule}): {', '.join(p.name for p in held)}")
    say(f"hyperleaf ablate: {len(configs)} runs ({', '.join(spec.arms)} x seeds "
        f"{', '.join(map(str, spec.seeds))}), {spec.workers} worker process(es)")
    heldout_files = [[p.name, str(p.ir), str(p.vis)] for p in held]
    jobs = [{"arm": a, "seed": s, "config": configs[a, s], "heldout": heldout_files,
             "metrics": list(spec.metrics), "convention": spec.convention}
            for (a, s) in configs]
    runs = _run_jobs(jobs, spec.workers, say)
    wall = time.perf_counter() - t0

    shared = {k: v for k, v in any_cfg.items()
              if k not in ("seed", "out", "leaf", "h2fr_mode", "h2fr_core")}
    record = {
        "format": FORMAT, "data": str(spec.data), "out": str(out),
        "split": {"rule": rule, "n_pairs": len(pairs),
                  "train": [p.name for p in train_pairs], "heldout": [p.name for p in held]},
        "arms": list(spec.arms), "arm_settings": {a: ARMS[a] for a in spec.arms},
        "seeds": list(spec.seeds), "metrics": list(spec.metrics),
        "higher_is_better": {m: get(m).higher_is_better for m in spec.metrics},
        "convention": spec.convention, "config": shared, "workers": spec.workers,
        "wall_seconds": wall, "runs": runs,
        "summary": summarise(runs, spec.arms, spec.seeds, spec.metrics, spec.level),
    }
    text = markdown_report(record)
    atomic_write_text(out / "ablation.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(out / "ablation.csv", _csv(record))
    atomic_write_text(out / "ablation.md", text)
    plot_ablation(record, out / "ablation.png")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hyperleaf.train.ablation ARGS``: the same as ``hyperleaf ablate ARGS``."""
    import importlib

    # The command line lives in hyperleaf.cli (one front end for both spellings); imported by
    # name here because library modules do not depend on the CLI package.
    cli = importlib.import_module("hyperleaf.cli")
    return int(cli.main(["ablate", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
