"""Medical 3-D checkpoints, the Med3D route of lesson 11 (online only): a registry entry, a hash-checked download.

Med3D / MedicalNet (Chen, Ma and Zheng, 2019; github.com/Tencent/MedicalNet) pretrained 3-D ResNets on 23 medical
segmentation datasets. A `Checkpoint` says where such a file comes from and its sha256; `checkpoint_path` downloads
it through medkit's cache (`medkit.base.cache.download`: temporary file, hash check, atomic rename, a clear error
offline). Medkit has never been able to download the MedicalNet file (it is built offline), so its entry carries
`sha256=None` and is refused as *unverified* until you check the file against its publisher and pass the hash you
checked: medkit never loads weights it cannot verify. The download path itself is tested against a local server.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..base.cache import cache_dir, download
from ..base.errors import WeightsError
from ..base.named import NamedRegistry

__all__ = ["Checkpoint", "register_checkpoint", "list_checkpoints", "get_checkpoint", "checkpoint_path",
           "load_med3d", "MedicalNetResNet", "medicalnet_resnet10"]


@dataclass(frozen=True)
class Checkpoint:
    """One downloadable 3-D checkpoint: its URL, its sha256 (None: not verified by medkit) and the model it fits."""

    name: str
    url: str
    filename: str  # name in medkit's cache, under checkpoints/
    sha256: str | None  # full hash; None refuses the download until the caller supplies a hash they verified
    build: Callable[[], nn.Module] | None = None  # the architecture whose state_dict the file holds
    meta: dict = field(default_factory=dict)  # source, licence, what it was trained on, input expected


_CHECKPOINTS = NamedRegistry("checkpoint")


def register_checkpoint(entry: Checkpoint) -> Checkpoint:
    """Add `entry` to the registry; a second entry with the same name is refused."""
    return _CHECKPOINTS.add(entry)


def list_checkpoints() -> list[str]:
    """Return the registered checkpoint names, sorted."""
    return _CHECKPOINTS.names()


def get_checkpoint(name) -> Checkpoint:
    """Return the entry named `name` (an entry passes through)."""
    return name if isinstance(name, Checkpoint) else _CHECKPOINTS.get(name)


def checkpoint_path(name, sha256: str | None = None, cache=None) -> Path:
    """Return the local path of a checkpoint, downloading it (online) after checking its sha256.

    Args:
        name: a registered name or a `Checkpoint`.
        sha256: the hash you verified yourself; needed when the entry has none (`sha256=None`), and checked
            against the entry's when both are given.
        cache: folder to keep it in (default: medkit's cache, `$MEDKIT_CACHE/checkpoints`).
    """
    entry = get_checkpoint(name)
    if entry.sha256 and sha256 and entry.sha256.lower() != sha256.lower():
        raise WeightsError(f"{entry.name}: the sha256 you passed ({sha256}) differs from the registered one "
                           f"({entry.sha256}). Check which file you mean.")
    expected = sha256 or entry.sha256
    if not expected:
        raise WeightsError(
            f"{entry.name} is unverified: medkit has no sha256 for {entry.url}, so it will not download or load it. "
            "Download the file yourself, compare it with the publisher's checksum or model card, then call "
            f"checkpoint_path({entry.name!r}, sha256='<the hash you checked>').")
    folder = Path(cache) if cache is not None else cache_dir() / "checkpoints"
    return download(entry.url, folder / entry.filename, expected, fetch_hint=f"medkit fetch --checkpoints {entry.name}")


def load_med3d(name, model: nn.Module | None = None, sha256: str | None = None, cache=None) -> nn.Module:
    """Return `model` (default: the entry's architecture) with the checkpoint's weights; refuses a file that fits not.

    DataParallel's "module." prefixes are dropped; keys of the model that the file lacks (a new head) stay as
    initialised, and are listed in `model.medkit_missing_keys`.
    """
    entry = get_checkpoint(name)
    path = checkpoint_path(entry, sha256=sha256, cache=cache)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt pickle raises many types
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({exc}).") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state_dict.")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if model is None:
        if entry.build is None:
            raise WeightsError(f"{entry.name} names no architecture; pass the model to load it into.")
        model = entry.build()
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in state if k not in own]
    if wrong or unexpected or not set(state) & set(own):
        raise WeightsError(f"{path} does not fit {type(model).__name__}: {len(unexpected)} unknown key(s) "
                           f"{unexpected[:3]}, {len(wrong)} of another shape {wrong[:3]}.")
    model.load_state_dict(state, strict=False)
    model.medkit_missing_keys = sorted(set(own) - set(state))
    return model


class _BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:  # MedicalNet's shortcut type B: a 1x1x1 convolution
            self.downsample = nn.Sequential(nn.Conv3d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm3d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class MedicalNetResNet(nn.Module):
    """MedicalNet's 3-D ResNet body (parameter names as in Tencent/MedicalNet models/resnet.py), with a linear head.

    One input channel; layers 3 and 4 keep stride 1 and dilate instead, as MedicalNet does.
    """

    def __init__(self, layers=(1, 1, 1, 1), num_classes: int = 2):
        super().__init__()
        self.conv1 = nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        inplanes, blocks = 64, []
        for planes, n, stride, dilation in zip((64, 128, 256, 512), layers, (1, 2, 1, 1), (1, 1, 2, 4)):
            stage = [_BasicBlock(inplanes, planes, stride, dilation)] + \
                    [_BasicBlock(planes, planes, 1, dilation) for _ in range(n - 1)]
            blocks.append(nn.Sequential(*stage))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3, 4)))


def medicalnet_resnet10(num_classes: int = 2) -> MedicalNetResNet:
    """Return MedicalNet's ResNet-10 (one block per stage), randomly initialised."""
    return MedicalNetResNet((1, 1, 1, 1), num_classes)


register_checkpoint(Checkpoint(
    name="medicalnet_resnet10",
    url="https://huggingface.co/TencentMedicalNet/MedicalNet-Resnet10/resolve/main/resnet_10_23dataset.pth",
    filename="medicalnet_resnet_10_23dataset.pth",
    sha256=None,  # not verified: medkit is built offline; refused until the caller passes a hash they checked
    build=medicalnet_resnet10,
    meta={"paper": "Chen, Ma, Zheng. Med3D: Transfer Learning for 3D Medical Image Analysis. arXiv:1904.00625 (2019)",
          "source": "Tencent/MedicalNet (GitHub), mirrored on the Hugging Face hub; URL not verified offline",
          "licence": "MIT per the Tencent/MedicalNet repository (check before redistributing)",
          "trained_on": "23 medical segmentation datasets (CT and MRI), one channel, intensities z-scored",
          "size_mb": "about 58 (not verified)"},
))
