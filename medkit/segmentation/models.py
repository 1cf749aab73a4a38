"""A U-Net (or FPN) whose encoder is a medkit backbone, pretrained or random (segmentation-models-pytorch).

smp builds the architecture; the ImageNet weights never come from a hub but from
`medkit.models.get_backbone`, whose weights are bundled (efficientnet_lite0) or hash-checked, and
are copied into smp's encoder tensor by tensor, by name. Every encoder tensor must be filled, so a
silent half-load cannot happen.
"""

import warnings

import torch
from torch import nn

from ..base.errors import DataError, UnknownNameError, WeightsError
from ..models import get_backbone, get_spec

__all__ = ["ENCODERS", "ARCHITECTURES", "Segmenter", "build_segmenter", "load_encoder_weights", "freeze_encoder",
           "parameter_counts"]

# medkit backbone -> the smp encoder with the same layers and parameter names
ENCODERS = {"efficientnet_lite0": "tu-efficientnet_lite0", "resnet18": "resnet18", "resnet50": "resnet50"}
ARCHITECTURES = ("unet", "fpn")


class Segmenter(nn.Module):
    """Normalise grey or RGB images the way the encoder's weights expect, then return mask logits.

    Input: (N, 1 or 3, H, W), uint8 (0-255) or float (0-1), H and W multiples of `stride`.
    Output: logits (N, classes, H, W); a pixel is foreground where the logit is > 0.
    """

    def __init__(self, net: nn.Module, encoder: str, weights, mean, std, stride: int):
        super().__init__()
        self.net, self.encoder_name, self.encoder_weights, self.stride = net, encoder, weights, int(stride)
        self.encoder_frozen = False
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise DataError(f"Expected a batch (N, 1 or 3, H, W), got shape {tuple(x.shape)}.")
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise DataError(f"Image size {tuple(x.shape[-2:])} is not a multiple of {self.stride}, which this "
                            f"encoder depth needs; resize to e.g. {self.stride * max(1, round(x.shape[-1] / self.stride))} px.")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # grey X-ray into an RGB encoder: same value per channel
        return self.net((x - self.mean) / self.std)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoder_frozen:  # a frozen encoder keeps its ImageNet batch-norm statistics too
            self.net.encoder.eval()
        return self


def load_encoder_weights(encoder: nn.Module, backbone: nn.Module) -> int:
    """Copy a medkit backbone's tensors into an smp encoder by name; return how many were copied.

    Raises WeightsError unless every tensor of the encoder has a same-named, same-shaped source
    (the backbone's extra head tensors are ignored: a segmentation encoder has no classifier).
    """
    target = encoder.state_dict()
    source = backbone.state_dict()
    # timm-universal encoders hold the timm model under `model.`; smp's own encoders use the torchvision names
    prefix = "model." if all(k.startswith("model.") for k in target) else ""
    state, missing = {}, []
    for key, ref in target.items():
        src = source.get(key[len(prefix):])
        if src is None or src.shape != ref.shape:
            missing.append(key)
        else:
            state[key] = src
    if missing:
        raise WeightsError(f"{len(missing)} encoder tensors have no matching backbone tensor (first: {missing[:3]}); "
                           "the backbone and the smp encoder are not the same architecture.")
    encoder.load_state_dict(state, strict=True)
    return len(state)


def build_segmenter(encoder: str = "efficientnet_lite0", weights="DEFAULT", *, arch: str = "unet", classes: int = 1,
                    encoder_depth: int = 4, decoder_channels=None) -> Segmenter:
    """Build a U-Net or FPN on a medkit backbone.

    Args:
        encoder: a medkit backbone with an smp twin (`ENCODERS`); its ImageNet weights load offline
            for efficientnet_lite0, online (or from medkit's cache) for the others.
        weights: "DEFAULT" or a tag for pretrained, None for a random encoder.
        arch: "unet" (skip connections at every scale: good for small lesions) or "fpn" (depth 5 only).
        classes: output channels; 1 for a binary mask.
        encoder_depth: how many encoder stages feed the decoder (3-5); fewer is faster on small images.
        decoder_channels: the U-Net decoder widths, deepest first (default: small, CPU-friendly).
    """
    import segmentation_models_pytorch as smp

    if encoder not in ENCODERS:
        raise UnknownNameError(f"No segmentation encoder for backbone {encoder!r}; choose one of {sorted(ENCODERS)}.")
    if arch not in ARCHITECTURES:
        raise UnknownNameError(f"Unknown segmentation architecture {arch!r}; choose one of {ARCHITECTURES}.")
    if not 3 <= encoder_depth <= 5:
        raise DataError(f"encoder_depth={encoder_depth}: choose 3, 4 or 5.")
    if arch == "fpn" and encoder_depth != 5:
        raise DataError(f"FPN needs encoder_depth=5 (smp's FPN output is mis-sized otherwise); got {encoder_depth}.")
    spec = get_spec(encoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # smp warns about `tu-` weight tags; we pass None and load ourselves
        if arch == "unet":
            channels = tuple(decoder_channels or (128, 64, 32, 16, 16)[5 - encoder_depth:])
            net = smp.Unet(ENCODERS[encoder], encoder_weights=None, encoder_depth=encoder_depth,
                           decoder_channels=channels, classes=classes)
        else:
            net = smp.FPN(ENCODERS[encoder], encoder_weights=None, encoder_depth=5, classes=classes,
                          decoder_pyramid_channels=64, decoder_segmentation_channels=32)
    tag = None
    if weights is not None:
        backbone = get_backbone(encoder, weights=weights)
        load_encoder_weights(net.encoder, backbone)
        tag = backbone.medkit_weights
    return Segmenter(net, encoder, tag, spec.mean, spec.std, stride=2 ** encoder_depth)


def freeze_encoder(model: Segmenter, frozen: bool = True) -> Segmenter:
    """Freeze (or unfreeze) the encoder: its weights and batch-norm statistics stay as loaded."""
    for p in model.net.encoder.parameters():
        p.requires_grad_(not frozen)
    model.encoder_frozen = frozen
    model.train(model.training)
    return model


def parameter_counts(model: Segmenter) -> dict:
    """Return {"encoder" | "decoder" | "head": (trainable, total)} parameter counts."""
    parts = {"encoder": model.net.encoder, "decoder": model.net.decoder, "head": model.net.segmentation_head}
    return {name: (sum(p.numel() for p in m.parameters() if p.requires_grad), sum(p.numel() for p in m.parameters()))
            for name, m in parts.items()}
