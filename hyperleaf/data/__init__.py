"""Datasets for training: the embedded synthetic sets, real infrared-visible pairs and
pan-sharpening collections."""

from hyperleaf.data.pairs import PairDataset, split_pairs
from hyperleaf.data.synthetic import (
    SEG_CLASSES,
    SyntheticFusion,
    SyntheticSegmentation,
    sample_seed,
)
from hyperleaf.pansharpen.data import PanCollection

__all__ = ["PairDataset", "split_pairs", "PanCollection", "SyntheticFusion",
           "SyntheticSegmentation", "SEG_CLASSES", "sample_seed"]
