"""The training loop behind ``hyperleaf train``.

One iteration = one batch = one step number, skipped or not, so the data position, the learning
rate and every RNG are functions of the step alone; with the checkpoint restoring the model,
optimizer, scheduler and RNG states, a resumed run repeats the uninterrupted one bit for bit
(CPU, deterministic algorithms).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import yaml
from safetensors.torch import save_model
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from hyperleaf import distributed as hd
from hyperleaf.atomic import (
    atomic_write_jsonl,
    atomic_write_path,
    atomic_write_text,
    check_writable_location,
)
from hyperleaf.data.synthetic import sample_seed
from hyperleaf.geometry import geoopt  # through geometry: it silences geoopt's import warnings
from hyperleaf.optim import ForeachRiemannianAdam
from hyperleaf.tasks import get_task
from hyperleaf.train.build import copy_shared_init
from hyperleaf.train.checkpoint import (
    FORMAT,
    CheckpointError,
    FoundCheckpoint,
    NonFiniteStateError,
    check_finite_state,
    find_resumable,
    list_checkpoints,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from hyperleaf.train.config import RESUME_OVERRIDABLE, ConfigError, TrainConfig, load_run_config
from hyperleaf.train.init import init_objective

__all__ = ["TrainingError", "NonFiniteLossError", "RunResult", "Trainer", "train",
           "BatchStream", "resolve_device", "nonfinite", "AUTOCAST_DTYPES"]

#: ``precision`` -> the autocast dtype of the forward (None: no autocast).
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def _flag(obj: object, name: str):
    setattr(obj, name, True)
    try:
        yield
    finally:
        setattr(obj, name, False)


def _to_float32(out: Any) -> Any:
    """Top-level tensors of a network's output (a tensor, or a tuple/list of results) in
    float32; nested structures (LeafHead's level maps) are left as they are."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float32(o) if isinstance(o, torch.Tensor) else o for o in out)
    return out


def _under_autocast(fn: Callable, owner: Trainer) -> Callable:
    @functools.wraps(fn)
    def run(*args, **kwargs):
        dtype = AUTOCAST_DTYPES[owner.cfg.precision]
        if not getattr(owner, "_amp_step", False) or dtype is None:
            return fn(*args, **kwargs)
        with torch.autocast(owner.amp_device, dtype=dtype):
            out = fn(*args, **kwargs)
        return _to_float32(out)
    return run


def nonfinite(total: torch.Tensor, grads: list[torch.Tensor]) -> torch.Tensor:
    """A 0-d bool tensor: is the loss or any gradient element non-finite? One fused check
    (``torch._foreach_norm`` of order inf over all gradients, then a max), no host sync.

    >>> g = [torch.ones(3), torch.tensor([1.0, float("inf")])]
    >>> bool(nonfinite(torch.tensor(0.5), g)), bool(nonfinite(torch.tensor(0.5), g[:1]))
    (True, False)
    """
    bad = ~torch.isfinite(total.detach())
    if grads:
        peak = torch.stack(torch._foreach_norm(grads, math.inf)).amax()
        bad = bad | ~torch.isfinite(peak.to(bad.device))
    return bad.reshape(())


class TrainingError(RuntimeError):
    """The run cannot start or continue (the message says why and what to do)."""


class NonFiniteLossError(TrainingError):
    """The loss (or its gradient) was non-finite for ``max_nonfinite`` consecutive steps."""


def resolve_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available")
    return dev


# --------------------------------------------------------------------------- data order


class BatchStream:
    """Batch ``k`` of the run as a pure function of ``k``.

    Epoch ``e`` visits the dataset in the order of a :class:`~torch.utils.data.DistributedSampler`
    (``seed``, ``set_epoch(e)``, ``drop_last``); each rank takes consecutive slices of its share.
    With N ranks and batch b, the union of the ranks' batch k is the single-process batch k at
    batch N b. Random augmentations (real data) draw from a generator seeded by
    ``(seed, epoch, index)``.
    """

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.dataset, self.b, self.seed = dataset, int(batch_size), int(seed)
        self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                          seed=seed, drop_last=True)
        self.per_epoch = len(self.sampler) // self.b
        if self.per_epoch < 1:
            raise ConfigError(f"batch_size: {batch_size} x {world} process(es) exceeds the "
                              f"{len(dataset)} training samples")
        self._epoch, self._order = -1, []

    def position(self, step: int) -> tuple[int, int]:
        """``(epoch, batch index within the epoch)`` of 1-based ``step``."""
        return divmod(step - 1, self.per_epoch)

    def indices(self, step: int) -> list[int]:
        epoch, k = self.position(step)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, list(self.sampler)
        return self._order[k * self.b:(k + 1) * self.b]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        epoch, _ = self.position(step)
        items = []
        for i in self.indices(step):
            if hasattr(self.dataset, "get"):
                s = sample_seed(self.seed, "train", i, salt=epoch + 1)
                g = torch.Generator().manual_seed(s)
                items.append(self.dataset.get(i, g))
            else:
                items.append(self.dataset[i])
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


# --------------------------------------------------------------------------- results


@dataclass
class RunResult:
    """What a finished run reports (also summarised in the table at the end)."""

    out: Path
    steps: int
    first_loss: float
    last_loss: float
    skipped_nonfinite: int
    seconds: float
    val_first: dict[str, float] = field(default_factory=dict)
    val_last: dict[str, float] = field(default_factory=dict)


def _lr_lambda(cfg: TrainConfig, per_epoch: int = 1):
    """Multiplier of ``cfg.lr`` after ``i`` scheduler steps; with ``cfg.lr_per_epoch`` the
    cosine advances once per epoch of ``per_epoch`` steps (the rate is constant within one)."""
    warm, total, floor = cfg.warmup, cfg.steps, cfg.lr_min / cfg.lr
    if cfg.lr_per_epoch:
        per_epoch = max(1, int(per_epoch))
        epochs = math.ceil(max(1, total - warm) / per_epoch)
    milestones, gamma = list(cfg.lr_milestones), cfg.lr_gamma

    def f(i: int) -> float:  # i = number of scheduler steps taken so far
        if i < warm:
            return (i + 1) / (warm + 1)
        if cfg.lr_schedule == "multistep":  # torch's MultiStepLR: x gamma once i >= milestone
            return gamma ** sum(1 for m in milestones if i >= m)
        if cfg.lr_per_epoch:  # torch's CosineAnnealingLR(T_max=epochs) stepped every epoch
            t = min(1.0, ((i - warm) // per_epoch) / epochs)
        else:
            t = min(1.0, (i - warm) / max(1, total - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def _read_log(path: Path) -> list[dict[str, Any]]:
    out = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is from the lost tail
    return out


# --------------------------------------------------------------------------- trainer


class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs it; see :func:`train`."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 explicit: frozenset[str] = frozenset(),
                 report: Callable[[str], None] | None = None):
        self.cfg, self.resume, self.progress = cfg.validate(), bool(resume), bool(progress)
        self.explicit = explicit
        # Notes for the user ("resume: resuming from ..."); they name configuration keys, so
        # a front end words them its way (the CLI names flags). Default: stderr.
        self.report = report or (lambda msg: print(msg, file=sys.stderr))
        self.task = get_task(self.cfg.task)

    # ---- setup -------------------------------------------------------------------------

    def _prepare_out(self) -> None:
        cfg = self.cfg
        if cfg.out is None:
            if self.resume:
                raise ConfigError("resume: needs `out` (the run folder to continue)", key="resume")
            stamp = time.strftime("%Y%m%d-%H%M%S")
            cfg.out = str(Path("runs") / stamp)
        self.out = Path(cfg.out)
        # A file where the run folder (or one above it) should be: say so before anything else.
        check_writable_location(self.out, folder=True)
        cfg_file = self.out / "config.yaml"
        if self.resume and not cfg_file.exists():
            if list_checkpoints(self.out / "checkpoints"):
                # config.yaml is written before the first checkpoint: this is not our run.
                raise ConfigError(f"resume: {self.out} holds checkpoints but no config.yaml; "
                                  "it is not a hyperleaf train run that can be continued",
                                  key="resume")
            # Killed before it wrote anything (or a new folder): start the run as configured.
            self.report(f"resume: no run in {self.out} yet; starting it")
            self.resume = False
        if self.resume:
            saved = load_run_config(cfg_file)
            changes = {k: getattr(cfg, k) for k in self.explicit if k in RESUME_OVERRIDABLE}
            clash = sorted(k for k in self.explicit - RESUME_OVERRIDABLE
                           if getattr(cfg, k) != getattr(saved, k))
            if clash:
                raise ConfigError(f"resume: {', '.join(clash)} differ from {cfg_file}; only "
                                  f"{', '.join(sorted(RESUME_OVERRIDABLE))} may change",
                                  key="resume")
            saved.out = str(self.out)
            self.cfg = cfg = saved.replace(**changes)
        elif cfg_file.exists() or (self.out / "checkpoints").exists():
            raise ConfigError(f"out: {self.out} already holds a run; pass `resume` to continue "
                              "it or choose another folder", key="out")

    def _build_data(self) -> None:
        # what the data decide for the model (bands, classes, ...) comes back in the config
        self.cfg, self.train_set, self.val_set = self.task.open_data(self.cfg)

    def _build_model(self) -> None:
        self.objective = self.task.build_objective(self.cfg)
        if self.cfg.shared_init:  # an ablation arm: the full LEAF network's initial tensors
            copy_shared_init(self.objective, self.cfg)
        if self.cfg.init is not None:
            # Also on --resume: a run killed before its first checkpoint restarts from here.
            init_objective(self.objective, self.cfg.init)
        self.objective = self.objective.to(self.device)

    def _build_optimizer(self) -> None:
        cfg = self.cfg
        params = [p for p in self.objective.parameters() if p.requires_grad]
        if cfg.optimizer == "radam":
            # geoopt's RiemannianAdam to rounding, with one foreach update for the
            # Euclidean parameters (tests/test_optim.py; benchmarks/bench_train.py)
            self.optimizer = ForeachRiemannianAdam(params, lr=cfg.lr,
                                                   weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adamw":
            # Plain AdamW (decoupled weight decay) knows no manifolds: refuse a network that
            # has manifold parameters (a learned H2FR core) rather than train it off its ball.
            manifold = [n for n, p in self.objective.named_parameters()
                        if isinstance(p, geoopt.ManifoldParameter)
                        and not isinstance(p.manifold, geoopt.Euclidean)]
            if manifold:
                raise ConfigError(f"optimizer: 'adamw' cannot train manifold parameters "
                                  f"({', '.join(manifold[:3])}); use 'radam'", key="optimizer")
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = geoopt.optim.RiemannianSGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                                        weight_decay=cfg.weight_decay)
        # steps per epoch, as BatchStream counts them (only lr_per_epoch reads it)
        train_set = getattr(self, "train_set", None)
        per_epoch = 1 if train_set is None else \
            len(train_set) // max(1, hd.world_size()) // cfg.batch_size
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           _lr_lambda(cfg, per_epoch))
        # fp16: a dynamic gradient scaler (its found-inf check is the step's finite check)
        device = getattr(self, "device", None) or resolve_device(cfg.device)
        self.amp_device = device.type
        # initial scale 2^10 (torch's 2^16 overflowed the first fp16 steps of the demo; the
        # scale still grows after 2000 clean steps and halves after an overflow)
        self.scaler = torch.amp.GradScaler(device.type, init_scale=2.0**10,
                                           enabled=cfg.precision == "fp16")
        self.params = [p for p in self.objective.parameters() if p.requires_grad]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward's autocast context for ``precision`` (none for ``fp32``).

        With an objective whose network is ``objective.net`` (fusion, pan-sharpening), autocast
        covers the network only (:meth:`_autocast_network`) and the losses run in float32 on
        its float32-cast output: in bf16 the image losses' own convolutions (Sobel, SSIM
        windows) would put the loss ~1e-3 off. Other objectives run under autocast whole."""
        dtype = AUTOCAST_DTYPES[self.cfg.precision]
        if dtype is None:
            return contextlib.nullcontext()
        if self._autocast_network():
            return _flag(self, "_amp_step")
        return torch.autocast(self.amp_device, dtype=dtype)

    def _autocast_network(self) -> bool:
        """Wrap ``objective.net``'s ``forward`` and ``forward_levels`` (instance attributes:
        the state dict is unchanged) to run under autocast during a training step and return
        their top-level tensors in float32; False when the objective has no ``net``."""
        net = getattr(self.objective, "net", None)
        if not isinstance(net, nn.Module):
            return False
        if getattr(net, "_hyperleaf_amp", None) is self:
            return True
        for name in ("forward", "forward_levels"):
            fn = getattr(net, name, None)
            if fn is not None:
                setattr(net, name, _under_autocast(fn, self))
        net._hyperleaf_amp = self
        return True

    # ---- state -------------------------------------------------------------------------

    def state(self, step: int) -> dict[str, Any]:
        rngs = [rng_state()]
        if hd.is_distributed():
            rngs = [None] * hd.world_size()
            torch.distributed.all_gather_object(rngs, rng_state())
        epoch, k = self.stream.position(step + 1)
        return {
            "format": FORMAT,
            "step": step,
            "model": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
            "rng": rngs,
            "world_size": hd.world_size(),
            "data": {"next_epoch": epoch, "next_batch_in_epoch": k, "seed": self.cfg.seed,
                     "batch_size": self.cfg.batch_size},
            "counters": {"skipped_nonfinite": self.skipped, "consecutive": self.consecutive},
            # Per-step values since the last log record, so its averages survive a resume.
            "log_window": [{k: float(v) for k, v in w.items()} for w in self.window],
            "config": self.cfg.to_dict(),
        }

    def load_state(self, st: dict[str, Any]) -> int:
        """Restore a validated checkpoint state; returns its step."""
        if st.get("world_size", 1) != hd.world_size():
            raise TrainingError(f"checkpoint was written by {st.get('world_size')} process(es); "
                                f"resume it with the same number (now {hd.world_size()})")
        self.objective.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        for pst in self.optimizer.state.values():
            # torch's load_state_dict turns an int "step" into a float32 tensor; geoopt counts
            # it as a Python int, and betas ** step must stay in float64 to repeat the run.
            if isinstance(pst.get("step"), torch.Tensor):
                pst["step"] = int(pst["step"].item())
        self.scheduler.load_state_dict(st["scheduler"])
        if "scaler" in st and self.scaler.is_enabled():
            self.scaler.load_state_dict(st["scaler"])
        set_rng_state(st["rng"][hd.rank()])
        self.skipped = int(st["counters"]["skipped_nonfinite"])
        self.consecutive = int(st["counters"]["consecutive"])
        self.window = [{k: torch.tensor(v, dtype=torch.float32, device=self.device)
                        for k, v in w.items()} for w in st.get("log_window", [])]
        return int(st["step"])

    def _last_good_checkpoint(self) -> str:
        found = list_checkpoints(self.out / "checkpoints")
        if not found:
            return "No checkpoint was saved."
        return f"The last good checkpoint is {found[-1][1]}."

    def _checkpoint(self, step: int) -> None:
        st = self.state(step)  # collective in DDP: every rank takes part
        try:
            # Every rank checks (the states agree), so all stop together instead of some
            # waiting at the barrier below.
            check_finite_state(st)
        except NonFiniteStateError as exc:
            raise TrainingError(
                f"step {step}: {exc}; the run stops without saving them. Lower `lr` (now "
                f"{self.cfg.lr}) or raise grad_clip. {self._last_good_checkpoint()}") from None
        if self.is_main:
            save_checkpoint(self.out / "checkpoints", step, st)
            prune_checkpoints(self.out / "checkpoints", keep=2)
        hd.barrier()

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.log_records.append(record)
        line = json.dumps(record, sort_keys=True) + "\n"
        # One write per record, flushed: a kill can only cut the last line, which --resume drops.
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()

    # ---- evaluation --------------------------------------------------------------------

    def evaluate(self, step: int, write_samples: bool = False) -> dict[str, float]:
        metrics = self.task.evaluate(self.cfg, self.objective, self.val_set, self.device,
                                     samples_dir=(self.out / "samples") if write_samples else None)
        self._log({"step": step, "kind": "val", **metrics})
        return metrics

    # ---- main --------------------------------------------------------------------------

    def run(self) -> RunResult:
        t0 = time.time()
        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        own_group = hd.init_from_env(self.device.type)
        threads = torch.get_num_threads()
        if cfg.threads > 0:
            # The default networks' tensors are small: one thread per process is as fast as
            # two, and on a shared machine OpenMP threads that wait for a descheduled partner
            # made steps ~50x slower here. The count is part of the config because summation
            # order (hence bit-exact resume) depends on it.
            torch.set_num_threads(cfg.threads)
        try:
            return self._run(t0)
        finally:
            torch.set_num_threads(threads)
            if own_group:
                torch.distributed.destroy_process_group()

    def _run(self, t0: float) -> RunResult:
        self.is_main = hd.rank() == 0
        self._prepare_out()
        cfg = self.cfg
        self.task = get_task(cfg.task)  # a resumed run's saved task
        if cfg.deterministic:
            if self.device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        self._build_data()
        cfg = self.cfg  # with the keys the data resolved
        # Same initial weights on every rank (DDP also broadcasts them) and in every run.
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)
        self._build_model()
        self._build_optimizer()
        self.stream = BatchStream(self.train_set, cfg.batch_size, cfg.seed, hd.rank(),
                                  hd.world_size())
        self.skipped = self.consecutive = 0
        self.window: list[dict[str, torch.Tensor]] = []
        self.log_records: list[dict[str, Any]] = []
        start = 0
        self.resumed_from: FoundCheckpoint | None = None
        if self.resume:
            # Read before anything is written: a refused resume leaves the folder as it was.
            self.resumed_from = found = find_resumable(self.out / "checkpoints")
            if found is not None:
                try:
                    start = self.load_state(found.state)
                except (RuntimeError, KeyError, ValueError, TypeError) as exc:
                    raise CheckpointError(found.path, "does not fit the run's model and "
                                          f"optimizer ({str(exc).splitlines()[0]})") from None
            if self.is_main:
                for line in (found.report() if found is not None else
                             [f"no checkpoint in {self.out / 'checkpoints'} yet; "
                              "starting from step 0"]):
                    self.report(f"resume: {line}")
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if start > 0:
                # Keep the log of the steps the checkpoint covers; later lines will be redone.
                kept = [r for r in _read_log(self.out / "log.jsonl") if r.get("step", 0) <= start]
                atomic_write_jsonl(self.out / "log.jsonl", kept)
                self.log_records = kept
            else:
                atomic_write_jsonl(self.out / "log.jsonl", [])
        hd.barrier()
        if self.is_main:
            atomic_write_text(self.out / "config.yaml",
                              "# hyperleaf train configuration (rebuilds the model)\n"
                              + yaml.safe_dump(cfg.to_grouped(), sort_keys=False))

        model = self.objective
        if hd.is_distributed():
            model = DDP(self.objective, device_ids=[self.device.index] if
                        self.device.type == "cuda" else None)
        if cfg.compile:
            model = torch.compile(model)
        if start == 0 and self.is_main:
            self.evaluate(0)
        hd.barrier()

        bar = None
        if self.is_main and self.progress:
            bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step",
                       dynamic_ncols=True, file=sys.stderr)
        window = self.window
        self.objective.train()
        for step in range(start + 1, cfg.steps + 1):
            batch = {k: v.to(self.device) for k, v in self.stream.batch(step).items()}
            parts = self._step(model, batch, step)
            if parts is not None:
                window.append(parts)
            if bar is not None:
                bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                rec = {"step": step, "kind": "train", "lr": self.scheduler.get_last_lr()[0],
                       "skipped_nonfinite": self.skipped}
                if window:
                    # the window's device scalars read once per record (one host sync)
                    keys = list(window[0])
                    means = torch.stack([torch.stack([w[k] for w in window]).double().mean()
                                         for k in keys]).tolist()
                    rec.update(zip(keys, means, strict=True))
                    if bar is not None:
                        bar.set_postfix(loss=f"{rec['loss']:.4f}", refresh=False)
                else:
                    rec["loss"] = float("nan")
                if getattr(self.objective, "head", None) is not None:
                    rec["curvature"] = float(self.objective.head.curvature.detach())
                self._log(rec)
                window.clear()
            if step % cfg.eval_every == 0 and step != cfg.steps:
                if self.is_main:
                    self.evaluate(step)
                    self.objective.train()
                hd.barrier()
            if step % cfg.save_every == 0 or step == cfg.steps:
                self._checkpoint(step)
        if bar is not None:
            bar.close()

        result_val = {}
        if self.is_main:
            result_val = self.evaluate(cfg.steps, write_samples=True)
            self._finish()
        hd.barrier()
        return self._result(t0, result_val)

    def _step(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int
              ) -> dict[str, torch.Tensor] | None:
        """One optimizer step; returns the loss parts as detached device scalars (read on the
        host once per log record), None when the step was skipped.

        Host synchronisations: one, the fused finite check of the loss and every gradient
        (:func:`nonfinite`; with ``precision`` fp16 the gradient scaler's own check, done while
        unscaling), which decides whether the optimizer steps."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            total, parts = self.loss(model, batch)
        self.scaler.scale(total).backward()
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.scaler.is_enabled():
            # unscale_ checks every gradient for inf/NaN in one fused pass (no sync)
            self.scaler.unscale_(self.optimizer)
            found = sum(self.scaler._found_inf_per_device(self.optimizer).values())
            bad_t = ~torch.isfinite(total.detach()) | (found > 0)
        else:
            bad_t = nonfinite(total, grads)
        if hd.is_distributed():
            # the same decision on every rank (the losses differ; the gradients do not)
            bad_t = hd.all_reduce_mean(bad_t.float()) > 0
        bad = bool(bad_t)  # the step's one host synchronisation
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler.is_enabled():
                self.scaler.update()  # lowers the scale after an overflow
            self.skipped += 1
            self.consecutive += 1
            self.scheduler.step()
            if self.consecutive >= cfg.max_nonfinite:
                raise NonFiniteLossError(
                    f"the loss or its gradient was non-finite for {self.consecutive} consecutive "
                    f"steps (last: step {step}); the run stops. Lower `lr` (now {cfg.lr}), "
                    f"raise grad_clip, or check the data. {self._last_good_checkpoint()}")
            return None
        self.consecutive = 0
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip, foreach=True)
        self.optimizer.step()
        if self.scaler.is_enabled():
            self.scaler.update()
        self.scheduler.step()
        out = {"loss": hd.all_reduce_mean(total.detach()).float()}
        for k, v in parts.items():
            out[k] = hd.all_reduce_mean(v).float()
        return out

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        """``(total, parts)`` for one batch (overridable in tests to inject failures)."""
        return self.task.loss(model, batch)

    def _finish(self) -> None:
        # safetensors writes to a path: write beside the target, then rename over it.
        with atomic_write_path(self.out / "model.safetensors") as tmp:
            save_model(self.objective, str(tmp), metadata={"format": "hyperleaf-train/1",
                                                           "task": self.cfg.task})
        records = self.task.artifacts(self.cfg, self.objective, self.val_set, self.device, self.out)
        for kind, scores in records.items():
            self._log({"step": self.cfg.steps, "kind": kind, **scores})

    def _result(self, t0: float, val_last: dict[str, float]) -> RunResult:
        train_recs = [r for r in self.log_records if r.get("kind") == "train"]
        val_recs = [r for r in self.log_records if r.get("kind") == "val"]
        first = train_recs[0]["loss"] if train_recs else float("nan")
        last = train_recs[-1]["loss"] if train_recs else float("nan")
        res = RunResult(out=self.out, steps=self.cfg.steps, first_loss=first, last_loss=last,
                        skipped_nonfinite=self.skipped, seconds=time.time() - t0,
                        val_first={k: v for k, v in (val_recs[0] if val_recs else {}).items()
                                   if isinstance(v, float)},
                        val_last={k: v for k, v in val_last.items() if isinstance(v, float)})
        return res


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          explicit: frozenset[str] = frozenset(),
          report: Callable[[str], None] | None = None) -> RunResult:
    """Run training as configured; returns the :class:`RunResult`.

    ``explicit`` names the keys set on the command line (they may override a resumed run's
    configuration when listed in ``RESUME_OVERRIDABLE``); ``report`` receives the notes for
    the user (what a resume found; default: printed to stderr).
    """
    return Trainer(cfg, resume=resume, progress=progress, explicit=explicit,
                   report=report).run()
