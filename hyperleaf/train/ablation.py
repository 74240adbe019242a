"""``python -m hyperleaf.train.ablation``: the embedded default with and without LEAF.

Runs ``hyperleaf train``'s default configuration twice (same steps, same seed): SHIP + LEAF and
plain SHIP (``--no-leaf``), then prints a Markdown table of the final validation metrics. The
table in ``docs/training.md`` is this script's output.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hyperleaf.train.config import TrainConfig
from hyperleaf.train.trainer import train

__all__ = ["run_ablation", "markdown_table"]

_ROWS = [
    ("loss", "fusion loss (intensity + gradient + 0.5 SSIM), lower is better"),
    ("intensity", "intensity loss mean abs(F - max(I_ir, I_vis))"),
    ("gradient", "gradient loss (Sobel)"),
    ("ssim_ir", "SSIM(F, I_ir), higher is better"),
    ("ssim_vis", "SSIM(F, I_vis), higher is better"),
    ("order_all", "fraction of samples ordered as H2FR asks"),
]


def run_ablation(out: Path, **overrides) -> dict[str, dict[str, float]]:
    """Train both variants into ``out/leaf`` and ``out/no-leaf``; final metrics of each."""
    res = {}
    for name, leaf in (("SHIP + LEAF", True), ("SHIP (--no-leaf)", False)):
        cfg = TrainConfig(**{**overrides, "leaf": leaf,
                             "out": str(out / ("leaf" if leaf else "no-leaf"))}).validate()
        r = train(cfg, progress=False)
        res[name] = {**r.val_last, "seconds": r.seconds, "train_loss_first": r.first_loss,
                     "train_loss_last": r.last_loss}
    return res


def markdown_table(res: dict[str, dict[str, float]], cfg: TrainConfig) -> str:
    names = list(res)
    lines = [f"| validation metric (step {cfg.steps}, seed {cfg.seed}) | " + " | ".join(names)
             + " |", "|---|" + "---:|" * len(names)]
    for key, label in _ROWS:
        cells = [f"{res[n][key]:.4f}" if key in res[n] else "n/a" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{res[n]['train_loss_first']:.3f} -> {res[n]['train_loss_last']:.3f}" for n in names]
    lines.append("| training loss, first -> last logged | " + " | ".join(cells) + " |")
    cells = [f"{res[n]['seconds']:.0f} s" for n in names]
    lines.append("| wall time (this machine) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="folder for the two runs (default: a temp dir)")
    args = p.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="hyperleaf-ablation-"))
    res = run_ablation(out)
    print(markdown_table(res, TrainConfig()))


if __name__ == "__main__":
    main()
