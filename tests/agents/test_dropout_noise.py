"""The dropout masks of the offline agents (:func:`pbrl.agents.networks.dropout_noise`): the same law and the
same scale as ``F.dropout``'s, the same numbers for the same seed, and the same loss for the same mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pbrl.agents.cpl import CPL
from pbrl.agents.networks import DeterministicPolicy, Dropout, dropout_noise


def _dropout_scale(p: float) -> torch.Tensor:
    """The value ``F.dropout`` multiplies kept elements by (read from F.dropout itself)."""
    return F.dropout(torch.ones(64), p, training=True).max()


@pytest.mark.parametrize("p", [0.25, 0.1, 1 / 1024, 0.3])  # 8-bit, float, 16-bit and float comparison paths
def test_noise_keeps_one_minus_p_and_scales_like_f_dropout(p):
    noise = dropout_noise((400, 1000), p, np.random.default_rng(0))
    assert noise.dtype == torch.float32 and noise.shape == (400, 1000)
    values = torch.unique(noise)
    assert values.tolist() == [0.0, _dropout_scale(p).item()]  # bit for bit F.dropout's scale
    kept = (noise > 0).double().mean().item()
    assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / noise.numel())


def test_noise_bits_are_independent_across_elements_and_calls():
    rng = np.random.default_rng(1)
    a, b = (dropout_noise((200_000,), 0.25, rng) > 0 for _ in range(2))
    assert not torch.equal(a, b)
    both = (a & b).double().mean().item()  # P(keep, keep) = 0.75^2 for independent masks
    assert abs(both - 0.5625) < 5 * np.sqrt(0.5625 * 0.4375 / 200_000)
    neighbours = (a[:-1] & a[1:]).double().mean().item()  # elements sharing a 64-bit draw are independent too
    assert abs(neighbours - 0.5625) < 5 * np.sqrt(0.5625 * 0.4375 / 200_000)


def test_same_seed_same_noise():
    a = dropout_noise((3, 7, 5), 0.25, np.random.default_rng(7))
    b = dropout_noise((3, 7, 5), 0.25, np.random.default_rng(7))
    c = dropout_noise((3, 7, 5), 0.25, np.random.default_rng(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_same_mask_gives_f_dropouts_output_and_gradient():
    """With the mask F.dropout drew, the Dropout module of the agents computes F.dropout's numbers exactly."""
    x = torch.randn(50, 64, requires_grad=True)
    torch.manual_seed(3)
    ref = F.dropout(x, 0.25, training=True)
    ref.pow(2).sum().backward()
    g_ref = x.grad.clone()
    keep = ref.detach() != 0
    x.grad = None
    layer = Dropout(0.25)
    Dropout.noise_source = lambda shape, p: torch.where(keep, _dropout_scale(p), torch.zeros(()))
    try:
        out = layer(x)
    finally:
        Dropout.noise_source = None
    out.pow(2).sum().backward()
    assert torch.equal(out, ref) and torch.equal(x.grad, g_ref)


def test_dropout_scope_draws_dropout_noise_from_the_update_seed():
    """Inside an agent's dropout scope the policy's log-likelihood equals the one computed by hand with
    dropout_noise from a generator seeded with the update's seed (one draw per Dropout, in call order)."""
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.normal(size=(4, 6, 3)), dtype=torch.float32)
    act = torch.as_tensor(rng.uniform(-1, 1, size=(4, 6, 2)), dtype=torch.float32)
    torch.manual_seed(0)
    policy = DeterministicPolicy(3, 2, (16, 16), dropout=0.25)
    seed = 12345
    agent = CPL.__new__(CPL)  # only _dropout_scope is exercised: it needs the device and no functional state
    agent.device, agent._functional = torch.device("cpu"), None
    with agent._dropout_scope({"torch_seed": torch.tensor(seed)}):
        lp = policy.log_prob(obs, act)
    g = np.random.default_rng(seed)
    net = policy.net
    h = torch.relu(net[0](obs)) * dropout_noise((4, 6, 16), 0.25, g)
    h = torch.relu(net[3](h)) * dropout_noise((4, 6, 16), 0.25, g)
    by_hand = -(torch.tanh(net[6](h)) - act).pow(2).sum(-1)
    assert torch.equal(lp, by_hand)
    assert Dropout.noise_source is None  # the scope is left as it was found


def test_keep_freed_memory_serves_big_tensors_from_the_heap():
    """After the offline fits' allocator setting a 48 MB tensor is no fresh mmap (glibc's mallinfo2 counts
    mmapped bytes in ``hblkhd``); elsewhere the call reports that it changed nothing."""
    import ctypes
    import sys

    from pbrl.memory import keep_freed_memory

    if not sys.platform.startswith("linux"):
        assert keep_freed_memory() is False
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        pytest.skip("not glibc (libc.so.6): mallopt's thresholds do not apply")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc < 2.33: no mallinfo2 to read the mmapped bytes")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    assert keep_freed_memory() is True and keep_freed_memory() is True  # once per process, then a no-op
    mapped = libc.mallinfo2().hblkhd
    big = torch.ones(3000, 4000)  # 48 MB: above glibc's largest default mmap threshold (32 MiB)
    assert libc.mallinfo2().hblkhd - mapped < 1_000_000
    assert big.sum().item() == 12_000_000
