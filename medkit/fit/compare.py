"""`medkit compare`: may a retrained checkpoint replace the one in use? A gate on locked data, per data part.

Both checkpoints score the same locked images, each through its own reader (size, contrast step: what
`medkit evaluate` does), and `medkit.evaluation.compare.paired_auc_difference` tests the AUC difference with a
paired patient bootstrap against a non-inferiority margin. The decision is PROMOTE when the candidate is
non-inferior on every part (the locked part of the training source and each external site), else KEEP.

Refused, before any number is given: checkpoints of other class lists, more than two classes or multi-label
(the test is a binary AUC); parts on which the two checkpoints do not see the same images with the same
labels and patients; images without patient keys; and locked images either checkpoint trained on. That last
check reads each checkpoint's recorded training source (`data.path`), checks it is unchanged (its
`fingerprint`), and looks for the locked images among its train and val parts, pixel for pixel as that
checkpoint reads them; where the training source is not on this machine the locked data cannot be shown to
be apart, and the comparison is refused.
"""

import datetime as _dt
import hashlib
from pathlib import Path

import numpy as np

from ..base.errors import ConfigError, DataError
from ..core.checkpoint import data_path, read_config, record_comparison
from ..core.train import pick_device
from ..evaluation.compare import DEFAULT_MARGIN, paired_auc_difference
from .config import data_fingerprint
from .multilabel import is_multilabel_checkpoint
from .single_label import read_as_trained, score_part

__all__ = ["compare_checkpoints", "record", "decision_table", "image_digests"]

ROLES = ("current", "candidate")


def image_digests(images) -> np.ndarray:
    """Return a sha256 per decoded image (its pixels and shape): equal images, equal digests."""
    return np.array([hashlib.sha256(np.ascontiguousarray(im).tobytes() + str(im.shape).encode()).hexdigest()
                     for im in images])


def _check_comparable(configs: dict) -> None:
    """Refuse checkpoints whose outputs cannot be compared by one binary AUC."""
    current, candidate = configs["current"], configs["candidate"]
    for role, config in configs.items():
        if is_multilabel_checkpoint(config):
            raise ConfigError(f"The {role} checkpoint is multi-label (findings); `medkit compare` tests one binary "
                              "AUC. Compare findings one at a time with `medkit evaluate`.")
    if list(current["classes"]) != list(candidate["classes"]):
        raise ConfigError(f"The checkpoints predict different classes (current {current['classes']}, candidate "
                          f"{candidate['classes']}): their AUCs do not measure the same thing. Retrain the candidate "
                          "on the current model's classes, in the same order.")
    if len(current["classes"]) != 2:
        raise ConfigError(f"The checkpoints have {len(current['classes'])} classes; the paired AUC test is for two "
                          "(a positive and a negative class).")


def _check_same_images(scored: dict, data) -> None:
    """Refuse a part the two checkpoints did not score on the same images, labels and patients, in the same order."""
    a, b = scored["current"], scored["candidate"]
    paths = [s.dataset.meta.get("paths") for s in (a, b)]
    same = (len(a.labels) == len(b.labels) and np.array_equal(a.labels, b.labels)
            and (paths[0] is None or paths[1] is None or list(paths[0]) == list(paths[1]))
            and (a.dataset.groups is None) == (b.dataset.groups is None)
            and (a.dataset.groups is None or np.array_equal(a.dataset.groups, b.dataset.groups)))
    if not same:
        raise DataError(f"{data}: the two checkpoints read different images from it (current: {len(a.labels)} "
                        f"images of its {a.result['split']} part, candidate: {len(b.labels)} of its "
                        f"{b.result['split']} part), so their AUCs are not paired. Both must read it the same way: "
                        "the same patient grouping (recipe group_by) and no images skipped by `medkit adapt`.")
    if a.dataset.groups is None:
        raise DataError(f"{data}: its images carry no patient keys, so the test cannot resample patients (images of "
                        "one patient are not independent). Use Kermany file names (person12_bacteria_45.jpeg), "
                        "or a CSV with a patient column.")


class _TrainedOn:
    """The digests of the images each checkpoint trained or tuned on (train and val), loaded once per checkpoint."""

    def __init__(self, checkpoints: dict, configs: dict):
        self.checkpoints, self.configs, self._digests = checkpoints, configs, {}

    def _check_fingerprint(self, role: str, source, path) -> None:
        recorded = (self.configs[role].get("data") or {}).get("fingerprint")
        if recorded is None:
            raise DataError(f"The {role} checkpoint {self.checkpoints[role]} records no fingerprint of its training "
                            "data, so the locked data cannot be shown to be apart from it. Retrain with `medkit fit`.")
        if recorded != data_fingerprint(source.splits):
            raise DataError(f"{path}, the {role} checkpoint's training source, changed since it was trained (its "
                            "fingerprint differs): its carved test part may now hold images the model trained on, and "
                            "its training images can no longer be listed. Compare on data that is unchanged, or "
                            "retrain.")

    def digests(self, role: str, scored=None) -> set:
        """Return the digests of `role`'s train and val images (from `scored` when it read the training source)."""
        if role not in self._digests:
            config = self.configs[role]
            path = data_path(config)
            if scored is not None:
                source = scored.source
            elif not path or not Path(path).exists():
                where = f"its training data {path} is not on this machine" if path else "it records no training data"
                raise DataError(f"The {role} checkpoint {self.checkpoints[role]}: {where}, so the locked data cannot "
                                "be shown to hold none of its training images. Run `medkit compare` where that data is.")
            else:
                source = read_as_trained(config, path, carve=True)
            self._check_fingerprint(role, source, path)
            self._digests[role] = set(np.concatenate(
                [image_digests(source.splits[p].images) for p in ("train", "val") if p in source.splits]).tolist())
        return self._digests[role]


def _check_never_trained_on(trained_on: _TrainedOn, scored: dict, data) -> None:
    """Refuse a locked part that holds images either checkpoint was trained or tuned on."""
    for role, part in scored.items():
        own = part.result["role"] == "internal"
        if own and part.result["split"] != "test":
            raise DataError(f"{data} is the {role} checkpoint's training source and its {part.result['split']} part "
                            "is not held out; the gate scores its test part only.")
        seen = trained_on.digests(role, part if own else None)
        locked = image_digests(part.dataset.images)
        hits = np.flatnonzero([d in seen for d in locked])
        if len(hits):
            names = part.dataset.meta.get("paths")
            example = f" (e.g. {names[hits[0]]})" if names is not None else ""
            raise DataError(f"{data}: {len(hits)} of its {len(locked)} locked images are in the {role} checkpoint's "
                            f"training or validation data{example}. A gate on images a model learnt from flatters it; "
                            "lock images neither checkpoint saw.")


def _part(kind: str, data, scored: dict, margin: float, n_boot: int, seed: int) -> dict:
    a, b = scored["current"], scored["candidate"]
    test = paired_auc_difference(a.labels, a.probs, b.probs, a.dataset.groups, margin=margin, n_boot=n_boot,
                                 seed=seed)
    return {"kind": kind, "data": str(Path(data).resolve()), "part": a.result["split"], **test.as_dict(),
            "promotes": test.promotes,
            "scores": {role: {k: s.result.get(k) for k in ("auc", "sensitivity", "specificity", "acc", "ci95")}
                       for role, s in scored.items()}}


def compare_checkpoints(current, candidate, data, external=(), *, margin: float = DEFAULT_MARGIN, n_boot: int = 2000,
                        seed: int = 0, log=None, device: str = "auto") -> dict:
    """Return PROMOTE or KEEP for `candidate` against `current`, with the paired test on each locked part.

    Args:
        current, candidate: `medkit fit` checkpoints (the model in use, the retrained one).
        data: the locked data: the training source of either (its patient-grouped test part is scored) or
            another source neither trained on (its test part, else all of it).
        external: more sources (other sites), each scored whole (or its test part) as its own part.
        margin: the AUC loss still accepted on every part (non-inferiority margin).
        n_boot, seed: patient bootstrap replicates and their seed.
    """
    checkpoints = {"current": current, "candidate": candidate}
    configs = {role: read_config(ck) for role, ck in checkpoints.items()}
    _check_comparable(configs)
    device = pick_device(device)
    trained_on = _TrainedOn(checkpoints, configs)
    sources = {data_path(c) for c in configs.values()}
    parts = []
    for kind, where in [("locked", data), *(("external", e) for e in external)]:
        carve = str(Path(where).resolve()) in sources  # a training source: both score the same carved test part
        scored = {role: score_part(ck, where, "auto", n_boot=200, log=log, device=device, allow_ood=True,
                                   carve=carve) for role, ck in checkpoints.items()}
        _check_same_images(scored, where)
        _check_never_trained_on(trained_on, scored, where)
        parts.append(_part(kind, where, scored, margin, n_boot, seed))
    decision = "PROMOTE" if all(p["promotes"] for p in parts) else "KEEP"
    return {"decision": decision, "margin": margin, "n_boot": n_boot, "seed": seed, "parts": parts,
            "rule": f"PROMOTE when, on every part, the lower end of the 95% interval of AUC(candidate) - AUC(current) "
                    f"is above -{margin}",
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **{role: {"checkpoint": str(Path(ck).resolve()), "weights_sha256": configs[role].get("weights_sha256")}
               for role, ck in checkpoints.items()}}


def record(candidate, result: dict) -> dict:
    """Append a `compare_checkpoints` result to the candidate's config.json `comparisons`; return the entry."""
    entry = {k: v for k, v in result.items() if k != "parts"}
    entry["parts"] = [{k: v for k, v in p.items() if k != "scores"} for p in result["parts"]]
    record_comparison(candidate, entry)
    return entry


def decision_table(result: dict) -> str:
    """Return the per-part table of a `compare_checkpoints` result and its decision line (`medkit compare` prints it)."""
    lines = [f"{'part':<9} {'data':<28} {'images':>6} {'patients':>8} {'AUC now':>8} {'AUC new':>8} "
             f"{'difference [95% CI]':<26} {'p':>7} {'margin':>6}  verdict"]
    for p in result["parts"]:
        low, high = p["ci95"]
        name = p["data"] if len(p["data"]) <= 28 else "..." + p["data"][-25:]
        lines.append(f"{p['kind']:<9} {name:<28} {p['n']:>6} {p['patients']:>8} {p['auc_current']:>8.3f} "
                     f"{p['auc_candidate']:>8.3f} {p['difference']:+.3f} [{low:+.3f}, {high:+.3f}]{'':<4} "
                     f"{p['p_difference']:>7.3g} {p['margin']:>6.3g}  {p['verdict']}")
    lines.append(f"decision: {result['decision']} ({result['rule']})")
    return "\n".join(lines)
