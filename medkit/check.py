"""Instant feedback on exercises: `check("00.test_counts", answer)` says right, or gives a hint.

Each exercise computes its expected answer from the kit itself (the data, the registry), never
from a stored number, so the answers stay right when the data or the models change.
"""

from collections.abc import Callable
from dataclasses import dataclass

from .errors import UnknownNameError

__all__ = ["Exercise", "exercise", "check", "list_exercises"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its question, how to judge an answer, and a hint for a wrong one."""

    key: str
    question: str
    judge: Callable  # answer -> bool
    hint: str


_EXERCISES: dict[str, Exercise] = {}


def exercise(key: str, question: str, hint: str):
    """Register the decorated function as the judge of exercise `key`."""

    def decorate(judge):
        _EXERCISES[key] = Exercise(key, question, judge, hint)
        return judge

    return decorate


def list_exercises(lesson: str = "") -> list[str]:
    """Return the exercise keys, optionally of one lesson ("00")."""
    return sorted(k for k in _EXERCISES if k.startswith(lesson))


def check(key: str, answer, quiet: bool = False) -> bool:
    """Judge `answer` to exercise `key`; print "Right" or a hint, and return whether it was right."""
    if key not in _EXERCISES:
        raise UnknownNameError(f"Unknown exercise {key!r}; known: {', '.join(list_exercises())}.")
    ex = _EXERCISES[key]
    try:
        right = bool(ex.judge(answer))
    except (TypeError, ValueError, KeyError, IndexError):
        right = False  # an answer of the wrong shape is simply not right yet
    if not quiet:
        print(f"Right! ({ex.question})" if right else f"Not yet. Hint: {ex.hint}")
    return right


@exercise("00.test_counts", "How many normal and pneumonia images are in the held-out test set?",
          "Look at data.pneumonia()['test'].class_counts(); answer as (normal, pneumonia).")
def _test_counts(answer):
    from .data import pneumonia

    counts = pneumonia()["test"].class_counts()
    return tuple(int(a) for a in answer) == (counts["normal"], counts["pneumonia"])


@exercise("00.pneumonia_share", "What fraction of the training images show pneumonia?",
          "Divide the pneumonia count of the train split by its size; answer as a number between 0 and 1.")
def _pneumonia_share(answer):
    from .data import pneumonia

    labels = pneumonia()["train"].labels
    return abs(float(answer) - labels.mean()) < 0.01


@exercise("03.head_parameters", "How many parameters does efficientnet_lite0 train with a 2-class head and the body frozen?",
          "Only the new linear head trains: in_features x classes weights, plus one bias per class.")
def _head_parameters(answer):
    from .models import get_backbone, get_spec

    head = get_backbone("efficientnet_lite0", weights=None, num_classes=2).get_submodule(get_spec("efficientnet_lite0").head)
    return int(answer) == sum(p.numel() for p in head.parameters())


@exercise("04.resnet_cam_layer", "Which layer is the default Grad-CAM target of resnet18?",
          "medkit.models.get_spec('resnet18') knows it; it is the last convolutional stage.")
def _resnet_cam_layer(answer):
    from .models import get_spec

    return str(answer).strip().removeprefix("model.") == get_spec("resnet18").cam_layer


@exercise("05.sensitivity", "A test finds 45 of 50 pneumonia cases and calls 20 of 100 normal images positive. "
          "Give (sensitivity, specificity).", "Sensitivity = TP / (TP + FN); specificity = TN / (TN + FP).")
def _sens_spec(answer):
    sens, spec = (float(a) for a in answer)
    return abs(sens - 45 / 50) < 1e-3 and abs(spec - 80 / 100) < 1e-3
