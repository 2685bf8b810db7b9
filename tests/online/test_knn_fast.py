"""The k-NN of PEBBLE's state entropy ranks squared distances from one padded matrix product and keeps the
k smallest by blocks: the same numbers as ``torch.cdist`` followed by ``torch.topk`` over every column."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pbrl.online.entropy import k_smallest, knn_state_entropy


def _cdist_topk(x: np.ndarray, ref: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """The former implementation: cdist, then topk of the k (+1) smallest distances."""
    need = k + 1 if exclude_self else k
    v = torch.topk(torch.cdist(torch.from_numpy(x), torch.from_numpy(ref)), need, dim=1, largest=False).values
    if exclude_self:
        return torch.where(v[:, 0] == 0.0, v[:, k], v[:, k - 1]).numpy()
    return v[:, k - 1].numpy()


@pytest.mark.parametrize("n_ref", [30, 101, 1000, 4097])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_knn_equals_cdist_then_topk_bit_for_bit(n_ref, exclude_self):
    rng = np.random.default_rng(n_ref)
    ref = rng.normal(size=(n_ref, 39)).astype(np.float32)
    ref[5] = ref[4]  # a duplicate state: ties in the ranking
    x = np.concatenate([ref[:20], rng.normal(size=(60, 39)).astype(np.float32)])  # some queries are in ref
    for k in (1, 5):
        np.testing.assert_array_equal(knn_state_entropy(x, ref, k=k, chunk=32, exclude_self=exclude_self),
                                      _cdist_topk(x, ref, k, exclude_self))


def test_k_smallest_equals_topk_with_ties_and_ragged_blocks():
    rng = np.random.default_rng(0)
    for n in (12, 50, 257, 10_000):
        d = torch.from_numpy(rng.integers(0, 40, size=(64, n)).astype(np.float32))  # many ties
        for k in (1, 3, 6):
            assert torch.equal(k_smallest(d, k), torch.topk(d, k, dim=1, largest=False).values)
    d = torch.full((3, 900), 7.0)
    d[0, 899], d[1, 0], d[2, 450] = 1.0, 2.0, 3.0  # the minimum in the last, first and middle block
    assert k_smallest(d, 2).tolist() == [[1.0, 7.0], [2.0, 7.0], [3.0, 7.0]]
