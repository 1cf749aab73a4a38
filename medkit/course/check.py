"""Instant feedback on exercises: `check("00.test_counts", answer)` says right, or gives a hint.

Each exercise computes its expected answer from the kit itself (the data, the registry, or the arrays the
lesson passes as context), never from a stored number, so the answers stay right when the data or the models
change. Lessons record `results()` so the tests know every solution cell's answer was judged right.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass

from ..base.errors import ConfigError, UnknownNameError

__all__ = ["Exercise", "exercise", "check", "check_answer", "list_exercises", "results"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its question, how to judge an answer, and a hint for a wrong one."""

    key: str
    question: str
    judge: Callable  # answer -> bool
    hint: str


_EXERCISES: dict[str, Exercise] = {}
_RESULTS: dict[str, bool] = {}  # exercise key -> whether its latest answer in this session was right


def exercise(key: str, question: str, hint: str):
    """Register the decorated function as the judge of exercise `key`."""

    def decorate(judge):
        _EXERCISES[key] = Exercise(key, question, judge, hint)
        return judge

    return decorate


def list_exercises(lesson: str = "") -> list[str]:
    """Return the exercise keys, optionally of one lesson ("00")."""
    return sorted(k for k in _EXERCISES if k.startswith(lesson))


def check(key: str, answer, quiet: bool = False, **context) -> bool:
    """Judge `answer` to exercise `key` (with the lesson's arrays in `context`); print "Right" or a hint, return it."""
    if key not in _EXERCISES:
        raise UnknownNameError(f"Unknown exercise {key!r}; known: {', '.join(list_exercises())}.")
    ex = _EXERCISES[key]
    try:
        right = bool(ex.judge(answer, **context))
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, AttributeError):
        right = False  # an answer of the wrong shape (or a function that fails on a test value) is not right yet
    _RESULTS[key] = right
    if not quiet:
        print(f"Right! ({ex.question})" if right else f"Not yet. Hint: {ex.hint}")
    return right


def check_answer(key: str, name: str, namespace: dict | None = None, quiet: bool = False, **context) -> bool | None:
    """Judge the notebook variable `name` as the answer to exercise `key`; None, saying so, while it is not defined.

    A lesson's check cells call this instead of `check(key, answer)`: in a student copy, whose solution cells are
    blank, the answer's variable does not exist yet, and reading it would stop "Run All" with a NameError at the
    first exercise. `namespace` defaults to the caller's globals (the notebook's). An unanswered exercise is not
    recorded in `results()`, so a lesson run with its solutions still proves each one was answered and right.
    """
    if key not in _EXERCISES:
        raise UnknownNameError(f"Unknown exercise {key!r}; known: {', '.join(list_exercises())}.")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"check_answer takes the answer's variable name as a string (e.g. \"thr_25\"), not {name!r}.")
    scope = sys._getframe(1).f_globals if namespace is None else namespace
    if name not in scope:
        if not quiet:
            print(f"Not answered yet: store your answer in `{name}` above and run this cell again. "
                  f"({_EXERCISES[key].question})")
        return None
    return check(key, scope[name], quiet=quiet, **context)


def results(lesson: str = "") -> dict[str, bool]:
    """Return {exercise key: right?} for the answers checked in this session, optionally of one lesson ("05")."""
    return {k: v for k, v in sorted(_RESULTS.items()) if k.startswith(lesson)}


def _close(a, b, tol: float = 1e-6) -> bool:
    return abs(float(a) - float(b)) <= tol


@exercise("00.test_counts", "How many normal and pneumonia images are in the held-out test set?",
          "Look at data.pneumonia()['test'].class_counts(); answer as (normal, pneumonia).")
def _test_counts(answer):
    from ..data import pneumonia

    counts = pneumonia()["test"].class_counts()
    return tuple(int(a) for a in answer) == (counts["normal"], counts["pneumonia"])


@exercise("00.pneumonia_share", "What fraction of the training images show pneumonia?",
          "Divide the pneumonia count of the train split by its size; answer as a number between 0 and 1.")
def _pneumonia_share(answer):
    from ..data import pneumonia

    labels = pneumonia()["train"].labels
    return abs(float(answer) - labels.mean()) < 0.01


@exercise("03.head_parameters", "How many parameters does efficientnet_lite0 train with a 2-class head and the body frozen?",
          "Only the new linear head trains: in_features x classes weights, plus one bias per class.")
def _head_parameters(answer):
    from ..models import get_backbone, get_spec

    head = get_backbone("efficientnet_lite0", weights=None, num_classes=2).get_submodule(get_spec("efficientnet_lite0").head)
    return int(answer) == sum(p.numel() for p in head.parameters())


@exercise("04.resnet_cam_layer", "Which layer is the default Grad-CAM target of resnet18?",
          "medkit.models.get_spec('resnet18') knows it; it is the last convolutional stage.")
def _resnet_cam_layer(answer):
    from ..models import get_spec

    return str(answer).strip().removeprefix("model.") == get_spec("resnet18").cam_layer


@exercise("05.sensitivity", "A test finds 45 of 50 pneumonia cases and calls 20 of 100 normal images positive. "
          "Give (sensitivity, specificity).", "Sensitivity = TP / (TP + FN); specificity = TN / (TN + FP).")
def _sens_spec(answer):
    sens, spec = (float(a) for a in answer)
    return abs(sens - 45 / 50) < 1e-3 and abs(spec - 80 / 100) < 1e-3


@exercise("05.test_threshold", "Choose the screening threshold (sensitivity >= 95 %) on the test set instead.",
          "Make the same evaluate.choose_threshold call as on validation, with the test labels and probabilities.")
def _test_threshold(answer, y, p):
    from ..evaluation.evaluate import choose_threshold

    return _close(answer, choose_threshold(y, p, "sensitivity", target=0.95))


@exercise("05.prevalence_metrics", "Which of sensitivity, specificity, AUC, PPV and accuracy move with prevalence?",
          "Sensitivity is computed on the positives only, specificity on the negatives only, AUC compares the two; "
          "PPV and accuracy mix both classes in one ratio. Answer as a set of lower-case names.")
def _prevalence_metrics(answer):
    names = {str(a).lower() for a in answer}
    return {"ppv", "accuracy"} <= names and not names & {"sensitivity", "specificity", "auc"}


@exercise("06.expected_false_alarms", "How many false alarms do you expect on n clean batches at level alpha?",
          "On a clean batch the test's p-value is uniform, so each batch raises an alarm with probability alpha.")
def _expected_false_alarms(answer, n, alpha):
    return _close(answer, n * alpha, 1e-3)


@exercise("07.iou_from_dice", "Write iou(dice): the IoU of a prediction whose Dice is `dice`.",
          "Dice = 2|A&B| / (|A| + |B|) and IoU = |A&B| / |A|B|, with |A|B| = |A| + |B| - |A&B|.")
def _iou_from_dice(answer):
    return all(_close(answer(d), d / (2 - d)) for d in (0.0, 0.25, 0.5, 0.9, 1.0))


@exercise("07.lesions_found", "What share of the test images with a lesion does a model find (any pixel predicted)?",
          "Per image: does the mask hold a lesion, does the thresholded prediction hold any pixel? Count both.")
def _lesions_found(answer, probs, masks, threshold=0.5):
    import numpy as np

    has = np.asarray(masks).reshape(len(masks), -1).any(1)
    found = (np.asarray(probs) >= threshold).reshape(len(masks), -1).any(1)
    return _close(answer, (has & found).sum() / has.sum(), 1e-3)


@exercise("08.chance_loss", "Write chance(n): the NT-Xent loss, for a batch of n images, of an encoder that learnt nothing.",
          "2n views; each picks its partner among the 2n - 1 others, all equally similar: a uniform softmax.")
def _chance_loss(answer):
    import math

    return all(_close(answer(n), math.log(2 * n - 1)) for n in (2, 8, 256))


@exercise("08.vit_tokens", "Write tokens(image_size, patch_size): how many patches a ViT cuts a square image into.",
          "A patch is patch_size x patch_size pixels and patches do not overlap; count them along each side.")
def _vit_tokens(answer):
    return all(int(answer(s, p)) == (s // p) ** 2 for s, p in ((28, 4), (28, 7), (224, 16)))


@exercise("09.dp_noise_std", "Write noise_std(multiplier, clip, n_sites): the std of the noise Flower's server-side "
          "DP adds to the averaged update.",
          "Each clipped update has norm <= clip; the average divides by n_sites, and the noise scales with that bound.")
def _dp_noise_std(answer):
    try:
        from flwr.supercore.differential_privacy import compute_stdv
    except ModuleNotFoundError:  # flwr < 1.3x (1.30 is the newest on Python 3.10) keeps it in flwr.common
        from flwr.common.differential_privacy import compute_stdv

    return all(_close(answer(m, c, n), compute_stdv(m, c, n)) for m, c, n in ((0.05, 2.0, 3), (0.5, 1.0, 10), (1, 3, 1)))


@exercise("09.fedavg", "Write fedavg(weights, sizes): FedAvg's average of the sites' weight arrays.",
          "Weight each site's arrays by its number of images, divide by the total; do it layer by layer.")
def _fedavg(answer):
    import numpy as np

    rng = np.random.default_rng(0)
    weights = [[rng.normal(size=(3, 2)), rng.normal(size=4)] for _ in range(3)]
    sizes = [10, 30, 60]
    expected = [sum(w[i] * n for w, n in zip(weights, sizes)) / sum(sizes) for i in range(2)]
    return all(np.allclose(a, b) for a, b in zip(answer(weights, sizes), expected))


@exercise("10.trainable_params", "Write trainable(k): how many parameters of efficientnet_lite0 (2-class head) train when "
          "its first k layer groups are frozen, BatchNorm included.",
          "Sum p.numel() over the layer groups from k on: models.parameter_groups(model) lists each group's parameters.")
def _trainable_params(answer):
    from ..core.freeze import freeze_to
    from ..models import get_backbone

    model = get_backbone("efficientnet_lite0", weights=None, num_classes=2)
    expected = [sum(p.numel() for p in freeze_to(model, k, train_bn=False).parameters() if p.requires_grad)
                for k in range(5)]
    return [int(answer(k)) for k in range(5)] == expected


@exercise("10.test_positives", "How many malignant images are in the held-out test parts of the breast ultrasound and "
          "the dermoscopy sets? Answer as (ultrasound, dermoscopy).",
          "Label 1 is malignant in both: sum the test labels of data.breast_ultrasound() and data.dermoscopy().")
def _test_positives(answer):
    from ..data import breast_ultrasound, dermoscopy

    expected = tuple(int(loader(64)["test"].labels.sum()) for loader in (breast_ultrasound, dermoscopy))
    return tuple(int(a) for a in answer) == expected


@exercise("11.thick_spacing", "Keep every `factor`-th slice of `volume` along k: what is the new voxel spacing in mm?",
          "Only the k spacing changes: it is multiplied by the factor. Answer as a tuple (i, j, k) of mm.")
def _thick_spacing(answer, volume, factor):
    expected = (volume.spacing[0], volume.spacing[1], volume.spacing[2] * factor)
    return len(answer) == 3 and all(abs(float(a) - e) < 1e-6 for a, e in zip(answer, expected))


@exercise("11.inflate_kernel", "Write inflate_kernel(w): the I3D kernel (out, in, k, k, k) of a 2-D kernel w (out, in, k, k).",
          "Repeat w k times along a new depth axis (dim 2) and divide by k, so a volume constant in depth gives the "
          "2-D response.")
def _inflate_kernel(answer):
    import torch

    from ..volumes.inflate import inflate_conv

    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    return torch.allclose(answer(conv.weight.detach()), inflate_conv(conv).weight.detach(), atol=1e-6)



@exercise("12.accuracy_at_prevalence", "Same sensitivity and specificity, another case mix: what accuracy?",
          "Accuracy weighs each class's rate by its share: sensitivity x prevalence + specificity x (1 - prevalence).")
def _accuracy_at_prevalence(answer, sensitivity, specificity, prevalence):
    return abs(float(answer) - (sensitivity * prevalence + specificity * (1 - prevalence))) < 1e-6


@exercise("12.few_label_threshold", "The Youden threshold on the scores of the k labelled site images.",
          "Use only the picked images: evaluate.choose_threshold(labels[picked], probs[picked]).")
def _few_label_threshold(answer, labels, probs, picked):
    from ..evaluation.evaluate import choose_threshold

    return abs(float(answer) - choose_threshold(labels[picked], probs[picked])) < 1e-9
