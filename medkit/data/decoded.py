"""Decode image files once: the stacked uint8 array is cached as .npy and memory-mapped on the next load.

    <medkit cache>/decoded/<key>.npy   the images, (N, H, W[, 3]) uint8
    <medkit cache>/decoded/<key>.json  kept paths, skipped files and their reasons, conversion notes

The key hashes the file list (path, size, modification time), the requested image size and channels,
and `FORMAT_VERSION`; change any file and the entry is simply not found again. Both files are written
to a temporary name and renamed into place, so an interrupted write never looks cached. A cache that
cannot be written (read-only MEDKIT_CACHE, full disk) is warned about once and loading goes on without it.
"""

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..base.cache import cache_dir
from ..base.errors import DataError
from .images import check_on_error, stack_images, warn_notes
from .pixels import DEFAULT_VALUE_RANGE

__all__ = ["FORMAT_VERSION", "decoded_dir", "decode_key", "load_images"]

FORMAT_VERSION = 2  # bump when decoding changes what a file becomes
_warned: set = set()


def decoded_dir() -> Path:
    """Return the folder of cached decoded arrays (<medkit cache>/decoded)."""
    return cache_dir() / "decoded"


def decode_key(paths, image_size, channels, value_range=DEFAULT_VALUE_RANGE) -> str:
    """Return the cache key of decoding `paths` at `image_size`, `channels`, `value_range`: any change makes a new key."""
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, image_size, channels, list(value_range)]).encode())
    for path in paths:
        stat = os.stat(path)
        # fsencode: file names that are not valid UTF-8 still hash (and spaces or accents need nothing special)
        digest.update(os.fsencode(os.path.abspath(path)) + f"\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _read(key: str, n_paths: int):
    """Return (images memory-mapped, info) of a cache entry, or None when it is missing or unusable."""
    npy, meta = decoded_dir() / f"{key}.npy", decoded_dir() / f"{key}.json"
    if not (npy.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        # copy-on-write: pages are read from the file on demand and a caller's in-place edit stays private
        images = np.load(npy, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):
        return None  # damaged entry: decode again and overwrite it
    if images.dtype != np.uint8 or len(images) != len(info.get("kept", ())) or info.get("n_paths") != n_paths:
        return None
    return images, info


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write(key: str, images: np.ndarray, info: dict) -> None:
    """Store a cache entry; warn once and carry on when the cache folder cannot be written."""
    folder = decoded_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / f"{key}.npy", lambda out: np.save(out, images, allow_pickle=False))
        _atomic_write(folder / f"{key}.json", lambda out: out.write(json.dumps(info).encode()))
    except OSError as exc:
        if str(folder) not in _warned:
            _warned.add(str(folder))
            warnings.warn(f"Cannot write the decode cache in {folder} ({exc}); images will be decoded again on every "
                          "load. Set MEDKIT_CACHE to a writable folder to cache them.", stacklevel=4)


def load_images(paths, *, image_size: int | None = None, channels: int | None = None, on_error: str = "raise",
                source: str = "", notes: list | None = None, cache: bool = True,
                value_range=DEFAULT_VALUE_RANGE):
    """Return `stack_images(...)`'s (images, kept_index, skipped), from the decode cache when it holds them.

    A cached load does not open any image file. With on_error="raise", an entry that skipped files
    raises as a fresh decode would, naming the first of them.
    """
    check_on_error(on_error)
    if not cache:
        return stack_images(paths, image_size=image_size, channels=channels, on_error=on_error, source=source,
                            notes=notes, value_range=value_range)
    key = decode_key(paths, image_size, channels, value_range)
    hit = _read(key, len(paths))
    if hit is not None:
        images, info = hit
        skipped = info["skipped"]
        if skipped and on_error == "raise":
            raise DataError(next(iter(skipped.values())))
        warn_notes(info["notes"], source or "images")
        if notes is not None:
            notes.extend(info["notes"])
        return images, np.asarray(info["kept"], dtype=np.int64), skipped
    said = []
    images, kept, skipped = stack_images(paths, image_size=image_size, channels=channels, on_error=on_error,
                                         source=source, notes=said, value_range=value_range)
    if notes is not None:
        notes.extend(said)
    _write(key, images, {"n_paths": len(paths), "kept": kept.tolist(), "skipped": skipped, "notes": said,
                         "image_size": image_size, "channels": channels, "version": FORMAT_VERSION})
    return images, kept, skipped
