"""The one batched ensemble MLP (pbrl.reward_models.networks): the same initialisation and outputs as the two
classes it replaced (the reward models' BatchedMLP, the agents' EnsembleMLP) for the same seed, and state
dicts (and optimiser states) saved in BatchedMLP's older key layout still load."""

from __future__ import annotations

import copy
import math

import torch
from helpers import synthetic_pairs
from torch import nn

from pbrl.agents.networks import EnsembleMLP as AgentsEnsembleMLP
from pbrl.agents.networks import TwinQ
from pbrl.reward_models import BatchedMLP, EnsembleMLP, RewardEnsemble
from pbrl.reward_models.networks import upgrade_optimizer_state


# ---------------------------------------------------------------------------- the classes as they were
class OldBatchedMLP(nn.Module):
    """pbrl.reward_models.networks.BatchedMLP before the merge (leaky ReLU; weights then biases)."""

    def __init__(self, n_members, in_dim, out_dim, hidden=(256, 256, 256), seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        dims = [in_dim, *hidden, out_dim]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)
            self.weights.append(nn.Parameter((torch.rand(n_members, d_in, d_out, generator=gen) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(n_members, 1, d_out, generator=gen) * 2 - 1) * bound))
        self.n_members = n_members

    def forward(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = torch.nn.functional.leaky_relu(x, 0.01)
        return x


class OldEnsembleLinear(nn.Module):
    def __init__(self, n, d_in, d_out):
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(n, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, d_out).uniform_(-bound, bound))

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight)


def old_agents_ensemble(n, d_in, d_out, hidden, layer_norm):
    """pbrl.agents.networks.EnsembleMLP's layers before the merge (global RNG, ReLU)."""
    layers, d = [], d_in
    for h in hidden:
        layers += [OldEnsembleLinear(n, d, h), *([nn.LayerNorm(h)] if layer_norm else []), nn.ReLU()]
        d = h
    return nn.Sequential(*layers, OldEnsembleLinear(n, d, d_out))


X = torch.linspace(-2, 2, 7 * 5).reshape(7, 5)


def test_reward_ensemble_net_has_the_old_init_and_outputs_for_a_seed():
    for seed, hidden in ((0, (8, 8)), (7, (16,)), (3, (4, 4, 4))):
        old, new = OldBatchedMLP(3, 5, 2, hidden, seed=seed), BatchedMLP(3, 5, 2, hidden, seed=seed)
        assert all(torch.equal(a, b) for a, b in zip(old.weights, new.weights))
        assert all(torch.equal(a, b) for a, b in zip(old.biases, new.biases))
        assert torch.equal(old(X), new(X)) and new(X).shape == (3, 7, 2)
        assert torch.equal(old(X.expand(3, 7, 5)), new(X.expand(3, 7, 5)))


def test_agents_ensemble_and_twin_q_have_the_old_init_and_outputs_under_the_global_seed():
    assert AgentsEnsembleMLP is EnsembleMLP
    for layer_norm in (False, True):
        torch.manual_seed(11)
        old = old_agents_ensemble(2, 5, 1, (8, 8), layer_norm)
        torch.manual_seed(11)
        new = EnsembleMLP(2, 5, 1, (8, 8), layer_norm=layer_norm)
        assert list(old.state_dict()) == list(new.net.state_dict())  # the same keys (net.<i>.weight ...)
        assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.net.state_dict().values()))
        assert torch.equal(old(X.unsqueeze(0).expand(2, 7, 5)), new(X))
    torch.manual_seed(5)
    q = TwinQ(3, 2, hidden=(8, 8))
    assert list(q.state_dict()) == ["net.net.0.weight", "net.net.0.bias", "net.net.2.weight", "net.net.2.bias",
                                    "net.net.4.weight", "net.net.4.bias"]


def test_a_state_dict_in_the_old_key_layout_loads():
    old = OldBatchedMLP(3, 5, 2, (8, 8), seed=4)
    sd = old.state_dict()
    assert list(sd) == ["weights.0", "weights.1", "weights.2", "biases.0", "biases.1", "biases.2"]
    new = BatchedMLP(3, 5, 2, (8, 8), seed=99)
    assert not torch.equal(old(X), new(X))
    new.load_state_dict(sd)  # strict: every old key is mapped, none is missing
    assert torch.equal(old(X), new(X))
    assert list(new.state_dict()) == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias",
                                      "net.4.weight", "net.4.bias"]
    # inside a larger module too (the prefix is kept)
    holder, target = nn.ModuleDict({"rm": old}), nn.ModuleDict({"rm": BatchedMLP(3, 5, 2, (8, 8), seed=1)})
    target.load_state_dict(holder.state_dict())
    assert torch.equal(target["rm"](X), old(X))


def _as_old_layout(state: dict, net: EnsembleMLP) -> dict:
    """A reward-model state as the older BatchedMLP layout saved it: weight keys, and the optimiser's
    parameter numbering (all weights, then all biases)."""
    old = copy.deepcopy(state)
    n = len(net.weights)
    new_names = [k for k, _ in net.named_parameters()]
    old_names = [f"weights.{i}" for i in range(n)] + [f"biases.{i}" for i in range(n)]
    by_new = {net.legacy_key(o): o for o in old_names}
    old["weights"] = {o: state["weights"][net.legacy_key(o)] for o in old_names}
    opt = state["optimizer"]
    old["optimizer"] = {"state": {old_names.index(by_new[new_names[i]]): s for i, s in opt["state"].items()},
                        "param_groups": copy.deepcopy(opt["param_groups"])}
    return old


def test_a_saved_reward_model_in_the_old_layout_loads_and_trains_on_identically(tmp_path):
    ds = synthetic_pairs(n=32, H=5, seed=3)
    a = RewardEnsemble(4, 2, n_members=3, hidden=(8, 8), seed=0)
    a.fit(ds, epochs=2, early_stop_accuracy=None)
    legacy = _as_old_layout(a.state(), a.net)
    assert upgrade_optimizer_state(a.net, legacy["weights"], legacy["optimizer"])["state"].keys() == a.optimizer.state_dict()["state"].keys()
    torch.save(legacy, tmp_path / "old.pt")
    b = RewardEnsemble.load(tmp_path / "old.pt")
    for (k, v), (k2, v2) in zip(a.optimizer.state_dict()["state"].items(), b.optimizer.state_dict()["state"].items()):
        assert k == k2 and torch.equal(v["exp_avg"], v2["exp_avg"])
    a.fit(ds, epochs=2, early_stop_accuracy=None)
    b.fit(ds, epochs=2, early_stop_accuracy=None)
    assert all(torch.equal(v, b.net.state_dict()[k]) for k, v in a.net.state_dict().items())
