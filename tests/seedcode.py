"""Execute the code blocks of the LEAF seed text (shared/seeds/000_*.txt) at test time.

The seed's code is the specification of paper mode; reading it from ../shared (opt-in) lets the
tests compare hyperleaf against the seed's own code without copying it into the repository.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn as nn

SEED_GLOB = "seeds/000_*.txt"


def seed_source(shared_dir: Path) -> str:
    paths = sorted(Path(shared_dir).glob(SEED_GLOB))
    if not paths:
        raise FileNotFoundError(f"no LEAF seed matching {SEED_GLOB} under {shared_dir}")
    text = paths[0].read_text(encoding="utf-8")
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    code = "\n\n".join(blocks)
    # The one printed typo: a line ending in a full-width parenthesis.
    code = code.replace("norm_u_original）", "norm_u_original")
    return code


def load_seed_namespace(shared_dir: Path) -> dict:
    ns: dict = {"torch": torch, "nn": nn, "math": math}
    exec(compile(seed_source(shared_dir), "<LEAF seed>", "exec"), ns)  # noqa: S102
    return ns
