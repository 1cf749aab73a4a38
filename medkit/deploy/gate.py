"""A sanity gate in front of a model: per-image checks and an out-of-distribution score (lesson 06).

A classifier answers every image with a class, confidently, whatever it is: a black frame, noise, an
inverted X-ray or a skin photo all come out "PNEUMONIA 0.99". The gate looks at each image before its
prediction is reported and flags it, naming the check, its score and the threshold:

- `flat`: the robust range of grey levels (99th minus 1st percentile) is under 2 levels (black, white, grey);
- `low_contrast`: that range is below a quarter of the lowest training images' (0.5% quantile);
- `noisy`: the mean step between neighbouring pixels (over that range) is over twice the training images' 99.9%
  quantile (uniform noise);
- `inverted`: the image correlates negatively with the training images' mean image (white lungs);
- `aspect`: width / height outside the training images' range, widened twice (a squashed strip);
- `too_small`: the shorter side under a quarter of the smallest training image's (a 1x1 image);
- `ood`: the distance of the model's L2-normalised pooled embedding to its k-th nearest training embedding
  (`ood_method="knn"`, the default; Sun et al., ICML 2022, "Out-of-distribution detection with deep nearest
  neighbors"), above its `quantile` on held-out in-distribution images (fit's val part). `"mahalanobis"`
  is the earlier score: the Ledoit-Wolf Mahalanobis distance on the drift monitor's PCA features (Lee et
  al., NeurIPS 2018). benchmarks/bench_ood_gate.py measured both (benchmarks/RECIPE.md, "The sanity gate").

`medkit fit` stores the reference statistics in the checkpoint (`gate.npz`), `medkit export` copies them
beside the ONNX file (`model.onnx.gate.npz`), so `predict` and `evaluate` gate without the training data.
Without a reference the image checks run with fixed defaults and the OOD score is unavailable.
`benchmarks/bench_ood_gate.py` measures its false alarms on held-out X-rays and its detection of hostile inputs.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..base.atomic import atomic_path
from ..base.errors import DataError
from ..base.paths import check_file
from ..data.images import resize_image
from ..data.pixels import DEFAULT_VALUE_RANGE
from ..models import split_head
from .drift import BAD_REFERENCE, _features, check_saved_for
from .onnx import _softmax

__all__ = ["GATE_FILE", "GATE_FORMAT", "OOD_METHODS", "KNN_K", "Flag", "Verdict", "SanityGate", "gate_path", "raw_shape", "embed_and_predict",
           "dataset_shapes", "fit_gate", "summarise", "onnx_gate", "export_gate", "predict_gated"]

GATE_FILE = "gate.npz"  # in a checkpoint folder, beside config.json
GATE_FORMAT = "medkit-gate/1"
OOD_METHODS = ("knn", "mahalanobis")
KNN_K = 10  # the k-th neighbour: benchmarks/bench_ood_gate.py compared k = 1 and 10
_SIDE = 32  # images are compared at this size: enough for the layout of a chest film, cheap for thousands
_FLAT = 2.0  # grey levels: a robust range under this is a constant image
_DEFAULT_CONTRAST = 24.0  # without a reference: about a tenth of the 0-255 range
_DEFAULT_ROUGH = 0.15  # without a reference: twice the roughest radiograph measured (see `_image_stats`)
_DEFAULT_ASPECT = (1 / 3, 3.0)  # without a reference: wider than 3:1 either way is no radiograph
_DEFAULT_MIN_SIDE = 16  # without a reference: nothing under 16 px is legible at any model size


def gate_path(onnx_path) -> Path:
    """Return the gate reference saved with an ONNX file: `model.onnx` -> `model.onnx.gate.npz`."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".gate.npz")


@dataclass(frozen=True)
class Flag:
    """One failed check: its name, the image's score and the threshold it crossed."""

    check: str
    score: float
    threshold: float

    def __str__(self) -> str:
        side = ">" if self.check in ("ood", "noisy") or (self.check == "aspect" and self.score > self.threshold) else "<"
        return f"{self.check} {self.score:.3g} {side} {self.threshold:.3g}"


@dataclass
class Verdict:
    """What the gate says about one image: the flags raised (none: it may be predicted) and its OOD score."""

    flags: list = field(default_factory=list)
    ood_score: float | None = None

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def as_dict(self) -> dict:
        """Return the verdict as JSON-ready data."""
        return {"flagged": self.flagged, "ood_score": self.ood_score,
                "checks": [{"check": f.check, "score": f.score, "threshold": f.threshold} for f in self.flags]}

    def __str__(self) -> str:
        return "; ".join(map(str, self.flags)) or "ok"


def raw_shape(path) -> tuple[int, int]:
    """Return (height, width) of an image file from its header (PNG/JPEG/TIFF by Pillow, else DICOM rows/columns)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[1]), int(im.size[0])
    except (UnidentifiedImageError, OSError):
        pass
    from ..data.dicom import open_dicom

    ds = open_dicom(path, pixels=False)
    return int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)


def _grey_small(image) -> np.ndarray:
    """Return one uint8 image (H, W) or (H, W, C) as float grey at `_SIDE` px."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = image.mean(-1).round().astype(np.uint8)
    return resize_image(image.astype(np.uint8), _SIDE).astype(np.float64)


def _image_stats(images) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (robust range in grey levels, roughness (N,), small standardised images (N, _SIDE * _SIDE)).

    Roughness is the mean step between neighbouring pixels over the robust range: radiographs are smooth at
    32 px (0.03-0.09 on Kermany and PneumoniaMNIST), uniform noise is not (0.2).
    """
    grid = np.stack([_grey_small(im) for im in images])
    small = grid.reshape(len(images), -1)
    low, high = np.percentile(small, [1, 99], axis=1)
    steps = (np.abs(np.diff(grid, axis=1)).mean((1, 2)) + np.abs(np.diff(grid, axis=2)).mean((1, 2))) / 2
    rough = steps / np.maximum(high - low, 1e-9)
    centred = small - small.mean(1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return high - low, rough, np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 1e-9)


class SanityGate:
    """Reference statistics of the training images and embeddings, and the checks they set.

    Build one with `SanityGate.fit(...)` (or `fit_gate` for a model and datasets), save it with the model, and
    call `check(images, embeddings, shapes)` before reporting predictions. `SanityGate()` alone has no reference:
    fixed image checks and no OOD score.
    """

    def __init__(self, *, contrast_floor: float = _DEFAULT_CONTRAST, roughness_ceiling: float = _DEFAULT_ROUGH,
                 aspect_range=_DEFAULT_ASPECT,
                 min_side: int = _DEFAULT_MIN_SIDE, mean_image=None, inverted_below: float | None = None,
                 ood: dict | None = None, quantile: float | None = None, n_reference: int = 0,
                 ood_method: str = "knn"):
        self.contrast_floor, self.min_side = float(contrast_floor), int(min_side)
        self.roughness_ceiling = float(roughness_ceiling)
        self.aspect_range = (float(aspect_range[0]), float(aspect_range[1]))
        self.mean_image = None if mean_image is None else np.asarray(mean_image, np.float64)
        self.inverted_below = None if inverted_below is None else float(inverted_below)
        # ood, knn: reference (N, D) unit embeddings, k and threshold (a distance); mahalanobis: pca_mean (D,),
        # components (k, D), center and scale (k + 1,), location (k + 1,), precision (k + 1, k + 1) and threshold;
        # None when the gate has no embedding reference
        if ood_method not in OOD_METHODS:
            raise DataError(f"Unknown OOD method {ood_method!r}; choose one of {', '.join(OOD_METHODS)}.")
        self.ood_method = ood_method
        self.ood = None if ood is None else {k: np.asarray(v, np.float32 if k == "reference" else np.float64)
                                             for k, v in ood.items()}
        self.quantile, self.n_reference = quantile, int(n_reference)

    @property
    def has_reference(self) -> bool:
        return self.ood is not None

    @classmethod
    def fit(cls, train_images, train_embeddings, heldout_images, heldout_embeddings, *, train_shapes=None,
            quantile: float = 0.99, n_components: int = 32, ood_method: str = "knn", k: int = KNN_K) -> "SanityGate":
        """Fit the reference on training images and their embeddings; set thresholds on held-out ones.

        Args:
            train_images, heldout_images: uint8 images (N, H, W) or (N, H, W, C) as the model sees them.
            train_embeddings, heldout_embeddings: the model's embeddings of the same images (N, D).
            train_shapes: (height, width) of the raw training files, for the aspect and size checks (default:
                the images' own shape).
            quantile: of held-out images' OOD distances: the threshold, so about 1 - quantile of clean
                images are flagged (measured by benchmarks/bench_ood_gate.py).
            n_components: PCA components of the embedding (fewer when there are few training images; mahalanobis).
            ood_method, k: "knn" (distance to the k-th nearest training embedding) or "mahalanobis".
        """
        X, H = np.asarray(train_embeddings, np.float64), np.asarray(heldout_embeddings, np.float64)
        if X.ndim != 2 or H.ndim != 2 or X.shape[1] != H.shape[1] or len(X) < 8 or len(H) < 4:
            raise DataError(f"The gate needs at least 8 training and 4 held-out embeddings of one width; got "
                            f"{X.shape} and {H.shape}. Fit it on more images.")
        if not 0.5 < quantile < 1:
            raise DataError(f"quantile must be in (0.5, 1), e.g. 0.99; got {quantile}.")
        if ood_method not in OOD_METHODS:
            raise DataError(f"Unknown OOD method {ood_method!r}; choose one of {', '.join(OOD_METHODS)}.")
        contrast, rough, small = _image_stats(train_images)
        held_contrast, held_rough, held_small = _image_stats(heldout_images)
        mean_image = small.mean(0)
        mean_image /= max(np.linalg.norm(mean_image), 1e-12)
        corr = held_small @ mean_image
        # the training images must share a layout (chest films do) for "negatively correlated" to mean inverted
        low_corr = float(np.quantile(corr, 0.01))
        shapes = np.asarray(train_shapes if train_shapes is not None
                            else [np.asarray(im).shape[:2] for im in train_images], np.float64)
        ratios = shapes[:, 1] / np.maximum(shapes[:, 0], 1)
        return cls(roughness_ceiling=2 * float(np.quantile(np.concatenate([rough, held_rough]), 0.999)),
                   contrast_floor=max(_FLAT, float(np.quantile(np.concatenate([contrast, held_contrast]), 0.005)) / 4),
                   aspect_range=(float(ratios.min()) / 2, float(ratios.max()) * 2),
                   min_side=max(2, int(shapes.min()) // 4), mean_image=mean_image,
                   inverted_below=-low_corr / 2 if low_corr > 0.1 else None,
                   ood=_fit_knn(X, H, quantile, k) if ood_method == "knn" else _fit_ood(X, H, quantile, n_components),
                   quantile=quantile, n_reference=len(X), ood_method=ood_method)

    def shape_flags(self, shape) -> list[Flag]:
        """Return the flags of a raw image size (height, width): too small, or an aspect ratio far from training."""
        height, width = (int(s) for s in shape[:2])
        flags = []
        if min(height, width) < self.min_side:
            flags.append(Flag("too_small", float(min(height, width)), float(self.min_side)))
        ratio = width / max(height, 1)
        low, high = self.aspect_range
        if ratio < low or ratio > high:
            flags.append(Flag("aspect", ratio, low if ratio < low else high))
        return flags

    def image_flags(self, images) -> list[list[Flag]]:
        """Return the flags of each uint8 image (N, H, W) or (N, H, W, C): flat, low contrast, inverted."""
        contrast, rough, small = _image_stats(images)
        corr = small @ self.mean_image if self.mean_image is not None else np.zeros(len(small))
        out = []
        for c, g, r in zip(contrast, rough, corr):
            flags = []
            if c < _FLAT:
                flags.append(Flag("flat", float(c), _FLAT))
            elif c < self.contrast_floor:
                flags.append(Flag("low_contrast", float(c), self.contrast_floor))
            if c >= _FLAT and g > self.roughness_ceiling:
                flags.append(Flag("noisy", float(g), self.roughness_ceiling))
            if self.inverted_below is not None and c >= _FLAT and r < self.inverted_below:
                flags.append(Flag("inverted", float(r), self.inverted_below))
            out.append(flags)
        return out

    def ood_scores(self, embeddings) -> np.ndarray:
        """Return each embedding's OOD score: k-th nearest-neighbour distance (knn) or Mahalanobis distance."""
        if self.ood is None:
            raise DataError("This gate has no embedding reference, so there is no OOD score; fit one with "
                            "medkit.deploy.fit_gate or retrain with `medkit fit`.")
        o = self.ood
        X = np.asarray(embeddings, np.float64)
        width = (o["reference"] if self.ood_method == "knn" else o["pca_mean"]).shape[-1]
        if X.ndim != 2 or X.shape[1] != width:
            raise DataError(f"Expected embeddings shaped (N, {width}); got {X.shape}. Were they "
                            "computed by the model the gate was fitted for?")
        if self.ood_method == "knn":
            return _knn_distances(o["reference"], X, int(o["k"]))
        Z = (_features(X, o["pca_mean"], o["components"]) - o["center"]) / o["scale"] - o["location"]
        return np.sqrt(np.maximum(((Z @ o["precision"]) * Z).sum(1), 0.0))

    def check(self, images, embeddings=None, shapes=None) -> list[Verdict]:
        """Return one `Verdict` per image: image checks, size checks when `shapes` are given, OOD when embeddings are."""
        verdicts = [Verdict(flags) for flags in self.image_flags(images)]
        if shapes is not None:
            for verdict, shape in zip(verdicts, shapes):
                verdict.flags[:0] = self.shape_flags(shape)
        if embeddings is not None and self.ood is not None:
            threshold = float(self.ood["threshold"])
            for verdict, score in zip(verdicts, self.ood_scores(embeddings)):
                verdict.ood_score = float(score)
                if score > threshold:
                    verdict.flags.append(Flag("ood", float(score), threshold))
        return verdicts

    def save(self, path, model_sha256: str = "") -> Path:
        """Write the reference to an .npz file (atomically), tied to the sha256 of the model file it was fitted for."""
        path = Path(path)
        arrays = {f"ood_{k}": v for k, v in (self.ood or {}).items()}
        if self.mean_image is not None:
            arrays["mean_image"] = self.mean_image
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append ".npz"
            np.savez(f, format=GATE_FORMAT, model_sha256=str(model_sha256), method=self.ood_method,
                     contrast_floor=self.contrast_floor,
                     roughness_ceiling=self.roughness_ceiling,
                     aspect_range=np.array(self.aspect_range), min_side=self.min_side,
                     inverted_below=np.nan if self.inverted_below is None else self.inverted_below,
                     quantile=np.nan if self.quantile is None else self.quantile, n_reference=self.n_reference, **arrays)
        return path

    @classmethod
    def load(cls, path, model_sha256: str = "") -> "SanityGate":
        """Read a gate written by `save`; with `model_sha256`, refuse one saved for another model file."""
        check_file(path, "Gate reference", hint="Retrain with `medkit fit` (it writes gate.npz).")
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["format"]) != GATE_FORMAT:
                    raise ValueError(f"format {str(f['format'])!r}, expected {GATE_FORMAT!r}")
                saved_for = str(f["model_sha256"])
                inverted, quantile = float(f["inverted_below"]), float(f["quantile"])
                ood = {k[4:]: f[k] for k in f.files if k.startswith("ood_")} or None
                gate = cls(contrast_floor=float(f["contrast_floor"]), roughness_ceiling=float(f["roughness_ceiling"]),
                           aspect_range=tuple(f["aspect_range"]),
                           min_side=int(f["min_side"]), mean_image=f["mean_image"] if "mean_image" in f.files else None,
                           inverted_below=None if np.isnan(inverted) else inverted, ood=ood,
                           quantile=None if np.isnan(quantile) else quantile, n_reference=int(f["n_reference"]),
                           # the method is part of the file; one written before the choice existed is mahalanobis
                           ood_method=str(f["method"]) if "method" in f.files else "mahalanobis")
        except BAD_REFERENCE as exc:  # BadZipFile included: a corrupt gate.npz was a raw traceback
            raise DataError(f"{path} is not a gate reference written by SanityGate.save ({exc}). Retrain with "
                            "`medkit fit` (it writes gate.npz), or pass --allow-ood to predict without the gate.") from exc
        check_saved_for(path, saved_for, model_sha256, "gate reference",
                        "Export again from the checkpoint (`medkit export`), or retrain with `medkit fit`.")
        return gate

    def __repr__(self) -> str:
        how = (f"distance to the {int(self.ood['k'])}th nearest" if self.ood_method == "knn"
               else f"mahalanobis on {len(self.ood['components'])} components of") if self.ood is not None else ""
        ood = (f"ood threshold {float(self.ood['threshold']):.3g} (quantile {self.quantile} of held-out), "
               f"{how} {self.n_reference} reference images" if self.ood is not None else "no OOD reference")
        inverted = (f"inverted if r < {self.inverted_below:.3g}" if self.inverted_below is not None
                    else "no inversion check")
        return (f"SanityGate(contrast >= {self.contrast_floor:.3g}, roughness <= {self.roughness_ceiling:.3g}, aspect {self.aspect_range[0]:.3g}-"
                f"{self.aspect_range[1]:.3g}, side >= {self.min_side}, {inverted}, {ood})")


def _unit(X: np.ndarray) -> np.ndarray:
    """Return the rows of X scaled to unit length (a zero row stays zero)."""
    X = np.asarray(X, np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _knn_distances(reference: np.ndarray, X: np.ndarray, k: int) -> np.ndarray:
    """Return each row's Euclidean distance, once unit-normalised, to its k-th nearest reference row."""
    from sklearn.neighbors import NearestNeighbors

    k = min(int(k), len(reference))
    return NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(_unit(X))[0][:, -1].astype(np.float64)


def _fit_knn(X: np.ndarray, H: np.ndarray, quantile: float, k: int) -> dict:
    """Keep training embeddings X (unit length) as the reference; the threshold is the `quantile` of held-out H's scores."""
    reference = _unit(X)
    held = _knn_distances(reference, H, k)
    return {"reference": reference, "k": np.array(min(int(k), len(X))),
            "threshold": np.array(float(np.quantile(held, quantile)))}


def _fit_ood(X: np.ndarray, H: np.ndarray, quantile: float, n_components: int) -> dict:
    """Fit PCA + Ledoit-Wolf on training embeddings X; the threshold is the `quantile` of held-out H's distances."""
    from sklearn.covariance import LedoitWolf

    k = int(max(1, min(n_components, len(X) // 4, X.shape[1])))
    pca_mean = X.mean(0)
    _, _, vt = np.linalg.svd(X - pca_mean, full_matrices=False)
    components = vt[:k]
    F = _features(X, pca_mean, components)
    center, scale = F.mean(0), F.std(0) + 1e-12  # standardised first, so the shrinkage target treats all alike
    lw = LedoitWolf().fit((F - center) / scale)
    ood = {"pca_mean": pca_mean, "components": components, "center": center, "scale": scale,
           "location": lw.location_, "precision": lw.precision_, "threshold": np.array(0.0)}
    held = SanityGate(ood=ood, ood_method="mahalanobis").ood_scores(H)
    ood["threshold"] = np.array(float(np.quantile(held, quantile)))
    return ood


@torch.no_grad()
def embed_and_predict(model, loader, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (probabilities (N, K), labels (N,), embeddings (N, D)) of a classifier in one pass over `loader`."""
    body, head = split_head(model)
    body.eval().to(device)
    head.eval().to(device)
    probs, labels, embeddings = [], [], []
    for x, y in loader:
        emb = body(x.to(device)).float()
        probs.append(torch.softmax(head(emb).float(), dim=1).cpu())
        embeddings.append(emb.cpu())
        labels.append(y)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy(), torch.cat(embeddings).numpy()


def dataset_shapes(ds) -> list | None:
    """Return the raw (height, width) of each image file of a dataset, or None when it came from an array file."""
    paths = ds.meta.get("paths") if isinstance(getattr(ds, "meta", None), dict) else None
    if not paths or len(paths) != len(ds):
        return None
    return [raw_shape(p) for p in paths]


def fit_gate(model, train_ds, heldout_ds, preprocess, *, device: str = "cpu", batch_size: int = 64,
             max_train: int = 1000, seed: int = 0, quantile: float = 0.99) -> SanityGate:
    """Fit a `SanityGate` for `model` on (up to `max_train` of) the training images and on held-out ones.

    Args:
        train_ds, heldout_ds: `medkit.data.ImageDataset`s; held-out images (fit's val part) set the thresholds.
        preprocess: the backbone's preprocessing at the model's size (`get_spec(name).preprocess(size)`).
    """
    from ..data import BatchLoader

    if len(train_ds) > max_train:  # a random subset: the reference costs one forward pass per image
        train_ds = train_ds.subset(np.sort(np.random.default_rng(seed).choice(len(train_ds), max_train, replace=False)))
    _, _, train_emb = embed_and_predict(model, BatchLoader(train_ds, batch_size, preprocess=preprocess), device)
    _, _, held_emb = embed_and_predict(model, BatchLoader(heldout_ds, batch_size, preprocess=preprocess), device)
    return SanityGate.fit(train_ds.images, train_emb, heldout_ds.images, held_emb, train_shapes=dataset_shapes(train_ds),
                          quantile=quantile)


def summarise(verdicts) -> dict:
    """Return how many images were flagged, by which check, and each flagged image's index and flags."""
    by_check = {}
    for v in verdicts:
        for name in {f.check for f in v.flags}:
            by_check[name] = by_check.get(name, 0) + 1
    return {"n": len(verdicts), "flagged": sum(v.flagged for v in verdicts), "by_check": dict(sorted(by_check.items())),
            "images": [{"index": i, **v.as_dict()} for i, v in enumerate(verdicts) if v.flagged]}


def onnx_gate(predictor, log=None) -> SanityGate:
    """Return the gate saved beside an `OnnxPredictor`'s file (checked against its sha256), or one without OOD."""
    path = gate_path(predictor.path)
    if path.is_file():
        return SanityGate.load(path, model_sha256=predictor.meta.get("onnx_sha256", ""))
    if log:
        log(f"warning: no {path.name} beside {predictor.path.name}: the out-of-distribution score is unavailable; "
            "only the image checks (flat, contrast, noise, size, aspect) run. Export from a checkpoint `medkit fit` wrote "
            "(it saves the gate reference) to get it.")
    return SanityGate()


def export_gate(ckpt_dir, onnx_path, weights_sha256: str = "") -> Path | None:
    """Copy a checkpoint's gate.npz beside its exported ONNX file, tied to that file; None when it has none.

    The exported graph computes the same embedding as the checkpoint's network (`verify_onnx` checks it), so
    the reference carries over. An older gate beside `onnx_path` is removed when the checkpoint has none.
    """
    from ..base.cache import sha256sum

    source, target = Path(ckpt_dir) / GATE_FILE, gate_path(onnx_path)
    if not source.is_file():
        target.unlink(missing_ok=True)
        return None
    return SanityGate.load(source, model_sha256=weights_sha256).save(target, model_sha256=sha256sum(onnx_path))


def predict_gated(predictor, paths, *, resize: bool = False, gate: SanityGate | None = None,
                  value_range=DEFAULT_VALUE_RANGE) -> list[dict]:
    """Return one row per file like `OnnxPredictor.predict_files`, with the gate's verdict; flagged rows get no class.

    A flagged row has `prediction` None, no probabilities, `flagged` True and the checks that fired
    (check, score, threshold); an unflagged row has the prediction, `flagged` False and its OOD score.
    Without `gate`, rows are as `predict_files` writes them, with `flagged` False (the gate was not asked).
    """
    images = predictor.load_files(paths, resize, value_range)
    logits, embeddings = zip(*(predictor.run(images[i:i + 64]) for i in range(0, len(images), 64)))
    probs = _softmax(np.concatenate(logits))
    pred = predictor.decide(probs)
    verdicts = (gate.check(images.transpose(0, 2, 3, 1), np.concatenate(embeddings), [raw_shape(p) for p in paths])
                if gate is not None else [Verdict() for _ in paths])
    rows = []
    for path, k, pr, verdict in zip(paths, pred, probs, verdicts):
        if verdict.flagged:
            rows.append({"file": str(path), "prediction": None, "probability": None, **verdict.as_dict()})
        else:
            rows.append({"file": str(path), "prediction": predictor.classes[k], "probability": float(pr[k]),
                         **{f"p_{c}": float(v) for c, v in zip(predictor.classes, pr)}, **verdict.as_dict()})
    return rows
