"""Write files so that a crash, a full disk or a kill leaves either the old file or the new one, never half of one.

Every writer streams into a temporary file in the target's own folder (so the final `os.replace` is a
rename on one file system, which POSIX makes atomic), flushes and fsyncs it, renames it over the
target, and fsyncs the folder so the rename itself survives a power cut. A failure at any point
removes the temporary file and leaves the target as it was. `read_state_dict` is the matching safe
read of a torch file: tensors only (weights_only=True), anything else refused.
"""

import contextlib
import errno
import json
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

from .errors import DataError, WeightsError

__all__ = ["atomic_path", "atomic_folder", "write_bytes", "write_text", "write_json", "torch_save", "read_state_dict",
           "fsync_dir", "write_error"]


def write_error(target, exc: OSError) -> DataError:
    """Return the medkit error for an OSError met while writing `target`: full disk, read-only, or other."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full (or over quota). Free some space or write elsewhere"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "the folder is read-only or not yours to write. Choose a folder you can write to"
    else:
        why = f"{exc.strerror or exc}. Check the folder and try again"
    return DataError(f"Cannot write {target}: {why}; nothing was changed there.")


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
        raise write_error(target, exc) from exc
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the writer may have closed its handle without fsync
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:  # a full disk or a mount gone read-only mid-write: the old target is still whole
        raise write_error(target, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(target):
    """Yield an empty temporary folder beside `target`; on normal exit it replaces `target` as a whole.

    Everything the block writes into it appears at `target` together: the folder is renamed into place
    once (onto a missing or empty `target`), or, over a non-empty one, the old folder is first renamed
    aside, then the new one in, then the old one removed. No crash can mix new files with old ones;
    in the instant between the two renames `target` is absent and both folders sit beside it, named.
    If the block raises, the temporary folder is removed and `target` is left untouched.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staged", dir=target.parent))
    except OSError as exc:
        raise write_error(target, exc) from exc
    try:
        yield stage
        fsync_dir(stage)  # the writers fsynced their files; the folder's entries need it too
        _swap_in(stage, target)
        fsync_dir(target.parent)
    except OSError as exc:
        raise write_error(target, exc) from exc
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, target: Path) -> None:
    """Rename `stage` to `target`: in one rename onto a missing or empty folder, else moving the old one aside."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        os.replace(stage, target)  # POSIX rename replaces an empty folder atomically
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old)  # onto the empty folder just made: atomic
    try:
        os.replace(stage, target)
    except BaseException:  # interrupted or refused here: put the previous folder back before anything else
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


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
    """Atomically replace `path` with `torch.save(obj)`.

    Serialised in memory first: torch's own file writer reports a full disk as a bare RuntimeError
    ("unexpected pos"), while a plain write raises the OSError (ENOSPC, EROFS) that `write_error` names.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes(path, buffer.getvalue())


def read_state_dict(path, fix: str = "Only use checkpoints written by `medkit fit` from a source you trust, and "
                    "retrain if in doubt.") -> dict:
    """Return the state dict in `path`, loaded with weights_only=True; anything else is refused, never retried."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it asks to build {found.group(1)})" if found else ""
        raise WeightsError(f"{path} is not a plain tensor state dict: unpickling it would build Python objects"
                           f"{what}, which can run arbitrary code. medkit refuses to load it. {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable PyTorch file ({type(exc).__name__}: {str(exc)[:120]}). "
                           f"It is truncated or damaged. {fix}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict of tensors. "
                           f"{fix}")
    _check_finite(state, path, fix)
    return state


def _check_finite(state: dict, path, fix: str) -> None:
    """Refuse a state dict whose floating tensors hold NaN or inf, naming the tensors (a diverged or damaged run)."""
    import torch

    bad = [(name, int((~torch.isfinite(t)).sum()), t.numel()) for name, t in state.items()
           if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]
    if bad:
        listed = ", ".join(f"{name} ({n} of {size})" for name, n, size in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise WeightsError(f"{path}: the weights contain NaN or inf values in {len(bad)} tensor(s): {listed}{more}. "
                           "Training diverged (lower the learning rate) or the file was damaged; every prediction "
                           f"would be NaN. {fix}")
