"""A trained model on disk: `model.pt` (state dict) + `config.json` (everything needed to rebuild and preprocess).

`medkit fit` writes one, `medkit evaluate` and `medkit export` read it. Loading always uses
`torch.load(..., weights_only=True)`; the config says which backbone the weights belong to, so a
checkpoint from another backbone is refused with a clear error.
"""

import json
from pathlib import Path

import torch
from torch import nn

from .errors import DataError, WeightsError
from .models import get_backbone, get_spec

__all__ = ["save_checkpoint", "load_checkpoint", "read_config", "CONFIG_FILE", "WEIGHTS_FILE"]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.pt"


def save_checkpoint(out_dir, model: nn.Module, *, image_size: int, classes, threshold: float = 0.5, **extra) -> Path:
    """Write `model` and its config (backbone, classes, image size, normalisation, threshold...) into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = get_spec(model)
    config = {"backbone": spec.name, "num_classes": len(classes), "classes": list(classes), "image_size": int(image_size),
              "mean": list(spec.mean), "std": list(spec.std), "threshold": float(threshold), **extra}
    torch.save(model.state_dict(), out_dir / WEIGHTS_FILE)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return out_dir


def read_config(ckpt_dir) -> dict:
    """Return the config of a checkpoint folder."""
    path = Path(ckpt_dir) / CONFIG_FILE
    if not path.exists():
        raise DataError(f"{ckpt_dir} is not a medkit checkpoint: {CONFIG_FILE} is missing. Train one with `medkit fit`.")
    return json.loads(path.read_text())


def load_checkpoint(ckpt_dir, backbone: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint folder and return (model in eval mode, config)."""
    config = read_config(ckpt_dir)
    if backbone is not None and backbone != config["backbone"]:
        raise WeightsError(f"Checkpoint {ckpt_dir} holds a {config['backbone']} model, not {backbone}.")
    model = get_backbone(config["backbone"], weights=None, num_classes=config["num_classes"])
    try:
        state = torch.load(Path(ckpt_dir) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except FileNotFoundError as exc:
        raise DataError(f"{ckpt_dir} has no {WEIGHTS_FILE}; the training run did not finish.") from exc
    except RuntimeError as exc:
        raise WeightsError(f"The weights in {ckpt_dir} do not fit a {config['backbone']} with "
                           f"{config['num_classes']} classes: {str(exc)[:200]}") from exc
    return model.eval(), config
