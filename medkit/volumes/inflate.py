"""2-D to 3-D transfer (lesson 11): inflate a pretrained 2-D CNN's kernels into 3-D ones, I3D-style.

Carreira and Zisserman (I3D, CVPR 2017) "bootstrap" a 3-D network from an ImageNet 2-D one: each k x k kernel is
repeated k times along depth and divided by k, so a volume that is constant in depth gives every slice exactly the
2-D network's response (`inflation_gap` measures that). Batch norm statistics and everything else carry over as is.
"""

import copy

import torch
from torch import nn

from ..base.errors import ConfigError
from ..models import IMAGENET_MEAN, IMAGENET_STD, get_backbone

__all__ = ["inflate_conv", "inflate_batchnorm", "inflate", "efficientnet_body", "Volume3DNet",
           "volume_net", "inflation_gap", "min_volume_size"]


def inflate_conv(conv: nn.Conv2d, depth: int | None = None) -> nn.Conv3d:
    """Return a Conv3d whose kernel is `conv`'s repeated `depth` times (default: its height) and divided by `depth`."""
    depth = depth or conv.kernel_size[0]
    conv3d = nn.Conv3d(conv.in_channels, conv.out_channels, (depth, *conv.kernel_size),
                       stride=(conv.stride[0], *conv.stride), padding=(depth // 2, *conv.padding),
                       dilation=(1, *conv.dilation), groups=conv.groups, bias=conv.bias is not None)
    with torch.no_grad():
        conv3d.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth)
        if conv.bias is not None:
            conv3d.bias.copy_(conv.bias)
    return conv3d


def inflate_batchnorm(bn: nn.BatchNorm2d) -> nn.Module:
    """Return a BatchNorm3d with `bn`'s parameters and running statistics (and timm's fused activation after it)."""
    bn3d = nn.BatchNorm3d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                          track_running_stats=bn.track_running_stats)
    bn3d.load_state_dict(bn.state_dict())
    act = getattr(bn, "act", None)  # timm's BatchNormAct2d applies its activation inside the norm layer
    return nn.Sequential(bn3d, copy.deepcopy(act)) if isinstance(act, nn.Module) else bn3d


def inflate(module: nn.Module) -> nn.Module:
    """Return a 3-D copy of a 2-D network: every Conv2d and BatchNorm2d inflated, every other layer copied.

    The copy shares nothing with `module` (parameters, buffers, hooks), so fine-tuning it leaves the 2-D one intact.
    """
    return _inflate_in_place(copy.deepcopy(module))


def _inflate_in_place(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        return inflate_conv(module)
    if isinstance(module, nn.BatchNorm2d):
        return inflate_batchnorm(module)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Linear)) or \
            type(module).__name__.startswith(("SqueezeExcite", "SelectAdaptivePool2d")):
        raise ConfigError(f"inflate() does not know how to turn {type(module).__name__} into 3-D; inflate the "
                          "convolutional body only (efficientnet_body) and add a 3-D head.")
    for name, child in list(module.named_children()):  # the same classes remain, so their forward (residuals and
        setattr(module, name, _inflate_in_place(child))  # all) works on 5-D tensors
    return module


def efficientnet_body(num_blocks: int = 3, pretrained: bool = True) -> nn.Sequential:
    """Return the stem and the first `num_blocks` stages of efficientnet_lite0 (2-D, ImageNet weights or random)."""
    net = get_backbone("efficientnet_lite0", weights="DEFAULT" if pretrained else None)
    return nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:num_blocks])


_WIDTH = {1: 16, 2: 24, 3: 40, 4: 80, 5: 112, 6: 192, 7: 320}  # channels after the first n stages of lite0
_STRIDE = {1: 2, 2: 4, 3: 8, 4: 16, 5: 16, 6: 32, 7: 32}


def min_volume_size(num_blocks: int) -> int:
    """Return the smallest side a volume needs for the body's last stage to see more than one voxel per axis."""
    return 2 * _STRIDE[num_blocks]


class Volume3DNet(nn.Module):
    """A 3-D classifier: ImageNet normalisation of a grey volume, an inflated (or random) body, pooling, a linear head.

    Input: (N, 1, D, H, W) floats in [0, 1]. The grey channel is repeated three times and normalised with ImageNet's
    statistics, as the 2-D network saw its images.
    """

    def __init__(self, body: nn.Module, width: int, num_classes: int = 2, min_size: int = 1):
        super().__init__()
        self.body, self.min_size = body, min_size
        self.head = nn.Linear(width, num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1))

    def forward(self, x):
        if x.ndim != 5 or x.shape[1] != 1:
            raise ConfigError(f"Volume3DNet takes (N, 1, D, H, W) volumes; got shape {tuple(x.shape)}.")
        if min(x.shape[2:]) < self.min_size:
            raise ConfigError(f"A volume of {tuple(x.shape[2:])} voxels is too small for this network: it needs at "
                              f"least {self.min_size} per axis (its body downsamples by {self.min_size // 2}). "
                              "Resample the volume up, or use fewer stages (num_blocks).")
        x = (x.expand(-1, 3, -1, -1, -1) - self.mean) / self.std
        return self.head(self.body(x).mean(dim=(2, 3, 4)))


def volume_net(pretrained: bool, num_blocks: int = 3, num_classes: int = 2) -> Volume3DNet:
    """Return the lesson's 3-D network: efficientnet_lite0's first stages inflated from ImageNet, or random."""
    if num_blocks not in _WIDTH:
        raise ConfigError(f"num_blocks must be 1-7 (efficientnet_lite0 has 7 stages); got {num_blocks}.")
    body = inflate(efficientnet_body(num_blocks, pretrained))
    return Volume3DNet(body, _WIDTH[num_blocks], num_classes, min_volume_size(num_blocks))


@torch.no_grad()
def inflation_gap(body2d: nn.Module, body3d: nn.Module, image: torch.Tensor, depth: int = 96) -> float:
    """Return max |3-D - 2-D| / max |2-D| on the middle output slice of `image` (N, C, H, W) repeated `depth` times.

    Far from the depth borders (zero padding) the inflated network must reproduce the 2-D one up to float rounding.
    """
    body2d, body3d = body2d.eval(), body3d.eval()
    flat = body2d(image)
    deep = body3d(image.unsqueeze(2).expand(-1, -1, depth, -1, -1).contiguous())
    middle = deep[:, :, deep.shape[2] // 2]
    return float((middle - flat).abs().max() / flat.abs().max().clamp_min(1e-12))
