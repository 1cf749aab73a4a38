"""What `medkit serve` keeps of each image: one JSON line per result, with pseudonymised UIDs by default.

A results file is appended to by many association threads at once; each line goes out in one `write` on a
file opened with O_APPEND (under a lock, then fsynced), so a reader never sees two lines interleaved and a
killed node leaves whole lines only. UIDs identify a patient's study to anyone with PACS access, so the node
writes their keyed hash (HMAC-SHA256 with the installation's de-identification salt, `deid.default_salt`)
unless the operator asks for the UIDs themselves.
"""

import hashlib
import hmac
import json
import os
import threading
from pathlib import Path

from ..base.atomic import write_error
from .deid import _check_salt, default_salt

__all__ = ["Pseudonymiser", "ResultsFile", "read_results"]


class Pseudonymiser:
    """Turn DICOM UIDs into stable short tokens (or keep them, when the operator configures `keep_uids`)."""

    def __init__(self, salt: str | None = None, keep_uids: bool = False):
        self.keep_uids = bool(keep_uids)
        self._key = _check_salt(salt if salt is not None else default_salt()).encode()

    def token(self, uid) -> str:
        """Return the 16-hex-digit keyed hash of `uid`: the same UID always gives the same token."""
        return hmac.new(self._key, str(uid).strip().encode(), hashlib.sha256).hexdigest()[:16]

    def __call__(self, uid) -> str:
        """Return what logs and results may name `uid` by: the UID itself only when the operator chose so."""
        if uid is None or str(uid).strip() == "":
            return ""
        return str(uid).strip() if self.keep_uids else self.token(uid)


class ResultsFile:
    """Append JSON lines to one file, whole lines only, safely from many threads."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise write_error(self.path, exc) from exc

    def append(self, row: dict) -> None:
        """Write `row` as one line (serialised first: a value JSON cannot hold writes nothing)."""
        data = (json.dumps(row, allow_nan=False, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            try:
                written = os.write(self._fd, data)
                if written != len(data):  # a full disk mid-line: cut the stub so the file stays whole lines
                    os.ftruncate(self._fd, os.lseek(self._fd, 0, os.SEEK_END) - written)
                    raise OSError(28, "No space left on device")
                os.fsync(self._fd)
            except OSError as exc:
                raise write_error(self.path, exc) from exc

    def close(self) -> None:
        """Close the file; later appends raise."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read_results(path) -> list[dict]:
    """Return the rows of a results file, in the order they were written."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
