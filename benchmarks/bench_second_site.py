"""The levers for a second site: `medkit fit`'s recipe at home, scored on images collected apart from it.

Trains on the Kermany training folder (`../shared/data/chest_xray_224/train`, the patient-grouped carve `medkit fit`
makes) and scores each run on its own internal test part and on the external dev half of Kermany's official test
split (`../shared/data/chest_xray_224_external_dev`, 301 images, 203 patients): a second site the model never trains
or tunes on. Every lever is chosen here, on the external dev half, and is reported as chosen there; the other half
of the test split is withheld to judge the result.

Each lever is a variant of the default recipe (ImageNet efficientnet_lite0, head then top layer group on cached
features of the frozen lower groups, threshold by Youden on the home val part). The lower groups are frozen and
deterministic, so their outputs are cached once per lever and shared by its seeds; only the trained part differs
by seed, exactly as in `medkit fit`. "ensemble" averages the seeds' probabilities, "soup" their weights (one model).

    python benchmarks/bench_second_site.py --levers base,size128 --seeds 0,1,2 --json out.json
"""

import argparse
import copy
import json
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medkit.core.features import TensorLoader, cache_activations, split_at_group  # noqa: E402
from medkit.core.freeze import fit_stages, schedule  # noqa: E402
from medkit.core.losses import make_loss  # noqa: E402
from medkit.core.train import SCORE_BATCH, reestimate_batchnorm, seed_everything  # noqa: E402
from medkit.data import BatchLoader, load_source  # noqa: E402
from medkit.data.contrast import equalize_image  # noqa: E402
from medkit.evaluation.evaluate import choose_threshold, metrics_with_ci  # noqa: E402
from medkit.fit import RecipeConfig  # noqa: E402
from medkit.fit.config import cache_cut  # noqa: E402
from medkit.models import get_backbone, get_spec  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
HOME, SITE = SHARED / "chest_xray_224" / "train", SHARED / "chest_xray_224_external_dev"


@dataclass
class Lever:
    """One variant of the recipe: its config changes, an image transform, and test-time options."""

    name: str
    what: str
    cfg: dict = field(default_factory=dict)  # RecipeConfig fields that differ from the defaults
    transform: str | None = None  # applied to every uint8 image, at home and at the site, before the network
    tta_flip: bool = False  # average with the horizontally flipped image
    bn_adapt: bool = False  # re-estimate the trained part's BatchNorm statistics on the unlabelled site images


def _equalize(x):
    from skimage.exposure import equalize_hist

    return (equalize_hist(x) * 255).round().astype(np.uint8)


def _percentile(x, low=1, high=99):
    lo, hi = np.percentile(x, [low, high])
    return (np.clip((x.astype(np.float32) - lo) / max(hi - lo, 1), 0, 1) * 255).round().astype(np.uint8)


def _rescale(x, side):
    from PIL import Image

    size = x.shape[::-1]
    return np.asarray(Image.fromarray(x).resize((side, side), Image.BILINEAR).resize(size, Image.BILINEAR))


def _trim(x, frac=0.08):
    from PIL import Image

    h, w = x.shape
    dy, dx = int(h * frac), int(w * frac)
    return np.asarray(Image.fromarray(x[dy:h - dy, dx:w - dx]).resize((w, h), Image.BILINEAR))


# "clahe" is medkit fit's own contrast step (medkit.data.contrast), so the lever measures the default it became
TRANSFORMS = {"equalize": _equalize, "clahe": lambda x: equalize_image(x, "clahe"), "percentile": _percentile, "trim": _trim,
              "blur112": lambda x: _rescale(x, 112), "blur64": lambda x: _rescale(x, 64)}

LEVERS = {lv.name: lv for lv in (
    Lever("base", "medkit fit defaults (224 px, head + top group, cached)"),
    Lever("size128", "input 128 px instead of 224", {"image_size": 128}),
    Lever("size160", "input 160 px", {"image_size": 160}),
    Lever("blur112", "224 px input through a 112 px bottleneck (high frequencies removed)", transform="blur112"),
    Lever("blur64", "224 px input through a 64 px bottleneck", transform="blur64"),
    Lever("equalize", "histogram equalisation of every image", transform="equalize"),
    Lever("clahe", "CLAHE (adaptive equalisation, clip 0.01)", transform="clahe"),
    Lever("percentile", "window each image to its 1st-99th percentile", transform="percentile"),
    Lever("trim", "trim 8% of every border, resize back", transform="trim"),
    Lever("weighted_ce", "class-weighted cross-entropy", {"loss": "weighted_ce"}),
    Lever("epochs3", "head 1 epoch + top group 2 (not 5)", {"epochs": 3}),
    Lever("wd05", "weight decay 0.05 (not 1e-4)", {"weight_decay": 0.05}),
    Lever("lr5e-4", "peak lr 5e-4 (not 2e-3)", {"lr": 5e-4}),
    Lever("lite2", "efficientnet_lite2 (ImageNet) at 260 px", {"backbone": "efficientnet_lite2", "image_size": 260}),
    Lever("tta_flip", "test-time augmentation: mean of image and mirror", tta_flip=True),
    Lever("bn_adapt", "trained part's BatchNorm statistics re-estimated on the unlabelled site", bn_adapt=True),
    Lever("clahe_bn_adapt", "CLAHE, then AdaBN on the unlabelled site", transform="clahe", bn_adapt=True),
    Lever("clahe_weighted_ce", "CLAHE and class-weighted cross-entropy", {"loss": "weighted_ce"}, transform="clahe"),
    Lever("clahe_epochs3", "CLAHE, head 1 epoch + top group 2 (not 5)", {"epochs": 3}, transform="clahe"),
    Lever("clahe_wd05", "CLAHE, weight decay 0.05 (not 1e-4)", {"weight_decay": 0.05}, transform="clahe"),
    Lever("clahe_lr5e-4", "CLAHE, peak lr 5e-4 (not 2e-3)", {"lr": 5e-4}, transform="clahe"),
    Lever("clahe_lite2", "CLAHE, efficientnet_lite2 (ImageNet) at 260 px",
          {"backbone": "efficientnet_lite2", "image_size": 260}, transform="clahe"),
)}


def _apply(ds, transform):
    if transform is None:
        return ds
    fn = TRANSFORMS[transform]
    out = copy.copy(ds)
    out.images = np.stack([fn(np.asarray(im)) for im in ds.images])
    return out


def _flip(ds):
    out = copy.copy(ds)
    out.images = np.ascontiguousarray(ds.images[:, :, ::-1])
    return out


@torch.inference_mode()
def _probs(net, acts) -> np.ndarray:
    net.eval()
    out = [torch.softmax(net(acts[i:i + 256].float()), 1)[:, 1] for i in range(0, len(acts), 256)]
    return torch.cat(out).numpy()


def _score(labels, p, threshold, n_boot=1000) -> dict:
    probs = np.stack([1 - p, p], 1)
    ci = metrics_with_ci(labels, probs, threshold, n_boot=n_boot, seed=0)
    return {k: round(v.estimate, 4) for k, v in ci.items()} | {
        f"{k}_ci": [round(v.low, 4), round(v.high, 4)] for k, v in ci.items()}


_CACHE: dict = {}  # (backbone, size, transform, cut) -> (parts, activations): levers that differ only in training share it


def _cached(cfg, transform, cut, log):
    """Return (parts, activations of the frozen lower groups for every part, seconds), computed once per key."""
    key = (cfg.backbone, cfg.image_size, transform, cut)
    if key not in _CACHE:
        _CACHE.clear()  # one cache at a time: each is ~100-300 MB
        start = time.perf_counter()
        spec = get_spec(cfg.backbone)
        pre = spec.preprocess(cfg.image_size)
        home = load_source(HOME, image_size=cfg.image_size, group_by=cfg.group_by, carve=True, log=None).splits
        site = load_source(SITE, image_size=cfg.image_size, group_by=cfg.group_by, carve=False, log=None).splits["all"]
        parts = {name: _apply(ds, transform) for name, ds in {**home, "site": site}.items()}
        parts["site_flip"], parts["test_flip"] = _flip(parts["site"]), _flip(parts["test"])
        model = get_backbone(cfg.backbone, weights=cfg.weights, num_classes=2).to(memory_format=torch.channels_last)
        lower, _ = split_at_group(model, cut)
        acts = {name: cache_activations(lower, BatchLoader(ds, SCORE_BATCH, preprocess=pre))
                for name, ds in parts.items()}
        _CACHE[key] = parts, acts, time.perf_counter() - start
        log(f"  cached {sum(len(a) for a in acts.values())} images {key} in {_CACHE[key][2]:.0f} s")
    return _CACHE[key]


def run_lever(lever: Lever, seeds, log=print) -> dict:
    """Train `lever` once per seed; return per-seed, ensemble and soup scores at home (test) and at the site."""
    cfg = replace(RecipeConfig(), **lever.cfg)
    start = time.perf_counter()
    spec = get_spec(cfg.backbone)
    stages = schedule(cfg.freeze, cfg.epochs, cfg.lr, cfg.head_lr, n_groups=len(spec.groups))
    cut = cache_cut(stages, len(spec.groups))
    parts, acts, cache_s = _cached(cfg, lever.transform, cut, log)
    labels = {name: parts[name].labels for name in ("val", "test", "site")}
    runs, uppers = [], []
    for seed in seeds:
        t0 = time.perf_counter()
        seed_everything(seed)
        model = get_backbone(cfg.backbone, weights=cfg.weights, num_classes=2).to(memory_format=torch.channels_last)
        _, upper = split_at_group(model, cut)
        train_dl = TensorLoader(acts["train"], parts["train"].labels, cfg.batch_size, shuffle=True, seed=seed,
                                drop_last=True)
        val_dl = TensorLoader(acts["val"], labels["val"], 256)
        loss_fn = make_loss(cfg.loss, parts["train"].labels, 2)
        fit_stages(model, train_dl, val_dl, stages, weight_decay=cfg.weight_decay, loss_fn=loss_fn, progress=False,
                   net=upper)
        runs.append(_predict_all(upper, acts, lever))
        uppers.append(upper)
        runs[-1]["train_seconds"] = round(time.perf_counter() - t0, 1)
    out = {"lever": lever.name, "what": lever.what, "seeds": list(seeds), "cache_seconds": round(cache_s, 1),
           "per_seed": [_scores(r, labels) for r in runs], "train_seconds": [r["train_seconds"] for r in runs]}
    mean = {k: np.mean([r[k] for r in runs], 0) for k in ("val", "test", "site")}
    out["ensemble"] = _scores(mean, labels)
    soup = copy.deepcopy(uppers[0])
    soup.load_state_dict({k: (torch.stack([u.state_dict()[k].float() for u in uppers]).mean(0)).to(v.dtype)
                          for k, v in uppers[0].state_dict().items()})
    out["soup"] = _scores(_predict_all(soup, acts, lever), labels)
    out["peak_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def _predict_all(upper, acts, lever) -> dict:
    upper = copy.deepcopy(upper) if lever.bn_adapt else upper
    out = {"val": _probs(upper, acts["val"]), "test": _probs(upper, acts["test"])}
    if lever.bn_adapt:
        reestimate_batchnorm(upper, (acts["site"][i:i + 64] for i in range(0, len(acts["site"]), 64)))
    out["site"] = _probs(upper, acts["site"])
    if lever.tta_flip:
        out["site"] = (out["site"] + _probs(upper, acts["site_flip"])) / 2
        out["test"] = (out["test"] + _probs(upper, acts["test_flip"])) / 2
    return out


def _scores(probs: dict, labels: dict) -> dict:
    val = np.stack([1 - probs["val"], probs["val"]], 1)
    threshold = choose_threshold(labels["val"], val, "youden")
    return {"threshold": round(float(threshold), 4), "internal": _score(labels["test"], probs["test"], threshold),
            "external": _score(labels["site"], probs["site"], threshold)}


def summary_row(result: dict) -> dict:
    """Return one lever-table row: median over seeds with the range, and the ensemble and soup."""
    per = result["per_seed"]

    def med(where, key):
        values = [r[where][key] for r in per]
        return f"{np.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    return {"lever": result["lever"], "int AUC": med("internal", "auc"), "ext AUC": med("external", "auc"),
            "ext acc": med("external", "acc"), "ext sens": med("external", "sensitivity"),
            "ext spec": med("external", "specificity"),
            "soup ext AUC/acc": f"{result['soup']['external']['auc']:.3f} / {result['soup']['external']['acc']:.3f}",
            "ens ext AUC/acc": f"{result['ensemble']['external']['auc']:.3f} / {result['ensemble']['external']['acc']:.3f}"}


def table_rows(result: dict) -> list[dict]:
    """Return the lesson-12 table rows of one lever (`medkit.fit.table.SECOND_SITE_COLUMNS`): seeds, soup, ensemble.

    Per-seed rows give the median over seeds and, as the interval, the 95% bootstrap interval of the median run.
    """
    per = result["per_seed"]
    order = np.argsort([r["external"]["auc"] for r in per])
    mid = per[order[len(order) // 2]]
    # one fit: the cache pass plus one seed's training; a soup or an ensemble trains every seed
    train = result.get("train_seconds") or [(result["seconds"] - result["cache_seconds"]) / len(per)] * len(per)
    one, every = result["cache_seconds"] + float(np.mean(train)), result["cache_seconds"] + float(np.sum(train))

    def row(name, where_int, where_ext, runs, fit_s):
        return {"lever": name, "seeds": result["seeds"],
                "internal_auc": float(np.median([r["internal"]["auc"] for r in runs])) if where_int is None
                else where_int["auc"],
                "external_auc": float(np.median([r["external"]["auc"] for r in runs])),
                "external_auc_ci": where_ext["auc_ci"],
                "external_acc": float(np.median([r["external"]["acc"] for r in runs])),
                "external_acc_ci": where_ext["acc_ci"],
                "external_sens": float(np.median([r["external"]["sensitivity"] for r in runs])),
                "external_spec": float(np.median([r["external"]["specificity"] for r in runs])),
                "fit_seconds": round(fit_s, 1), "peak_gb": result["peak_gb"]}

    return [row(f"{result['lever']}: {result['what']}", None, mid["external"], per, one),
            row(f"{result['lever']} + weight soup of the seeds", result["soup"]["internal"], result["soup"]["external"],
                [result["soup"]], every),
            row(f"{result['lever']} + ensemble of the seeds", result["ensemble"]["internal"],
                result["ensemble"]["external"], [result["ensemble"]], every)]


def write_table(jsonl, out=ROOT / "medkit" / "fit" / "second_site_table.json") -> Path:
    """Write the lever table lesson 12 renders from the JSON lines this script appended (last result per lever)."""
    results = {}
    for line in Path(jsonl).read_text().splitlines():
        result = json.loads(line)
        results[result["lever"]] = result
    rows = [row for result in results.values() for row in table_rows(result)]
    Path(out).write_text(json.dumps(rows, indent=1) + "\n")
    return Path(out)


def markdown(rows: list[dict]) -> str:
    """Return the lever table as markdown (benchmarks/RECIPE.md): medians over seeds, 95% intervals of the median run."""
    head = ("| lever | internal AUC | external AUC [95% CI] | external acc [95% CI] | ext sens | ext spec | fit s |\n"
            "|---|---|---|---|---|---|---|")
    lines = [f"| {r['lever']} | {r['internal_auc']:.3f} | {r['external_auc']:.3f} [{r['external_auc_ci'][0]:.3f}, "
             f"{r['external_auc_ci'][1]:.3f}] | {r['external_acc']:.3f} [{r['external_acc_ci'][0]:.3f}, "
             f"{r['external_acc_ci'][1]:.3f}] | {r['external_sens']:.3f} | {r['external_spec']:.3f} | "
             f"{r['fit_seconds']:.0f} |" for r in rows]
    return "\n".join([head, *lines])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", default="base", help=f"comma-separated, of: {', '.join(LEVERS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", default=None, help="append each lever's full result to this JSON-lines file")
    parser.add_argument("--table", action="store_true",
                        help="only rewrite medkit/fit/second_site_table.json (lesson 12) from the --json file")
    args = parser.parse_args(argv)
    if args.table:
        path = write_table(args.json)
        print(markdown(json.loads(path.read_text())))
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name in args.levers.split(","):
        result = run_lever(LEVERS[name], seeds)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(result) + "\n")
        rows.append(summary_row(result))
        print(" | ".join(f"{k}: {v}" for k, v in rows[-1].items()), flush=True)
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
