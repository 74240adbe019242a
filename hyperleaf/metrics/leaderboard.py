r"""A fusion leaderboard: many methods scored on the same pairs, with statistics.

:func:`leaderboard` scores every method's fused images (one folder per method) against the
same source pairs, in one convention (``standard``, ``mmif`` or ``vifb``), and writes to
``out``:

* ``leaderboard.csv`` / ``.json`` / ``.md`` -- per method and metric the mean over images with
  its 95 % Student-t interval (:func:`hyperleaf.stats.mean_interval`), the rank of that mean
  (1 = best, in the metric's direction, ties averaged) and the mean per-image rank; per method
  the mean rank over the metrics;
* ``leaderboard.png`` -- the ranks of every method on every metric (methods sorted by mean
  rank), a figure for a paper;
* ``cache/<method>.json`` -- the per-image scores, keyed by convention, image and metric, with a
  fingerprint (SHA-256) of the three files, so that adding a method, or a metric, computes only
  what is new. Every file is written atomically (:mod:`hyperleaf.atomic`).

Statistics (units of replication: the images, paired across methods). Per metric, a Friedman
test (:func:`scipy.stats.friedmanchisquare`) of "all methods rank alike", and two-sided
Wilcoxon signed-rank tests (:func:`scipy.stats.wilcoxon`) for every pair of methods -- or,
with ``baseline``, every method against the baseline -- with Holm's correction
(:func:`hyperleaf.stats.holm`) over the tests of that metric. "A beats B" in the tables means
A's mean is better and the Holm-adjusted p-value is below 0.05. Images where a compared value
is not finite (an infinite PSNR) are left out of that test, and the JSON says how many were used.

Example::

    >>> board = leaderboard("data/vifb", fused_root="data/vifb/fused", convention="vifb",
    ...                     out="board")                              # doctest: +SKIP
    >>> board.table["GFF"]["Qabf"]["rank"]                           # doctest: +SKIP
    3.0
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperleaf.atomic import atomic_write, atomic_write_text, check_writable_location
from hyperleaf.io import ImageError, ImagePair, find_pairs_in, image_size
from hyperleaf.metrics.folder import evaluate_folder, fused_file
from hyperleaf.metrics.registry import check_convention, get, resolve
from hyperleaf.metrics.vifb import select as vifb_select
from hyperleaf.stats import holm, mean_interval

__all__ = ["Leaderboard", "OUTPUTS", "check_methods", "find_methods", "json_safe", "leaderboard",
           "summarise"]

#: The files :func:`leaderboard` writes in ``out`` (besides ``cache/``).
OUTPUTS = ("leaderboard.csv", "leaderboard.json", "leaderboard.md", "leaderboard.png")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")
_ALPHA = 0.05


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no Infinity or NaN).

    >>> json_safe({"PSNR": float("inf"), "rows": [1.0, float("nan")]})
    {'PSNR': None, 'rows': [1.0, None]}
    """
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# ------------------------------------------------------------------ methods and pairs


def find_methods(fused_root: str | Path | None = None,
                 methods: Mapping[str, str | Path] | Iterable[str] | None = None
                 ) -> dict[str, Path]:
    """``{name: folder}``: the sub-folders of ``fused_root`` (sorted by name) and/or
    ``methods`` given as a mapping or as ``"NAME=DIR"`` strings.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "GFF").mkdir(); (root / "TIF").mkdir()
    >>> sorted(find_methods(root, ["avg=" + str(root / "GFF")]))
    ['GFF', 'TIF', 'avg']
    """
    found: dict[str, Path] = {}
    if fused_root is not None:
        root = Path(fused_root)
        if not root.is_dir():
            raise ImageError(f"fused_root: not a folder: {root}")
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found[d.name] = d
    if methods is not None:
        items = methods.items() if isinstance(methods, Mapping) else (
            _split_method(m) for m in methods)
        for name, folder in items:
            if name in found:
                raise ValueError(f"methods: {name!r} given twice")
            found[name] = Path(folder)
    if not found:
        raise ValueError("methods: no method given (fused_root has no sub-folder, methods is "
                         "empty)")
    for name, folder in found.items():
        if not _NAME.match(name):
            raise ValueError(f"methods: {name!r} is not a usable method name (letters, digits "
                             "and _ . + - only)")
        if not folder.is_dir():
            raise ImageError(f"methods: the folder of {name!r} does not exist: {folder}")
    return found


def _split_method(text: str) -> tuple[str, str]:
    name, sep, folder = str(text).partition("=")
    if not sep or not name or not folder:
        raise ValueError(f"methods: expected NAME=DIR, got {text!r}")
    return name, folder


def check_methods(methods: Mapping[str, Path], pairs: Sequence[ImagePair]) -> dict[str, dict]:
    """``{method: {pair name: fused file}}``, after checking that every method has a fused
    image for every pair, of the pair's size; :class:`~hyperleaf.io.ImageError` naming every
    missing pair and every size mismatch, per method, otherwise."""
    files: dict[str, dict] = {}
    problems: list[str] = []
    sizes = {p.name: image_size(p.ir) for p in pairs}
    for name, folder in methods.items():
        files[name] = {}
        missing, wrong = [], []
        for pair in pairs:
            try:
                f = fused_file(folder, pair.name)
            except ImageError:
                missing.append(pair.name)
                continue
            hw = image_size(f)
            if hw != sizes[pair.name]:
                wrong.append(f"{pair.name} ({hw[0]}x{hw[1]}, sources "
                             f"{sizes[pair.name][0]}x{sizes[pair.name][1]})")
            files[name][pair.name] = f
        if missing:
            problems.append(f"method {name!r} ({folder}) lacks the pairs {', '.join(missing)}")
        if wrong:
            problems.append(f"method {name!r} ({folder}) has size mismatches: "
                            f"{', '.join(wrong)}")
    if problems:
        raise ImageError("leaderboard: " + "; ".join(problems))
    return files


# ------------------------------------------------------------------ per-image cache


def _fingerprint(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:32]


def _enc(v: float) -> float | str:
    return float(v) if math.isfinite(v) else repr(float(v))


def _dec(v: float | str) -> float:
    return float(v)


def _load_cache(path: Path) -> dict:
    if not path.is_file():
        return {"format": 1, "scores": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"format": 1, "scores": {}}  # a damaged cache is rebuilt, not trusted
    if not isinstance(data, dict) or data.get("format") != 1:
        return {"format": 1, "scores": {}}
    return data


def _score_method(name: str, folder: Path, files: dict[str, Path], pairs: Sequence[ImagePair],
                  names: Sequence[str], convention: str, workers: int, cache_dir: Path,
                  tick: Callable[[], None]) -> tuple[dict[str, np.ndarray], int]:
    """Per-metric score vectors (in the order of ``pairs``) and the number of pairs scored now."""
    path = cache_dir / f"{name}.json"
    cache = _load_cache(path)
    conv = cache["scores"].setdefault(convention, {})
    need: list[ImagePair] = []
    need_metrics: set[str] = set()
    prints = {}
    for pair in pairs:
        fp = _fingerprint((files[pair.name], pair.ir, pair.vis))
        prints[pair.name] = fp
        entry = conv.get(pair.name)
        if entry is None or entry.get("fingerprint") != fp:
            conv[pair.name] = entry = {"fingerprint": fp, "scores": {}}
        lacking = [m for m in names if m not in entry["scores"]]
        if lacking:
            need.append(pair)
            need_metrics.update(lacking)
        else:
            tick()
    if need:
        chosen = tuple(m for m in names if m in need_metrics)
        rows = evaluate_folder(folder, need, chosen, convention, workers, progress=tick)
        for pair, row in zip(need, rows):
            conv[pair.name]["scores"].update({m: _enc(row[m]) for m in chosen})
        atomic_write_text(path, json.dumps(cache, indent=1) + "\n")
    scores = {m: np.array([_dec(conv[p.name]["scores"][m]) for p in pairs]) for m in names}
    return scores, len(need)


# ------------------------------------------------------------------ statistics


def _ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Ranks along the last axis, 1 = best, ties averaged (NaN ranks last)."""
    from scipy.stats import rankdata

    v = np.where(np.isnan(values), -np.inf if higher_is_better else np.inf, values)
    return rankdata(-v if higher_is_better else v, axis=-1, method="average")


def _wilcoxon(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    from scipy.stats import wilcoxon

    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    if ok.sum() == 0:
        return math.nan, 0
    if np.all(d == 0):
        return 1.0, int(ok.sum())  # identical scores: no evidence of a difference
    try:
        return float(wilcoxon(x[ok], y[ok]).pvalue), int(ok.sum())
    except ValueError:
        return math.nan, int(ok.sum())


def _friedman(matrix: np.ndarray) -> dict[str, Any]:
    from scipy.stats import friedmanchisquare

    ok = np.all(np.isfinite(matrix), axis=1)
    m = matrix[ok]
    if m.shape[1] < 3 or m.shape[0] < 2:
        return {"statistic": math.nan, "p": math.nan, "n_images": int(ok.sum()),
                "note": "needs >= 3 methods and >= 2 images"}
    if np.all(m == m[:, :1]):
        return {"statistic": 0.0, "p": 1.0, "n_images": int(ok.sum())}
    res = friedmanchisquare(*m.T)
    return {"statistic": float(res.statistic), "p": float(res.pvalue), "n_images": int(ok.sum())}


def summarise(scores: Mapping[str, Mapping[str, np.ndarray]], metrics: Sequence[str],
              baseline: str | None = None, higher_is_better: Mapping[str, bool] | None = None
              ) -> dict[str, Any]:
    """Means, intervals, ranks and tests of ``scores[method][metric]`` (per-image vectors of
    one length, the images paired across methods).

    Returns ``{"table": {method: {metric: {mean, ci95, rank, mean_image_rank}}},
    "mean_rank": {method: float}, "friedman": {metric: {...}}, "wilcoxon": {metric: [...]}}``.

    >>> s = {"a": {"EN": np.array([1.0, 2, 3])}, "b": {"EN": np.array([2.0, 3, 4])}}
    >>> out = summarise(s, ["EN"])
    >>> out["table"]["b"]["EN"]["rank"], out["mean_rank"]
    (1.0, {'a': 2.0, 'b': 1.0})
    """
    methods = list(scores)
    if baseline is not None and baseline not in scores:
        raise ValueError(f"baseline: {baseline!r} is not one of the methods: "
                         f"{', '.join(methods)}")
    hib = {m: (get(m).higher_is_better if higher_is_better is None else higher_is_better[m])
           for m in metrics}
    table: dict[str, dict] = {name: {} for name in methods}
    friedman, tests = {}, {}
    metric_ranks = np.zeros((len(methods), len(metrics)))
    for j, metric in enumerate(metrics):
        matrix = np.stack([np.asarray(scores[n][metric], dtype=np.float64) for n in methods],
                          axis=1)
        means = np.array([mean_interval(matrix[:, i])[0] for i in range(len(methods))])
        ranks = _ranks(means, hib[metric])
        image_ranks = _ranks(matrix, hib[metric]).mean(axis=0)
        metric_ranks[:, j] = ranks
        for i, name in enumerate(methods):
            mean, half = mean_interval(matrix[:, i])
            table[name][metric] = {"mean": mean, "ci95": half, "rank": float(ranks[i]),
                                   "mean_image_rank": float(image_ranks[i])}
        friedman[metric] = _friedman(matrix)
        if baseline is None:
            pairs = [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:]]
        else:
            pairs = [(baseline, b) for b in methods if b != baseline]
        rows = []
        for a, b in pairs:
            p, n = _wilcoxon(matrix[:, methods.index(a)], matrix[:, methods.index(b)])
            ma, mb = table[a][metric]["mean"], table[b][metric]["mean"]
            better = a if (ma > mb) == hib[metric] else b
            rows.append({"a": a, "b": b, "p": p, "n_images": n,
                         "better_mean": None if ma == mb else better})
        for row, adj in zip(rows, holm([r["p"] for r in rows])):
            row["p_holm"] = adj
            row["significant"] = bool(adj < _ALPHA) if not math.isnan(adj) else False
        tests[metric] = rows
    mean_rank = {name: float(metric_ranks[i].mean()) for i, name in enumerate(methods)}
    return {"table": table, "mean_rank": mean_rank, "friedman": friedman, "wilcoxon": tests}


# ------------------------------------------------------------------ outputs


@dataclass
class Leaderboard:
    """What :func:`leaderboard` computed and wrote."""

    convention: str
    metrics: tuple[str, ...]
    methods: tuple[str, ...]
    images: tuple[str, ...]
    scores: dict[str, dict[str, np.ndarray]]
    table: dict[str, dict[str, dict[str, float]]]
    mean_rank: dict[str, float]
    friedman: dict[str, dict[str, Any]]
    wilcoxon: dict[str, list[dict[str, Any]]]
    baseline: str | None = None
    scored: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def order(self) -> list[str]:
        """Methods by mean rank (best first), ties by name."""
        return sorted(self.methods, key=lambda n: (self.mean_rank[n], n))

    def record(self) -> dict[str, Any]:
        """The JSON document (non-finite values as ``null``)."""
        return json_safe({
            "convention": self.convention, "units_of_replication": "images",
            "n_images": len(self.images), "images": list(self.images),
            "methods": self.order(), "metrics": list(self.metrics),
            "higher_is_better": {m: get(m).higher_is_better for m in self.metrics},
            "interval": "95% Student-t interval of the mean over images",
            "tests": "Friedman per metric; two-sided Wilcoxon signed-rank, Holm-adjusted over "
                     "the pairs of each metric (scipy.stats, hyperleaf.stats.holm)",
            "baseline": self.baseline, "table": self.table, "mean_rank": self.mean_rank,
            "friedman": self.friedman, "wilcoxon": self.wilcoxon,
            "scores": {n: {m: list(map(float, v)) for m, v in s.items()}
                       for n, s in self.scores.items()}})

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["method", "metric", "direction", "n_images", "mean", "ci95_low", "ci95_high",
                    "rank", "mean_image_rank", "mean_rank"])
        for name in self.order():
            for m in self.metrics:
                c = self.table[name][m]
                w.writerow([name, m, get(m).direction, len(self.images), f"{c['mean']:.10g}",
                            f"{c['mean'] - c['ci95']:.10g}", f"{c['mean'] + c['ci95']:.10g}",
                            f"{c['rank']:g}", f"{c['mean_image_rank']:.4f}",
                            f"{self.mean_rank[name]:.4f}"])
        return buf.getvalue()

    def markdown(self) -> str:
        heads = [f"{m} {get(m).direction}" for m in self.metrics]
        lines = [f"Convention: {self.convention}; {len(self.images)} images (the units of "
                 "replication); mean ± 95% Student-t interval, (rank of the mean, 1 = best).",
                 "",
                 "| method | " + " | ".join(heads) + " | mean rank |",
                 "|---|" + "---:|" * (len(self.metrics) + 1)]
        for name in self.order():
            cells = [f"{self.table[name][m]['mean']:.4g} ± {self.table[name][m]['ci95']:.2g} "
                     f"({self.table[name][m]['rank']:g})" for m in self.metrics]
            lines.append(f"| {name} | " + " | ".join(cells) +
                         f" | {self.mean_rank[name]:.2f} |")
        lines += ["", "Friedman test per metric (all methods alike):", ""]
        lines += [f"- {m}: chi2 = {f['statistic']:.4g}, p = {f['p']:.3g}"
                  for m, f in self.friedman.items()]
        what = (f"each method against {self.baseline}" if self.baseline
                else "every pair of methods")
        lines += ["", f"Wilcoxon signed-rank tests, {what}, Holm-adjusted per metric: "
                  "significant differences (p_holm < 0.05), better mean first:", ""]
        for m, rows in self.wilcoxon.items():
            wins = [f"{r['better_mean']} > {r['b'] if r['better_mean'] == r['a'] else r['a']}"
                    for r in rows if r["significant"] and r["better_mean"]]
            lines.append(f"- {m}: {len(wins)} of {len(rows)}"
                         + (f" ({'; '.join(wins)})" if self.baseline and wins else ""))
        return "\n".join(lines) + "\n"

    def figure(self):
        """Rank heatmap (methods by mean rank x metrics), a matplotlib Figure."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        order = self.order()
        ranks = np.array([[self.table[n][m]["rank"] for m in self.metrics] for n in order])
        fig, ax = plt.subplots(figsize=(1.0 + 0.55 * (len(self.metrics) + 1),
                                        1.2 + 0.32 * len(order)))
        full = np.column_stack([ranks, [self.mean_rank[n] for n in order]])
        im = ax.imshow(full, cmap="viridis_r", aspect="auto", vmin=1, vmax=len(order))
        for (i, j), v in np.ndenumerate(full):
            ax.text(j, i, f"{v:.3g}" if j == full.shape[1] - 1 else f"{v:g}", ha="center",
                    va="center", fontsize=7, color="white" if v > len(order) / 2 else "black")
        ax.set_xticks(range(full.shape[1]))
        ax.set_xticklabels([f"{m} {get(m).direction}" for m in self.metrics] + ["mean rank"],
                           rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels(order, fontsize=8)
        ax.set_title(f"Rank of the mean over {len(self.images)} images ({self.convention}; "
                     "1 = best)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02).set_label("rank", fontsize=8)
        fig.tight_layout()
        return fig

    def write(self, out: str | Path) -> list[Path]:
        """Write :data:`OUTPUTS` into ``out`` (atomically); returns their paths."""
        import matplotlib.pyplot as plt

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / n for n in OUTPUTS]
        atomic_write_text(paths[0], self.csv_text())
        atomic_write_text(paths[1], json.dumps(self.record(), indent=1, allow_nan=False) + "\n")
        atomic_write_text(paths[2], self.markdown())
        fig = self.figure()
        try:
            atomic_write(paths[3], lambda fh: fig.savefig(fh, format="png", dpi=200))
        finally:
            plt.close(fig)
        self.files = paths
        return paths


def _names(metrics: Any, convention: str) -> tuple[str, ...]:
    return vifb_select(metrics) if convention == "vifb" else resolve(metrics)


def leaderboard(data: str | Path | Sequence[ImagePair], *, out: str | Path,
                fused_root: str | Path | None = None,
                methods: Mapping[str, str | Path] | Iterable[str] | None = None,
                convention: str = "standard", metrics: Any = None, workers: int = 1,
                baseline: str | None = None, progress: bool = False) -> Leaderboard:
    """Score every method on the pairs of ``data`` and write the leaderboard into ``out``.

    Args:
        data: a dataset folder (``ir/`` + ``vi/``, or ``IRk``/``VISk`` files) or the pairs.
        out: output folder (checked before any work): :data:`OUTPUTS` and ``cache/``.
        fused_root: a folder with one sub-folder of fused images per method.
        methods: more methods, ``{name: folder}`` or ``["NAME=DIR", ...]``.
        convention: ``"standard"``, ``"mmif"`` or ``"vifb"`` (colour per channel).
        metrics: names, ``"all"`` or ``None`` (the convention's default set).
        workers: processes scoring pairs in parallel.
        baseline: compare every method with this one only (Wilcoxon + Holm).
        progress: show a progress bar on stderr (one tick per method and pair).

    Raises ``ImageError`` naming every missing pair and size mismatch, ``ValueError`` for a
    bad argument (named), both before anything is scored or written.
    """
    check_convention(convention)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    out = check_writable_location(out, folder=True)
    for name in OUTPUTS:
        if (out / name).is_dir():
            raise ValueError(f"out: {out / name} is a folder; expected a file name")
    names = _names(metrics, convention)
    pairs = list(find_pairs_in(data) if isinstance(data, (str, Path)) else data)
    if not pairs:
        raise ValueError("data: no image pairs")
    found = find_methods(fused_root, methods)
    if baseline is not None and baseline not in found:
        raise ValueError(f"baseline: {baseline!r} is not one of the methods: "
                         f"{', '.join(found)}")
    files = check_methods(found, pairs)
    cache_dir = out / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    scores: dict[str, dict[str, np.ndarray]] = {}
    scored: dict[str, int] = {}
    with tqdm(total=len(found) * len(pairs), desc="scoring", unit="image", file=sys.stderr,
              disable=not progress) as bar:
        for name, folder in found.items():
            bar.set_postfix_str(name)
            scores[name], scored[name] = _score_method(
                name, folder, files[name], pairs, names, convention, workers, cache_dir,
                lambda: bar.update(1))
    stats = summarise(scores, names, baseline)
    board = Leaderboard(convention, tuple(names), tuple(found), tuple(p.name for p in pairs),
                        scores, stats["table"], stats["mean_rank"], stats["friedman"],
                        stats["wilcoxon"], baseline, scored)
    board.write(out)
    return board
