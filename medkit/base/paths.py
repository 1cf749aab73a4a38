"""Say what is really wrong with a path a user gave: missing, a folder, a symlink loop, a FIFO or device, unreadable, empty.

Every reader in medkit checks its input file (`check_file`) or folder (`check_dir`) here first, and every writer
its target (`check_output_file`), so "does not exist" is only ever said of a path that does not exist. The checks
use `os.stat` alone and never open the path: opening a FIFO blocks until someone writes to it, and reading
`/dev/zero` never ends.
"""

import errno
import os
import stat
from pathlib import Path

from .errors import DataError

__all__ = ["check_file", "check_dir", "check_output_file", "describe_path"]

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _stat(path: Path, what: str, hint: str = "") -> os.stat_result:
    """Return os.stat(path), or raise DataError naming the cause (missing, broken link, loop, permissions)."""
    try:
        return os.stat(path)
    except OSError as exc:
        cause = exc.errno
    if cause == errno.ELOOP:
        raise DataError(f"{what} {path} is a symbolic link loop (it points, link by link, back to itself). "
                        "Fix the link or pass the real file.")
    if cause == errno.ENOENT and os.path.lexists(path):
        target = os.readlink(path) if os.path.islink(path) else "?"
        raise DataError(f"{what} {path} is a broken symbolic link (it points to {target}, which does not exist). "
                        "Fix the link or pass the real file.")
    if cause == errno.ENOENT:
        raise DataError(f"{what} {path} does not exist. {hint or 'Check the path.'}")
    if cause == errno.ENOTDIR:
        raise DataError(f"{what} {path} does not exist: a part of its path is a file, not a folder.")
    if cause == errno.EACCES:
        raise DataError(f"{what} {path} cannot be reached: permission denied on a folder of its path. "
                        "Check the folders' permissions.")
    if cause == errno.ENAMETOOLONG:
        raise DataError(f"{what} path is too long for the file system ({len(str(path))} characters).")
    raise DataError(f"{what} {path} cannot be examined ({os.strerror(cause or 0)}).")


def describe_path(mode: int) -> str:
    """Return what a stat mode is, in words: 'a folder', 'a named pipe (FIFO)', 'a regular file'..."""
    if stat.S_ISDIR(mode):
        return "a folder"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def check_file(path, what: str = "Input file", allow_empty: bool = False, hint: str = "") -> Path:
    """Return `path` as a Path if it is a readable regular file (and not empty), else raise DataError saying why.

    `what` names the file in messages ("Image file", "ONNX file"); `hint` replaces "Check the path." when it is missing.
    """
    path = Path(path)
    mode = _stat(path, what, hint)
    if stat.S_ISDIR(mode.st_mode):
        raise DataError(f"{what} {path} is a folder, not a file. Pass a file inside it.")
    if not stat.S_ISREG(mode.st_mode):
        raise DataError(f"{what} {path} is {describe_path(mode.st_mode)}, not a regular file; medkit reads only "
                        "regular files (a pipe or device would block or never end). Save the data to a file first.")
    if not os.access(path, os.R_OK):
        raise DataError(f"{what} {path} is not readable: permission denied. Check its permissions (chmod u+r).")
    if mode.st_size == 0 and not allow_empty:
        raise DataError(f"{what} {path} is empty (0 bytes): an interrupted copy or download? Copy it again.")
    return path


def check_dir(path, what: str = "Folder", hint: str = "") -> Path:
    """Return `path` as a Path if it is a folder medkit can list, else raise DataError saying why."""
    path = Path(path)
    mode = _stat(path, what, hint)
    if not stat.S_ISDIR(mode.st_mode):
        raise DataError(f"{what} {path} is {describe_path(mode.st_mode)}, not a folder. Pass the folder that holds "
                        "the files.")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DataError(f"{what} {path} cannot be listed: permission denied. Check its permissions.")
    return path


def check_output_file(path, what: str = "Output file") -> Path:
    """Return `path` if a file may be written there (absent, or a regular file), else raise DataError saying why."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{what} {path} is a symbolic link loop. Fix the link or choose another name.") from None
        return path  # absent (or a broken link, which the rename replaces): the writer creates it
    if stat.S_ISDIR(mode):
        raise DataError(f"{what} {path} is a folder; pass the name of a file to write (inside it, say), not the folder.")
    if not stat.S_ISREG(mode):
        raise DataError(f"{what} {path} is {describe_path(mode)}; medkit writes only regular files.")
    return path
