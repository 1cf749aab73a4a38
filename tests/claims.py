"""What each lesson claims, checked on the numbers it recorded (smoke profile).

One function per lesson, keyed by its number. Smoke runs on tiny data, so a claim that only holds
at workshop size is checked here as "the mechanics produce valid numbers" and stated in full in the
lesson itself.
"""

import math


def claims_for(lesson: str):
    """Return the check function of a lesson number ("02"), or None."""
    return globals().get(f"check_{lesson}")


def _finite(m, *keys):
    for key in keys:
        assert key in m, f"lesson did not record {key!r}"
        assert isinstance(m[key], (int, float)) and math.isfinite(m[key]), f"{key}={m[key]!r} is not a finite number"


def check_00(m):
    # The bundled ImageNet backbone recognises natural images: the cat and the espresso.
    assert 281 <= m["chelsea_class"] <= 285, m["chelsea_class"]
    assert m["coffee_class"] == 967, m["coffee_class"]
    # ...and an X-ray lands in some ImageNet class with low confidence: the reason to transfer.
    _finite(m, "xray_top_prob", "n_train", "n_val", "n_test")
    assert m["xray_top_prob"] < m["coffee_prob"]
    assert m["n_test"] > 0 and m["n_train"] > 0


