r"""Run an ablation: K seeds x arms, each a ``hyperleaf train`` run, each scored on held-out
items, summarised under :mod:`hyperleaf.experiments.statistics`.

Tasks:

* ``fuse``: every pair is ranked by the SHA-256 of its name (:func:`split_by_name`); the first
  ``n_heldout`` are held out. Training reads a *split view* of the data folder (``OUT/data``,
  :func:`make_split_view`), so it sees only the training pairs. The held-out pairs are fused
  whole by each trained network and measured with :mod:`hyperleaf.metrics`.
* ``segment``, ``pansharpen``: the task's own validation split (segment: the last
  ``round(val_fraction N)`` items in name order, ``val_fraction`` = ``heldout_fraction``;
  pansharpen: ``val_index`` or ``val_fraction``). Each held-out item is scored alone by the
  task's evaluation (:meth:`hyperleaf.tasks.Task.evaluate` on a one-item set): per-item Dice /
  IoU, or Q / SAM / ERGAS / SCC / Q2n. With a single held-out item, its score is the run's
  final validation (the same evaluation of the same weights), not computed twice. Segment:
  ``heldout_items`` names the held-out items instead (the runs read ``OUT/data``, a view of
  links, :func:`~hyperleaf.experiments.design.make_item_view`).

Outputs in ``OUT``: ``runs/ARM-seedK/`` (each a run folder plus ``heldout.json``),
``ablation.json`` (every run's per-image and mean scores, parameter counts, the summary, the
split, the configuration, provenance: commit, command, inputs with SHA-256, hardware, wall
time), ``ablation.csv``, ``ablation.md`` and ``ablation.png``.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperleaf.atomic import atomic_write_text, check_writable_location
from hyperleaf.data.segmentation import SegmentationFolder
from hyperleaf.experiments.design import (
    ARMS,
    AblationError,
    AblationSpec,
    heldout_count,
    higher_is_better,
    make_item_view,
    make_split_view,
    split_by_name,
    split_items,
)
from hyperleaf.experiments.report import (
    csv_text,
    markdown_report,
    plot_ablation,
    provenance,
)
from hyperleaf.experiments.statistics import summarise
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
from hyperleaf.runs import load_run
from hyperleaf.tasks import get_task
from hyperleaf.train.config import ConfigError, TrainConfig
from hyperleaf.train.trainer import train

__all__ = ["FORMAT", "run_ablation", "run_one", "count_parameters"]

#: Format tag of ``ablation.json``.
FORMAT = "hyperleaf-ablation/2"


def count_parameters(module: torch.nn.Module) -> int:
    """Trainable parameters of ``module`` (elements of every ``requires_grad`` parameter).

    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    """
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def _run_config(spec: AblationSpec, arm: str, seed: int, data: Path, val_fraction: float | None
                ) -> dict[str, Any]:
    steps = int((spec.config or {}).get("steps", TrainConfig.steps))
    d = {"eval_every": steps, "save_every": steps, "log_every": max(1, steps // 10),
         **(spec.config or {}), **ARMS[arm], "task": spec.task, "shared_init": True,
         "seed": seed, "data": str(data),
         "out": str(Path(spec.out) / "runs" / f"{arm}-seed{seed}")}
    if val_fraction is not None:
        d["val_fraction"] = val_fraction
    return TrainConfig.from_dict(d, source="config").to_dict()


# --------------------------------------------------------------------------- one run


def _fuse_gray(net, ir, vis):
    """Fused luminance ``(H, W)`` float in [0, 1] of ``net`` for ``ir``/``vis`` (H, W)."""
    v = torch.from_numpy(np.ascontiguousarray(vis, dtype=np.float32))[None, None]
    i = torch.from_numpy(np.ascontiguousarray(ir, dtype=np.float32))[None, None]
    with torch.inference_mode():
        return net(v, i)[0, 0].clamp(0, 1).float().numpy()


class _OneItem:
    """Item ``i`` of a dataset as a one-item dataset (names kept for the task's evaluation)."""

    def __init__(self, ds: Any, i: int):
        self.ds, self.i = ds, i
        pairs = getattr(ds, "pairs", None)
        if pairs is not None:
            self.pairs = [pairs[i]]

    def __len__(self) -> int:
        return 1

    def __getitem__(self, j: int) -> Any:
        if j != 0:
            raise IndexError(j)
        return self.ds[self.i]


def _item_name(ds: Any, i: int) -> str:
    pairs = getattr(ds, "pairs", None)
    if pairs is not None:
        p = pairs[i]
        return str(getattr(p, "name", p))
    return f"item{i:03d}"


def _task_images(cfg: TrainConfig, metrics: Sequence[str],
                 val_last: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Per-item scores of the run ``cfg.out`` on its validation items. With one item, the
    run's final validation (``val_last``: the task's evaluation of the same weights on that
    item, at the end of training) is that item's score and is not computed a second time (a
    whole 3-D volume costs minutes on a CPU)."""
    loaded = load_run(cfg.out, objective=True)  # the task's evaluation scores the loss terms
    objective, saved, task = loaded.objective, loaded.config, loaded.task
    _, val_set = task.datasets(saved)
    if len(val_set) == 1 and val_last and all(m in val_last for m in metrics):
        return [{"image": _item_name(val_set, 0), **{m: float(val_last[m]) for m in metrics}}]
    images = []
    for i in range(len(val_set)):
        scores = task.evaluate(saved, objective, _OneItem(val_set, i), torch.device("cpu"))
        missing = [m for m in metrics if m not in scores]
        if missing:
            raise AblationError(f"metrics: {missing[0]!r} is not among the {saved.task} task's "
                                f"scores ({', '.join(sorted(scores))})", "metrics")
        images.append({"image": _item_name(val_set, i), **{m: float(scores[m]) for m in metrics}})
    return images


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one ``(arm, seed)`` run and score it on the held-out items (a worker's task).

    ``job``: ``{"arm", "seed", "task", "config" (a TrainConfig dict), "heldout" ([name, ir,
    vis] lists, fuse), "metrics", "convention"}``. Returns the run's record and writes
    ``heldout.json`` (fuse: also ``heldout/NAME.png``) into the run folder.
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
        loaded = load_run(cfg.out, objective=True)
        n_params = count_parameters(loaded.objective)  # network + LEAF's head, as trained
        if job.get("task", "fuse") == "fuse":
            net = loaded.model
            fused_dir = Path(cfg.out) / "heldout"
            fused_dir.mkdir(exist_ok=True)
            images = []
            for name, ir_path, vis_path in job["heldout"]:
                pair = ImagePair(name=name, ir=Path(ir_path), vis=Path(vis_path))
                write_png(fused_dir / f"{name}.png",
                          _fuse_gray(net, read_gray(pair.ir), read_gray(pair.vis)))
                images.append(evaluate_pair(fused_dir, pair, job["metrics"], job["convention"]))
        else:
            images = _task_images(cfg, job["metrics"], dict(result.val_last))
    finally:
        torch.set_num_threads(threads)
    t_eval = time.perf_counter() - t1
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # segment: a class absent from an item gives NaN there (all NaN: the mean is NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = {m: float(np.nanmean([r[m] for r in images])) for m in job["metrics"]}
    record = {"arm": job["arm"], "seed": job["seed"], "out": str(cfg.out),
              "parameters": n_params, "train_seconds": t_train, "eval_seconds": t_eval,
              "metrics": mean, "images": images, "val_last": dict(result.val_last),
              "train_loss_first": result.first_loss, "train_loss_last": result.last_loss,
              "skipped_nonfinite": result.skipped_nonfinite}
    atomic_write_text(Path(cfg.out) / "heldout.json",
                      json.dumps(record, indent=2, default=_json_default) + "\n")
    return record


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


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


# --------------------------------------------------------------------------- the ablation


def _fuse_plan(spec: AblationSpec, out: Path):
    try:
        pairs = find_pairs_in(spec.data)
        check_pairs(pairs, decode=True)
    except ImageError as exc:
        raise AblationError(str(exc), "data") from None
    n_held = heldout_count(len(pairs), spec.heldout, spec.heldout_fraction)
    train_pairs, held = split_by_name(pairs, n_held)
    view = out / "data"
    try:
        configs = {(a, s): _run_config(spec, a, s, view.resolve(), n_held / len(pairs))
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
    rule = "the pairs whose SHA-256(name) are smallest"
    split = {"rule": rule, "n_pairs": len(pairs), "train": [p.name for p in train_pairs],
             "heldout": [p.name for p in held]}
    inputs = [f for p in pairs for f in (p.ir, p.vis)]
    heldout_files = [[p.name, str(p.ir), str(p.vis)] for p in held]

    def prepare() -> None:
        make_split_view(train_pairs, held, view)

    return configs, split, inputs, heldout_files, prepare


def _segment_items(data: Path) -> list[tuple[str, dict[str, Path]]]:
    """``(name, {modality or label key: file})`` of every item of a segmentation folder."""
    try:
        folder = SegmentationFolder(data, check="names")
    except (ValueError, OSError) as exc:
        raise AblationError(f"data: {exc}", "data") from None
    keys = (*folder.modalities, folder.label_dir)
    return [(name, dict(zip(keys, (*mods, label), strict=True)))
            for name, (mods, label) in zip(folder.names, folder.items, strict=True)]


def _task_plan(spec: AblationSpec, out: Path):
    data = Path(spec.data)
    if not data.exists():
        raise AblationError(f"data: {data} does not exist", "data")
    vf = spec.heldout_fraction if spec.task == "segment" else None
    view, items, held_names = None, [], []
    if spec.heldout_items:
        # the runs read OUT/data, links named so that the task's own split holds out exactly
        # these items (make_item_view)
        items = _segment_items(data)
        _, held_names = split_items([n for n, _ in items], spec.heldout_items)
        view, vf = out / "data", len(held_names) / len(items)
    try:
        configs = {(a, s): _run_config(spec, a, s, (view or data).resolve(), vf)
                   for s in spec.seeds for a in spec.arms}
        cfg = TrainConfig.from_dict(next(iter(configs.values())), source="ablation")
        task = get_task(spec.task)
        if view is None:
            train_set, val_set = task.datasets(cfg)
        else:  # the data checked as they are; the view is written by prepare()
            train_set, val_set = task.datasets(cfg.replace(data=str(data.resolve())))
    except ConfigError as exc:
        raise AblationError(str(exc), exc.key or "config") from None
    except (ValueError, OSError) as exc:
        raise AblationError(f"data: {exc}", "data") from None
    rule = ("the task's validation split (segment: the last round(val_fraction N) items in "
            "name order; pansharpen: val_index or val_fraction)")
    if view is not None:
        rule = "the items named by heldout_items (segment), each held out whole"
    train_names = [_item_name(train_set, i) for i in range(len(train_set))]
    held = [_item_name(val_set, i) for i in range(len(val_set))]
    if view is not None:
        train_names = [n for n, _ in items if n not in held_names]
        held = list(held_names)
    split = {"rule": rule, "n_pairs": len(train_set) + len(val_set),
             "train": train_names if spec.task == "segment"
             else [f"{len(train_set)} training tiles"],
             "heldout": held}
    inputs = sorted(p for p in (data.rglob("*") if data.is_dir() else [data]) if p.is_file())

    def prepare() -> None:
        if view is None:
            return
        make_item_view(items, held_names, view)
        # The view must split exactly as intended; check with the task's own rule.
        fit_set, val_view = task.datasets(cfg)
        got_held = sorted(_item_name(val_view, i) for i in range(len(val_view)))
        got_fit = sorted(_item_name(fit_set, i) for i in range(len(fit_set)))
        if (got_held != sorted(f"held-{n}" for n in held_names)
                or got_fit != sorted(f"fit-{n}" for n in train_names)):
            raise AblationError(f"data: the split view {view} does not split as intended "
                                "(stale files from another ablation? use a new `out`)", "out")

    return configs, split, inputs, [], prepare


def run_ablation(spec: AblationSpec, report: Callable[[str], None] | None = None
                 ) -> dict[str, Any]:
    """Run the whole ablation; returns the record written to ``OUT/ablation.json``.

    Checks everything before the first file is written: the arguments
    (:meth:`AblationSpec.validate`), the data, every run's configuration, and that ``out``
    holds no earlier ablation.
    """
    say = report or (lambda msg: print(msg, file=sys.stderr))
    spec = spec.validate()
    out = Path(spec.out)
    try:
        check_writable_location(out, folder=True)
    except (OSError, ValueError) as exc:
        raise AblationError(f"out: {exc}", "out") from None
    if (out / "ablation.json").exists() or (out / "runs").exists():
        raise AblationError(f"out: {out} already holds an ablation; choose another folder",
                            "out")
    plan = _fuse_plan if spec.task == "fuse" else _task_plan
    configs, split, inputs, heldout_files, prepare = plan(spec, out)
    any_cfg = next(iter(configs.values()))

    t0 = time.perf_counter()
    prepare()
    say(f"hyperleaf ablate: task {spec.task}, {split['n_pairs']} items in {spec.data}: "
        f"{len(split['heldout'])} held out ({split['rule']}): {', '.join(split['heldout'])}")
    say(f"hyperleaf ablate: {len(configs)} runs ({', '.join(spec.arms)} x seeds "
        f"{', '.join(map(str, spec.seeds))}), {spec.workers} worker process(es); unit of "
        "replication: the training run (seed)")
    jobs = [{"arm": a, "seed": s, "task": spec.task, "config": configs[a, s],
             "heldout": heldout_files, "metrics": list(spec.metrics),
             "convention": spec.convention} for (a, s) in configs]
    runs = _run_jobs(jobs, spec.workers, say)
    wall = time.perf_counter() - t0

    shared = {k: v for k, v in any_cfg.items()
              if k not in ("seed", "out", *{k for a in ARMS.values() for k in a})}
    params = {a: next(r["parameters"] for r in runs if r["arm"] == a) for a in spec.arms}
    record = {
        "format": FORMAT, "task": spec.task, "data": str(spec.data), "out": str(out),
        "split": split, "arms": list(spec.arms),
        "arm_settings": {a: ARMS[a] for a in spec.arms}, "parameters": params,
        "seeds": list(spec.seeds), "metrics": list(spec.metrics),
        "higher_is_better": {m: higher_is_better(m) for m in spec.metrics},
        "convention": spec.convention, "config": shared, "workers": spec.workers,
        "wall_seconds": wall, "runs": runs,
        "summary": summarise(runs, spec.arms, spec.seeds, spec.metrics, spec.level,
                             spec.min_effect, spec.n_boot),
        **provenance(inputs, spec.command),
    }
    text = markdown_report(record)
    atomic_write_text(out / "ablation.json",
                      json.dumps(record, indent=2, default=_json_default) + "\n")
    atomic_write_text(out / "ablation.csv", csv_text(record))
    atomic_write_text(out / "ablation.md", text)
    plot_ablation(record, out / "ablation.png")
    return record
