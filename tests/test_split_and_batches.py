import numpy as np
import torch

from fashionlab.data import epoch_order, iterate_batches, make_splits, split_indices
from fashionlab.data.batches import Split


def test_split_sizes_disjoint_and_seeded():
    train, val = split_indices(60000, 10000, seed=0)
    assert len(train) == 50000 and len(val) == 10000
    assert not set(train) & set(val)
    again_train, again_val = split_indices(60000, 10000, seed=0)
    assert (again_val == val).all()
    _, other_val = split_indices(60000, 10000, seed=1)
    assert not (other_val == val).all()


def test_make_splits_keeps_test_apart(fmnist):
    splits = make_splits(fmnist)
    assert len(splits.train) == 50000 and len(splits.val) == 10000 and len(splits.test) == 10000
    assert splits.train.images.shape[1:] == (1, 28, 28)
    assert abs(float(splits.train.images.mean())) < 0.05  # normalised
    assert torch.equal(splits.test.labels, torch.from_numpy(fmnist.test_labels))


def test_batches_cover_the_epoch_once():
    split = Split(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))
    order = epoch_order(10, seed=3, epoch=0)
    seen = torch.cat([y for _, y in iterate_batches(split, 4, order)])
    assert sorted(seen.tolist()) == list(range(10))
    dropped = torch.cat([y for _, y in iterate_batches(split, 4, order, drop_last=True)])
    assert len(dropped) == 8
    resumed = torch.cat([y for _, y in iterate_batches(split, 4, order, start=1)])
    assert torch.equal(resumed, seen[4:])
    assert not torch.equal(epoch_order(10, 3, 0), epoch_order(10, 3, 1))
    assert np.array_equal(epoch_order(10, 3, 1), epoch_order(10, 3, 1))
