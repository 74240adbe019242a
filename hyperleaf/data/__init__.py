"""Datasets for training: the embedded synthetic sets and real infrared-visible pairs."""

from hyperleaf.data.pairs import PairDataset, split_pairs
from hyperleaf.data.synthetic import (
    SEG_CLASSES,
    SyntheticFusion,
    SyntheticSegmentation,
    sample_seed,
)

__all__ = ["PairDataset", "split_pairs", "SyntheticFusion", "SyntheticSegmentation",
           "SEG_CLASSES", "sample_seed"]
