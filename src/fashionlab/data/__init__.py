"""Data: find, verify, parse and cache Fashion-MNIST; in-memory batches; batched augmentation."""

from .augment import AUGMENTATIONS, apply_augment, parse_augment
from .batches import Split, Splits, epoch_order, iterate_batches, make_splits, num_batches, to_tensor
from .dataset import CLASSES, MEAN, STD, FashionMNIST, find_data_dir, load_fashion_mnist, parse_idx, split_indices

__all__ = [
    "AUGMENTATIONS", "CLASSES", "MEAN", "STD", "FashionMNIST", "Split", "Splits", "apply_augment",
    "epoch_order", "find_data_dir", "iterate_batches", "load_fashion_mnist", "make_splits",
    "num_batches", "parse_augment", "parse_idx", "split_indices", "to_tensor",
]
