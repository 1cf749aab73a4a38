"""Write files so that a crash, a full disk or a kill leaves either the old file or the new one, never half of one.

Every writer streams into a temporary file in the target's own folder (so the final `os.replace` is a
rename on one file system, which POSIX makes atomic), flushes and fsyncs it, renames it over the
target, and fsyncs the folder so the rename itself survives a power cut. A failure at any point
removes the temporary file and leaves the target as it was.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

from .errors import DataError

__all__ = ["atomic_path", "write_bytes", "write_text", "write_json", "torch_save", "fsync_dir"]


def fsync_dir(folder) -> None:
    """Flush a folder's entries to disk, so a rename inside it survives a power cut (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; its rename is durable enough for our use
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target):
    """Yield a temporary path beside `target`; on normal exit it is fsynced and renamed over `target`.

    The caller writes the temporary file by any means (torch.save, onnx.save, a Pillow save...). If the
    block raises, the temporary file is removed and `target` is left untouched.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise DataError(f"Cannot write {target}: {exc.strerror or exc}. Choose a folder you can write to.") from exc
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the writer may have closed its handle without fsync
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path, data: bytes) -> Path:
    """Atomically replace `path` with `data`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Atomically replace `path` with `text` (UTF-8)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, data, indent: int = 2) -> Path:
    """Atomically replace `path` with `data` as JSON (serialised first, so a bad value writes nothing)."""
    return write_text(path, json.dumps(data, indent=indent))


def torch_save(obj, path) -> Path:
    """Atomically replace `path` with `torch.save(obj)`."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
