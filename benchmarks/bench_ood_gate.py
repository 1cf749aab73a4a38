"""The sanity gate of `medkit predict` / `evaluate`: false alarms on real X-rays, detection of hostile inputs.

For each seed, `medkit fit` trains on a chest X-ray folder (default the bundled 128 px Kermany sample,
`data_samples/chest_xray`; `--data ../shared/data/chest_xray_224/train` for the whole training split) and
saves the gate's reference (gate.npz: train embeddings, thresholds on its val part), `medkit export`
copies it beside the ONNX file, and then:

- false alarms: the fraction of the checkpoint's carved test part (patient-disjoint, never trained or tuned
  on) that the gate flags, through `medkit evaluate`'s path and through `medkit predict`'s (the files);
- second site: the fraction of `../shared/data/chest_xray_224_external_dev` (301 legitimate X-rays from
  another collection) flagged; these should mostly pass;
- detection: the fraction of hostile files flagged by `medkit predict --resize`, each made from a real
  test X-ray (or, for "skin photo", a real dermoscopy image from data_samples/isic_dermoscopy, made grey as a
  user would to get past the colour check): all-black, all-white, uniform grey, uniform noise, inverted,
  1/16 contrast, 1x1 and a 1000x100 strip.

    python benchmarks/bench_ood_gate.py --seeds 0,1,2 --n-hostile 20
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medkit.cli import main as medkit  # noqa: E402
from medkit.deploy import OnnxPredictor  # noqa: E402
from medkit.deploy.gate import onnx_gate, predict_gated  # noqa: E402
from medkit.fit import RecipeConfig, fit_recipe  # noqa: E402
from medkit.fit.single_label import evaluate_checkpoint  # noqa: E402


def _shared() -> Path:
    """Return ../shared/data beside the checkout (or above a git worktree); MEDKIT_SHARED_DATA overrides."""
    if os.environ.get("MEDKIT_SHARED_DATA"):
        return Path(os.environ["MEDKIT_SHARED_DATA"])
    return next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
                ROOT.parent / "shared" / "data")


def _grey(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"))


def hostile_images(xray: np.ndarray, skin: np.ndarray, rng) -> dict:
    """Return {case: uint8 image} made from one real X-ray and one real dermoscopy image."""
    from PIL import Image

    h, w = xray.shape
    x = xray.astype(np.float64)
    return {
        "black": np.zeros_like(xray),
        "white": np.full_like(xray, 255),
        "grey": np.full_like(xray, 128),
        "noise": rng.integers(0, 256, xray.shape).astype(np.uint8),
        "inverted": 255 - xray,
        "contrast/16": np.clip((x - x.mean()) / 16 + 128, 0, 255).round().astype(np.uint8),
        "skin photo": np.asarray(Image.fromarray(skin).resize((w, h), Image.BILINEAR)),
        "1x1": np.asarray(Image.fromarray(xray).resize((1, 1), Image.BILINEAR)),
        "1000x100 strip": np.asarray(Image.fromarray(xray).resize((1000, 100), Image.BILINEAR)),
    }


def write_hostile(test_paths, skin_paths, out: Path, n: int, seed: int) -> dict:
    """Write `n` files per hostile case as PNGs under `out`; return {case: [paths]}."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    cases = {}
    for i in range(n):
        made = hostile_images(_grey(test_paths[i % len(test_paths)]), _grey(skin_paths[i % len(skin_paths)]), rng)
        for case, image in made.items():
            path = out / f"{case.replace('/', '_').replace(' ', '_')}_{i}.png"
            Image.fromarray(image).save(path)
            cases.setdefault(case, []).append(path)
    return cases


def run_seed(data: Path, external: Path | None, skin_paths, seed: int, args, work: Path) -> dict:
    """Fit, export and gate for one seed; return the rates."""
    ckpt, onnx = work / f"ckpt{seed}", work / f"model{seed}.onnx"
    cfg = RecipeConfig(image_size=args.image_size, epochs=args.epochs, seed=seed, threads=args.threads)
    start = time.perf_counter()
    fit_recipe(data, ckpt, cfg, progress=False, log=lambda *_: None, overwrite=True)
    fit_s = time.perf_counter() - start
    internal = evaluate_checkpoint(ckpt, data, n_boot=200, log=lambda *_: None)
    test_files = [Path(p) for p in _test_paths(ckpt, data)]
    assert medkit(["export", "--checkpoint", str(ckpt), "--out", str(onnx), "--images",
                   *map(str, test_files[:32]), "--no-drift", "--json"]) == 0
    predictor = OnnxPredictor(onnx)
    gate = onnx_gate(predictor)
    clean_rows = predict_gated(predictor, test_files, resize=True, gate=gate)
    out = {"seed": seed, "fit_s": fit_s, "gate": repr(gate), "n_test": internal["n"],
           "false_alarm_evaluate": internal["gate"]["flagged"] / internal["n"],
           "false_alarm_predict": float(np.mean([r["flagged"] for r in clean_rows])),
           "false_alarm_checks": dict(Counter(c["check"] for r in clean_rows for c in r["checks"])),
           "auc_test": internal["auc"], "auc_test_not_flagged": internal.get("not_flagged", {}).get("auc")}
    if external is not None:
        ext = evaluate_checkpoint(ckpt, external, n_boot=200, log=lambda *_: None)
        out.update({"n_external": ext["n"], "flagged_external": ext["gate"]["flagged"] / ext["n"],
                    "external_checks": ext["gate"]["by_check"], "auc_external": ext["auc"],
                    "auc_external_not_flagged": ext.get("not_flagged", {}).get("auc")})
    hostile_dir = work / f"hostile{seed}"
    hostile_dir.mkdir(exist_ok=True)
    cases = write_hostile(test_files, skin_paths, hostile_dir, args.n_hostile, seed)
    out["detection"], out["detection_checks"] = {}, {}
    for case, paths in cases.items():
        rows = predict_gated(predictor, paths, resize=True, gate=gate)
        out["detection"][case] = float(np.mean([r["flagged"] for r in rows]))
        out["detection_checks"][case] = dict(Counter(c["check"] for r in rows for c in r["checks"]))
        ungated = predict_gated(predictor, paths, resize=True, gate=None)
        out.setdefault("ungated_confidence", {})[case] = float(np.mean([r["probability"] for r in ungated]))
    return out


def _test_paths(ckpt, data) -> list:
    """Return the files of the checkpoint's carved test part (the same carve evaluate scores)."""
    from medkit.checkpoint import read_config
    from medkit.data import load_source

    config = read_config(ckpt)
    source = load_source(data, image_size=config["image_size"], carve=True, log=lambda *_: None)
    return source.splits["test"].meta["paths"]


def _table(results: list) -> str:
    cases = list(results[0]["detection"])
    head = f"{'':<26}" + "".join(f"{'seed ' + str(r['seed']):>14}" for r in results)
    rows = [head]

    def line(label, values, fmt="{:.3f}"):
        rows.append(f"{label:<26}" + "".join(f"{fmt.format(v) if v is not None else '-':>14}" for v in values))

    line("test images (n)", [r["n_test"] for r in results], "{}")
    line("false alarms, evaluate", [r["false_alarm_evaluate"] for r in results])
    line("false alarms, predict", [r["false_alarm_predict"] for r in results])
    if "flagged_external" in results[0]:
        line("second site (n)", [r["n_external"] for r in results], "{}")
        line("second site flagged", [r["flagged_external"] for r in results])
    rows.append("detection (fraction flagged; ungated P(predicted class) in brackets)")
    for case in cases:
        rows.append(f"  {case:<24}" + "".join(
            f"{r['detection'][case]:>7.2f} ({r['ungated_confidence'][case]:.2f})" for r in results))
    rows.append("checks that fired (seed " + str(results[0]["seed"]) + "): false alarms "
                + str(results[0]["false_alarm_checks"]) + "; second site " + str(results[0].get("external_checks")))
    for case in cases:
        rows.append(f"  {case:<24} {results[0]['detection_checks'][case]}")
    aucs = ", ".join(f"{r['auc_test']:.3f}" for r in results)
    rows.append(f"auc test {aucs}; gate: {results[0]['gate']}")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "data_samples" / "chest_xray"), help="X-ray folder to fit on")
    parser.add_argument("--external", default=None, help="second-site folder (default ../shared/data/"
                                                         "chest_xray_224_external_dev when present)")
    parser.add_argument("--seeds", default="0", help="comma-separated fit seeds")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-hostile", type=int, default=20, help="files per hostile case")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    external = Path(args.external) if args.external else _shared() / "chest_xray_224_external_dev"
    skin = sorted((ROOT / "data_samples" / "isic_dermoscopy" / "images").glob("*.jpg"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_seed(Path(args.data), external if external.is_dir() else None, skin, seed, args,
                                    Path(tmp)))
            print(f"seed {seed}: fit {results[-1]['fit_s']:.0f} s", file=sys.stderr, flush=True)
    print(f"data {args.data} at {args.image_size} px, {args.epochs} epochs; {args.n_hostile} files per hostile case")
    print(_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
