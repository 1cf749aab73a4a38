"""Lessons 05-09's exercise checks: a right answer passes, a typical wrong one gets the hint, results are kept."""

import math

import numpy as np
import pytest

from medkit.base.errors import ConfigError, UnknownNameError
from medkit.course import check

RIGHT_AND_WRONG = {
    "05.prevalence_metrics": ({"ppv", "accuracy"}, {"ppv", "accuracy", "sensitivity"}, {}),
    "06.expected_false_alarms": (2.0, 0.05, {"n": 40, "alpha": 0.05}),
    "07.iou_from_dice": (lambda d: d / (2 - d), lambda d: d * d, {}),
    "08.chance_loss": (lambda n: math.log(2 * n - 1), lambda n: math.log(n), {}),
    "08.vit_tokens": (lambda s, p: (s // p) ** 2, lambda s, p: s // p, {}),
    "09.dp_noise_std": (lambda m, c, n: m * c / n, lambda m, c, n: m * c, {}),
    "09.fedavg": (lambda ws, ns: [sum(w[i] * n for w, n in zip(ws, ns)) / sum(ns) for i in range(len(ws[0]))],
                  lambda ws, ns: [sum(w[i] for w in ws) / len(ws) for i in range(len(ws[0]))], {}),
}


@pytest.mark.parametrize("key", sorted(RIGHT_AND_WRONG))
def test_lesson_checks_accept_the_right_answer_and_refuse_a_wrong_one(key, capsys):
    right, wrong, context = RIGHT_AND_WRONG[key]
    assert check.check(key, right, **context)
    assert "Right!" in capsys.readouterr().out
    assert not check.check(key, wrong, **context)
    assert "Not yet. Hint:" in capsys.readouterr().out
    assert check.results(key[:2])[key] is False  # the latest answer counts


def test_checks_with_context_recompute_from_the_lesson_arrays():
    from medkit.evaluation.evaluate import choose_threshold

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    thr = choose_threshold(y, p, "sensitivity", target=0.95)
    assert check.check("05.test_threshold", thr, quiet=True, y=y, p=p)
    assert not check.check("05.test_threshold", 0.5, quiet=True, y=y, p=p)
    masks = np.zeros((4, 8, 8), np.uint8)
    masks[:3, 2, 2] = 1
    probs = np.zeros((4, 8, 8))
    probs[0, 2, 2] = probs[3, 5, 5] = 0.9  # finds image 0's lesion; a false positive on the empty image 3
    assert check.check("07.lesions_found", 1 / 3, quiet=True, probs=probs, masks=masks)
    assert not check.check("07.lesions_found", 2 / 4, quiet=True, probs=probs, masks=masks)


def test_a_function_that_crashes_on_a_test_value_is_not_right_yet():
    assert not check.check("07.iou_from_dice", lambda d: 1 / (d - d), quiet=True)
    with pytest.raises(UnknownNameError, match="Unknown exercise '05.nope'"):
        check.check("05.nope", 1)


def test_check_answer_reads_the_named_variable_or_says_not_answered(capsys):
    check._RESULTS.pop("06.expected_false_alarms", None)
    assert check.check_answer("06.expected_false_alarms", "alarms", namespace={}, n=40, alpha=0.05) is None
    assert "Not answered yet" in capsys.readouterr().out
    assert "06.expected_false_alarms" not in check.results("06")  # unanswered is not recorded as judged
    assert check.check_answer("06.expected_false_alarms", "alarms", namespace={"alarms": 2.0}, n=40, alpha=0.05)
    assert check.check_answer("06.expected_false_alarms", "alarms", namespace={"alarms": 3.0}, n=40, alpha=0.05) is False


def test_check_answer_reads_the_callers_globals():
    namespace = {"check_answer": check.check_answer, "answer": 2.0}
    exec('result = check_answer("06.expected_false_alarms", "answer", quiet=True, n=40, alpha=0.05)', namespace)
    assert namespace["result"] is True


def test_check_answer_refuses_an_answer_instead_of_its_name():
    with pytest.raises(ConfigError, match="variable name"):
        check.check_answer("06.expected_false_alarms", 2.0, n=40, alpha=0.05)
    with pytest.raises(UnknownNameError):
        check.check_answer("06.no_such_exercise", "answer")
