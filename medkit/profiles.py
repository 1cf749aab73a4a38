"""Profiles turn one word (`smoke`, `workshop`, `full`) into the concrete sizes of a lesson.

Every notebook's `parameters` cell sets `PROFILE`; the next cell calls
`medkit.profiles.resolve(PROFILE, "02")` and uses only what it returns. Tests then inject
`PROFILE="smoke"` and never edit notebook text.

- smoke: what CI runs; seconds per notebook on tiny data, only checks that the mechanics work.
- workshop: the default; a few minutes per notebook on 2 CPU cores, under 2 GB RAM, results worth teaching.
- full: the full datasets (online) at larger sizes, and a GPU when one is present.
"""

from dataclasses import dataclass, field, fields, replace

from .errors import ProfileError

__all__ = ["PROFILES", "Settings", "resolve", "LESSON_SETTINGS"]

PROFILES = ("smoke", "workshop", "full")


@dataclass(frozen=True)
class Settings:
    """The concrete sizes a lesson runs with; `extra` holds the lesson's own knobs."""

    profile: str
    seed: int = 0  # every random choice derives from it
    image_size: int = 64  # side of the square images fed to the backbone
    n_train: int | None = None  # labelled training images (None: all)
    epochs: int = 3  # passes over the training data
    batch_size: int = 64  # small enough for 2 GB RAM at 64 px
    num_seeds: int = 1  # repeats for error bars
    device: str = "cpu"  # "cuda" only in the full profile when a GPU is present
    extra: dict = field(default_factory=dict)

    def __getattr__(self, name):  # lesson-specific knobs read like the common ones: cfg.budgets
        extra = object.__getattribute__(self, "extra")
        if name in extra:
            return extra[name]
        raise AttributeError(f"Settings has no knob {name!r}; known: {[f.name for f in fields(self)] + sorted(extra)}")


_COMMON = {
    "smoke": dict(image_size=32, n_train=256, epochs=1, batch_size=64, num_seeds=1),
    "workshop": dict(image_size=64, n_train=None, epochs=3, batch_size=64, num_seeds=3),
    "full": dict(image_size=128, n_train=None, epochs=10, batch_size=128, num_seeds=5),
}

# Lesson-specific knobs, by lesson number then profile. Each lesson owns its own entry.
LESSON_SETTINGS: dict[str, dict[str, dict]] = {
    "00": {},
    "01": {},
    "02": {},
    "03": {},
    "04": {},
    "05": {},
    "06": {},
    "07": {},
    "08": {},
    "09": {},
}


def _device(profile: str) -> str:
    if profile != "full":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve(profile: str, lesson: str = "", seed: int = 0, **overrides) -> Settings:
    """Return the settings of `lesson` ("02") under `profile`; keyword overrides win over both."""
    if profile not in PROFILES:
        raise ProfileError(f"Unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    lesson = str(lesson)[:2]
    per_lesson = dict(LESSON_SETTINGS.get(lesson, {}).get(profile, {}))
    common = {**_COMMON[profile], **{k: per_lesson.pop(k) for k in list(per_lesson) if k in _COMMON[profile]}}
    known = {f.name for f in fields(Settings)}
    settings = Settings(profile=profile, seed=seed, device=_device(profile), **common, extra=per_lesson)
    top = {k: v for k, v in overrides.items() if k in known}
    extra = {**settings.extra, **{k: v for k, v in overrides.items() if k not in known}}
    return replace(settings, **top, extra=extra)
