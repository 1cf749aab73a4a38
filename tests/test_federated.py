"""medkit.methods.federated: Flower's FedAvg in process, reproducible; leakage, secure sum; bad inputs."""

import numpy as np
import pytest
import torch

from medkit import DataError
from medkit.data import ImageDataset
from medkit.methods import federated as fed


def _site(n, positive_share, seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < positive_share).astype(int)
    labels[:2] = [0, 1]
    images = rng.integers(0, 80, (n, 28, 28)).astype(np.uint8)
    images[labels == 1, 6:22, 6:22] += 120
    return ImageDataset(images, labels, ["normal", "pneumonia"])


def test_weights_round_trip_and_shape_check():
    model = fed.site_model(8)
    weights = fed.get_weights(model)
    other = fed.set_weights(fed.site_model(8), weights)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    with pytest.raises(DataError, match="arrays for a model"):
        fed.set_weights(model, weights[:-1])
    with pytest.raises(DataError, match="shape"):
        fed.set_weights(model, [np.zeros((1, 1))] + weights[1:])


def test_fedavg_runs_reproducibly_and_learns():
    sites = {"a": _site(48, 0.5, 0), "b": _site(48, 0.8, 1)}
    test = _site(40, 0.5, 2)
    runs = [fed.run_federated(sites, test, model_fn=lambda: fed.site_model(8), rounds=3, lr=0.05, seed=0)
            for _ in range(2)]
    assert runs[0].auc_per_round == runs[1].auc_per_round
    assert len(runs[0].auc_per_round) == 4  # round 0 (init) and three rounds
    assert runs[0].auc_per_round[-1] > 0.9
    received = runs[0].strategy.received
    assert sorted(received) == [1, 2, 3] and sorted(received[1]) == ["a", "b"]


def test_fedavg_is_the_weighted_average_of_what_sites_sent():
    sites = {"a": _site(40, 0.5, 0), "b": _site(20, 0.5, 1)}
    run = fed.run_federated(sites, _site(20, 0.5, 2), model_fn=lambda: fed.site_model(8), rounds=1, seed=0)
    got = fed.get_weights(run.model)
    sent = run.strategy.received[1]
    expected = [(40 * a + 20 * b) / 60 for a, b in zip(sent["a"], sent["b"])]
    assert all(np.allclose(g, e, atol=1e-6) for g, e in zip(got, expected))


def test_federated_bad_inputs():
    with pytest.raises(DataError, match="at least two sites"):
        fed.run_federated({"a": _site(10, 0.5, 0)}, _site(10, 0.5, 1))
    one_class = ImageDataset(np.zeros((4, 28, 28), np.uint8), np.zeros(4, int), ["normal", "pneumonia"])
    with pytest.raises(DataError, match="only one class"):
        fed.SiteClient("x", one_class, fed.site_model(8))
    with pytest.raises(DataError, match="no groups"):
        fed.split_sites(one_class)


def test_gradient_inversion_is_exact():
    torch.manual_seed(0)
    x = torch.rand(1, 50)
    layer = torch.nn.Linear(50, 8)
    torch.nn.functional.cross_entropy(layer(x)[:, :2], torch.tensor([1])).backward()
    recovered = fed.linear_gradient_inversion(layer.weight.grad.numpy(), layer.bias.grad.numpy())
    assert np.allclose(recovered, x.numpy()[0], atol=1e-5)
    with pytest.raises(DataError, match="bias gradient"):
        fed.linear_gradient_inversion(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(DataError, match="zero"):
        fed.linear_gradient_inversion(np.zeros((3, 4)), np.zeros(3))


def test_secure_sum_hides_updates_but_keeps_their_sum():
    rng = np.random.default_rng(0)
    updates = [[rng.normal(0, 0.1, (30, 20)), rng.normal(0, 0.1, 7)] for _ in range(3)]
    masked, total = fed.secure_sum(updates, clip=1.0, seed=0)
    plain = [sum(layer) for layer in zip(*updates)]
    assert all(np.abs(t - p).max() < 3 * 3 * 2 / 2**16 for t, p in zip(total, plain))
    assert abs(np.corrcoef(masked[0][0].ravel(), updates[0][0].ravel())[0, 1]) < 0.2
    with pytest.raises(DataError, match="two sites"):
        fed.secure_sum(updates[:1])
