"""Datasets for training: the embedded synthetic sets, real infrared-visible pairs and
pan-sharpening collections."""

from hyperleaf.data.pairs import PairDataset, split_pairs
from hyperleaf.data.pancollection import PanCollection
from hyperleaf.data.synthetic import (
    SEG_CLASSES,
    SyntheticFusion,
    SyntheticSegmentation,
    sample_seed,
)

__all__ = ["PairDataset", "split_pairs", "PanCollection", "SyntheticFusion",
           "SyntheticSegmentation", "SEG_CLASSES", "sample_seed"]
