"""Train / validation / test split of a tile dataset, by subject (default) or as the paper."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skinoct.errors import InputError
from skinoct.matrix._train_config import SPLITS, Split

__all__ = ["SplitIndices", "split_tiles"]


@dataclass(frozen=True)
class SplitIndices:
    """Train / validation / test sets as (tile index, augmentation index) pairs."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    summary: dict = field(default_factory=dict)


def split_tiles(
    subjects,
    *,
    split: Split = "subject",
    test_fraction: float = 1 / 3,
    val_fraction: float = 0.2,
    augment: int = 9,
    seed: int = 0,
) -> SplitIndices:
    """Split tiles into train / validation / test sets.

    Parameters
    ----------
    subjects : sequence
        Subject of each tile.
    split : {'subject', 'random-paper'}
        ``'subject'``: whole subjects go to test (``test_fraction`` of them), then
        to validation (``val_fraction`` of the rest); only training tiles are
        augmented (``augment`` copies); validation and test tiles are used as they
        are. ``'random-paper'``: all ``augment`` copies of all tiles are shuffled
        and split by count, as seed 002 did.

    Returns
    -------
    SplitIndices
        Arrays of shape (n, 2): tile index, augmentation index.

    Raises
    ------
    InputError
        Fewer than three subjects for the subject split, or sets that come out empty.
    """
    subjects = np.asarray(subjects).astype(str)
    n = subjects.size
    rng = np.random.default_rng(seed)
    if split == "subject":
        unique = np.unique(subjects)
        if unique.size < 3:
            raise InputError(
                f"the subject split needs at least 3 subjects (train, validation, test), "
                f"found {unique.size}; use split='random-paper'"
            )
        order = rng.permutation(unique)
        n_test = min(max(1, round(unique.size * test_fraction)), unique.size - 2)
        n_val = min(max(1, round((unique.size - n_test) * val_fraction)), unique.size - n_test - 1)
        test_s, val_s = set(order[:n_test]), set(order[n_test : n_test + n_val])
        tiles = np.arange(n)
        in_test = np.isin(subjects, list(test_s))
        in_val = np.isin(subjects, list(val_s))
        train_tiles = tiles[~in_test & ~in_val]
        train = np.stack(np.meshgrid(train_tiles, np.arange(augment), indexing="ij"), -1)
        train = train.reshape(-1, 2)
        val = np.stack([tiles[in_val], np.zeros(in_val.sum(), int)], -1)
        test = np.stack([tiles[in_test], np.zeros(in_test.sum(), int)], -1)
        summary = {
            "protocol": "subject",
            "subjects": {"train": int(unique.size - n_test - n_val), "val": n_val, "test": n_test},
            "test_subjects": sorted(test_s),
            "val_subjects": sorted(val_s),
        }
    elif split == "random-paper":
        pairs = np.stack(np.meshgrid(np.arange(n), np.arange(augment), indexing="ij"), -1)
        pairs = pairs.reshape(-1, 2)[rng.permutation(n * augment)]
        n_test = round(len(pairs) * test_fraction)
        rest = pairs[n_test:]
        n_val = max(1, round(len(rest) * val_fraction))
        test, val, train = pairs[:n_test], rest[:n_val], rest[n_val:]
        summary = {"protocol": "random-paper"}
    else:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")
    for name, part in (("train", train), ("validation", val), ("test", test)):
        if len(part) == 0:
            raise InputError(f"the {name} set is empty: too few tiles or subjects")
    shared = len(set(subjects[train[:, 0]]) & set(subjects[test[:, 0]]))
    summary.update(
        pairs={"train": len(train), "val": len(val), "test": len(test)},
        tiles={
            "train": int(np.unique(train[:, 0]).size),
            "val": int(np.unique(val[:, 0]).size),
            "test": int(np.unique(test[:, 0]).size),
        },
        test_tiles_also_in_train=int(np.isin(np.unique(test[:, 0]), train[:, 0]).sum()),
        test_subjects_also_in_train=shared,
    )
    return SplitIndices(train=train, val=val, test=test, summary=summary)
