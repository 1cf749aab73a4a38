"""Federated averaging across simulated hospitals with Flower, run in one process (lesson 09).

Flower's simulation engine (`flwr.simulation.run_simulation`) runs each client in a Ray actor; Ray is
not installed here and its runtime (a head node and worker processes) does not fit a 1-CPU, 2 GB
workshop kernel. So the lesson runs Flower's own server loop (`flwr.server.Server`: configure_fit,
fit_clients, aggregate_fit, centralised evaluation, `History`) with Flower's `FedAvg` strategy and
`NumPyClient`s, and swaps only the transport: `InProcessClientProxy` hands the `FitIns` to the client
object directly instead of over gRPC or Ray. Strategies, wrappers such as
`DifferentialPrivacyServerSideFixedClipping`, and clients are used unchanged.
"""

# ruff: noqa: E402  (the extra is checked first, so a missing one gives the pip command, not an ImportError)

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..base._optional import require

require("flwr", "federated", "medkit.methods.federated (lesson 09's Flower server loop)")

from flwr.client import NumPyClient
from flwr.common import DisconnectRes, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import Server, SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from torch import nn

from ..base.errors import DataError
from ..core.train import predict
from ..data.dataset import ImageDataset
from ..data.loaders import BatchLoader
from ..evaluation.metrics import auc as auc_score
from ..models.small import SmallCNN, grey_preprocess

__all__ = ["site_model", "get_weights", "set_weights", "SiteClient", "InProcessClientProxy", "OrderedFedAvg",
           "FederatedRun", "run_federated", "positive_rate", "local_train", "train_alone", "evaluate", "split_sites", "linear_gradient_inversion",
           "secure_sum"]


def site_model(width: int = 16, num_classes: int = 2) -> SmallCNN:
    """Return lesson 09's model: the small CNN with GroupNorm (no running statistics to average across sites)."""
    return SmallCNN(width=width, num_classes=num_classes, norm="group")


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Return the model's state as a list of NumPy arrays, in state_dict order (what Flower sends)."""
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def set_weights(model: nn.Module, weights) -> nn.Module:
    """Load a list of NumPy arrays (in state_dict order) into `model`, checking every shape."""
    keys = list(model.state_dict())
    if len(weights) != len(keys):
        raise DataError(f"Got {len(weights)} arrays for a model with {len(keys)} tensors; not the same architecture.")
    state = {}
    for key, array, ref in zip(keys, weights, model.state_dict().values()):
        if tuple(np.shape(array)) != tuple(ref.shape):
            raise DataError(f"Array for {key} has shape {tuple(np.shape(array))}, the model expects {tuple(ref.shape)}.")
        state[key] = torch.as_tensor(np.asarray(array), dtype=ref.dtype)
    model.load_state_dict(state)
    return model


@torch.no_grad()
def evaluate(model: nn.Module, dataset: ImageDataset) -> float:
    """Return the AUC of `model` on `dataset` (grey images, the small networks' preprocessing)."""
    probs, labels = predict(model, BatchLoader(dataset, 256, preprocess=grey_preprocess(dataset.image_size[0])))
    return auc_score(labels, probs)


@torch.no_grad()
def positive_rate(model: nn.Module, dataset: ImageDataset) -> float:
    """Return the mean predicted probability of the positive class (label 1) over `dataset`."""
    probs, _ = predict(model, BatchLoader(dataset, 256, preprocess=grey_preprocess(dataset.image_size[0])))
    return float(probs[:, 1].mean())


def local_train(model: nn.Module, dataset: ImageDataset, *, epochs: int = 1, lr: float = 0.05, batch_size: int = 32,
                seed: int = 0) -> float:
    """Train `model` on `dataset` with plain SGD + momentum at a constant rate; return the last epoch's mean loss.

    FedAvg's local step (McMahan et al.) is plain SGD; a constant rate also keeps one round's schedule from
    restarting a warm-up every round. The baselines (`train_alone`) use the very same loop.
    """
    loader = BatchLoader(dataset, batch_size, shuffle=True, seed=seed, preprocess=grey_preprocess(dataset.image_size[0]))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    model.train()
    for _ in range(int(epochs)):
        total, seen = 0.0, 0
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(y), seen + len(y)
    return total / max(seen, 1)


def split_sites(dataset: ImageDataset) -> dict[str, ImageDataset]:
    """Return {site name: its images} from a dataset whose `groups` name the sites (`medkit.data.sites.make_sites`)."""
    if dataset.groups is None:
        raise DataError(f"{dataset.name or 'dataset'} has no groups; build the sites with medkit.data.sites.make_sites.")
    names = list(dict.fromkeys(dataset.groups.tolist()))  # order of first appearance: the order sites were made
    return {name: dataset.subset(dataset.groups == name, f"site:{name}") for name in names}


class SiteClient(NumPyClient):
    """One hospital: a Flower `NumPyClient` that trains the global model on its own images only."""

    def __init__(self, name: str, dataset: ImageDataset, model: nn.Module, *, local_epochs: int = 1,
                 batch_size: int = 32, lr: float = 0.05, seed: int = 0):
        if len(np.unique(dataset.labels)) < 2:
            raise DataError(f"Site {name!r} has only one class; every site needs both to train a classifier.")
        self.name, self.dataset, self.model = name, dataset, model
        self.local_epochs, self.batch_size, self.lr, self.seed = int(local_epochs), int(batch_size), float(lr), int(seed)

    def get_parameters(self, config):
        return get_weights(self.model)

    def fit(self, parameters, config):
        set_weights(self.model, parameters)
        server_round = int(config.get("server_round", 0))
        loss = local_train(self.model, self.dataset, epochs=self.local_epochs, lr=self.lr, batch_size=self.batch_size,
                           seed=self.seed * 1000 + server_round)
        return get_weights(self.model), len(self.dataset), {"train_loss": loss}

    def evaluate(self, parameters, config):
        set_weights(self.model, parameters)
        return 0.0, len(self.dataset), {"auc": evaluate(self.model, self.dataset)}


class InProcessClientProxy(ClientProxy):
    """A Flower `ClientProxy` that calls a client object in this process (no gRPC, no Ray)."""

    def __init__(self, cid: str, client):
        super().__init__(cid)
        self.client = client.to_client() if hasattr(client, "to_client") else client

    def get_properties(self, ins, timeout, group_id):
        return self.client.get_properties(ins)

    def get_parameters(self, ins, timeout, group_id):
        return self.client.get_parameters(ins)

    def fit(self, ins, timeout, group_id):
        return self.client.fit(ins)

    def evaluate(self, ins, timeout, group_id):
        return self.client.evaluate(ins)

    def reconnect(self, ins, timeout, group_id):
        return DisconnectRes(reason="in-process client: nothing to reconnect")


class OrderedFedAvg(FedAvg):
    """Flower's FedAvg, aggregating the sites in a fixed order and keeping what the server received.

    Flower collects results as client threads finish; summing floats in a different order changes
    the last bits, so results are sorted by client id first: the same seed gives the same model.
    `received[round]` keeps each site's returned weights, i.e. exactly what an honest-but-curious
    server sees (section "what updates leak" of lesson 09).
    """

    def __init__(self, *args, keep_received: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_received, self.received = keep_received, {}

    def aggregate_fit(self, server_round, results, failures):
        results = sorted(results, key=lambda item: item[0].cid)
        if self.keep_received:
            self.received[server_round] = {proxy.cid: parameters_to_ndarrays(res.parameters) for proxy, res in results}
        return super().aggregate_fit(server_round, results, failures)


def _weighted_loss(metrics):
    total = sum(n for n, _ in metrics)
    return {"train_loss": sum(n * m["train_loss"] for n, m in metrics) / max(total, 1)}


@dataclass
class FederatedRun:
    """What a federated run produced: the global model, AUC per round, Flower's history and strategy."""

    model: nn.Module
    auc_per_round: list = field(default_factory=list)  # centralised test AUC after rounds 0 (init), 1, 2, ...
    history: object = None  # flwr.server.History
    strategy: object = None
    initial_weights: list = field(default_factory=list)
    seconds: float = 0.0


def run_federated(sites: dict, test: ImageDataset, *, model_fn: Callable[[], nn.Module] = site_model, rounds: int = 10,
                  local_epochs: int = 1, batch_size: int = 32, lr: float = 0.05, seed: int = 0,
                  wrap_strategy: Callable | None = None, quiet: bool = True) -> FederatedRun:
    """Train one model across `sites` with Flower's FedAvg, in process; evaluate it on `test` after every round.

    Args:
        sites: {site name: ImageDataset}; the images never leave their site, only weights do.
        test: where the server measures the global model after each round (centralised evaluation).
        model_fn: builds the model (called once for the server and once per site, after seeding).
        rounds, local_epochs: communication rounds, and local epochs each site trains between them.
        wrap_strategy: e.g. `lambda s: DifferentialPrivacyServerSideFixedClipping(s, 0.1, 1.0, len(sites))`.
    """
    if len(sites) < 2:
        raise DataError(f"Federated learning needs at least two sites, got {len(sites)}: {list(sites)}.")
    torch.manual_seed(seed)
    model = model_fn()
    initial = get_weights(model)
    evaluation_model = model_fn()

    def evaluate_fn(server_round, weights, config):
        set_weights(evaluation_model, weights)
        return 0.0, {"auc": evaluate(evaluation_model, test)}

    strategy = OrderedFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=len(sites),
                             min_available_clients=len(sites), evaluate_fn=evaluate_fn,
                             on_fit_config_fn=lambda server_round: {"server_round": server_round},
                             initial_parameters=ndarrays_to_parameters(initial),
                             fit_metrics_aggregation_fn=_weighted_loss)
    manager = SimpleClientManager()
    for i, (name, dataset) in enumerate(sites.items()):
        client = SiteClient(name, dataset, model_fn(), local_epochs=local_epochs, batch_size=batch_size, lr=lr,
                            seed=seed + i)
        manager.register(InProcessClientProxy(name, client))
    server = Server(client_manager=manager, strategy=wrap_strategy(strategy) if wrap_strategy else strategy)
    server.set_max_workers(1)  # one site at a time: one CPU core, and the same order every run
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if quiet:
        flwr_logger.setLevel(logging.WARNING)
    try:
        history, seconds = server.fit(num_rounds=rounds, timeout=None)
    finally:
        flwr_logger.setLevel(level)
    set_weights(model, parameters_to_ndarrays(server.parameters))
    curve = [auc for _, auc in history.metrics_centralized.get("auc", [])]
    return FederatedRun(model, curve, history, strategy, initial, seconds)


def train_alone(dataset: ImageDataset, *, model_fn: Callable[[], nn.Module] = site_model, epochs: int = 10,
                batch_size: int = 32, lr: float = 0.05, seed: int = 0) -> nn.Module:
    """Train a model on one dataset (one site alone, or all sites pooled: the centralised baseline)."""
    torch.manual_seed(seed)
    model = model_fn()
    local_train(model, dataset, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    return model


def linear_gradient_inversion(grad_weight, grad_bias) -> np.ndarray:
    """Recover the input of a fully connected first layer from its gradients on one example.

    For y = Wx + b, dL/dW[i] = dL/db[i] * x for every unit i, so x = dL/dW[i] / dL/db[i] for any unit with a
    non-zero bias gradient (Phong et al., 2017). One image's gradient is that image.
    """
    grad_weight, grad_bias = np.asarray(grad_weight, dtype=np.float64), np.asarray(grad_bias, dtype=np.float64)
    if grad_weight.ndim != 2 or grad_bias.shape != (grad_weight.shape[0],):
        raise DataError(f"Need a weight gradient (out, in) and a bias gradient (out,); got {grad_weight.shape} "
                        f"and {grad_bias.shape}.")
    unit = int(np.argmax(np.abs(grad_bias)))
    if grad_bias[unit] == 0:
        raise DataError("Every bias gradient is zero: nothing to invert (was backward() called?).")
    return grad_weight[unit] / grad_bias[unit]


def secure_sum(updates: list, *, clip: float = 1.0, bits: int = 16, seed: int = 0):
    """Sum the sites' updates with pairwise masks, as secure aggregation does; return (masked, total).

    Each update is quantised with Flower's SecAgg+ quantiser; every pair of sites shares a random mask
    that one adds and the other subtracts (mod 2**bits x sites). The server sees only `masked`, each
    indistinguishable from noise, yet their sum is the sum of the updates: `total` (float arrays).
    Real SecAgg+ (flwr.server.workflow.SecAggPlusWorkflow) adds key agreement and dropout recovery.
    """
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        get_parameters_shape,
        parameters_addition,
        parameters_mod,
        parameters_subtraction,
    )
    from flwr.common.secure_aggregation.quantization import quantize
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

    if len(updates) < 2:
        raise DataError("Secure aggregation needs at least two sites' updates.")
    levels = 2 ** int(bits)
    modulus = levels * 2 ** int(np.ceil(np.log2(len(updates) + 1)))  # room for the sum of all sites
    shapes = get_parameters_shape(updates[0])
    state = np.random.get_state()
    np.random.seed(seed)  # Flower's stochastic rounding draws from NumPy's global generator
    try:
        quantised = [[q.astype(np.int64) for q in quantize(u, clip, levels)] for u in updates]
    finally:
        np.random.set_state(state)
    masked = []
    for i, q in enumerate(quantised):
        for j in range(len(updates)):
            if i == j:
                continue
            pair_seed = (seed * 7919 + min(i, j) * 131 + max(i, j)).to_bytes(8, "little")
            mask = pseudo_rand_gen(pair_seed, modulus, shapes)
            q = parameters_addition(q, mask) if i < j else parameters_subtraction(q, mask)
        masked.append(parameters_mod(q, modulus))
    total = masked[0]
    for m in masked[1:]:
        total = parameters_mod(parameters_addition(total, m), modulus)
    scale = 2 * clip / levels
    total = [t.astype(np.float64) * scale - len(updates) * clip for t in total]  # undo the shift of each site
    return masked, total
