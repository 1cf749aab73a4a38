"""Medkit's download cache: hash-checked, written atomically, with a clear error when offline."""

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .atomic import write_text
from .errors import ChecksumError, ConfigError, OfflineError, WeightsError

__all__ = ["cache_dir", "is_offline", "sha256sum", "hash_matches", "download"]

_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Return medkit's cache folder ($MEDKIT_CACHE, else ~/.cache/medkit)."""
    root = os.environ.get("MEDKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "medkit"
    return Path(root)


def is_offline() -> bool:
    """Return True when the user asked medkit not to touch the network (MEDKIT_OFFLINE=1)."""
    return os.environ.get("MEDKIT_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def sha256sum(path, algorithm: str = "sha256") -> str:
    """Return the hex digest (sha256 unless told otherwise) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_matches(actual: str, expected: str) -> bool:
    """Compare a full sha256 with a published one, which may be a prefix (torchvision names files by one)."""
    expected = expected.lower()
    return len(expected) >= 8 and actual.lower().startswith(expected)


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _trusted(dest: Path, actual: str, expected: str, algorithm: str) -> bool:
    """Return True if a file with hash `actual` may be used for `expected` (a full hash or a published prefix).

    A prefix (torchvision names files by 8 hex digits of their sha256) is weak on its own, so the full
    sha256 is recorded beside the file the first time it is seen (trust on first use) and required after.
    """
    if not hash_matches(actual, expected):
        return False
    if algorithm != "sha256" or len(expected) >= 64:
        return True
    record = _record_path(dest)
    if record.is_file():
        return record.read_text().strip().lower() == actual.lower()

    write_text(record, actual + "\n")
    return True


def _unwritable(folder: Path, exc: OSError) -> ConfigError:
    return ConfigError(f"medkit's cache folder {folder} cannot be written ({exc.strerror or exc}). Set MEDKIT_CACHE "
                       "to a folder you can write, e.g. export MEDKIT_CACHE=$HOME/.cache/medkit")


def download(url: str, dest, sha256: str, *, fetch_hint: str = "", timeout: float = 30.0,
             algorithm: str = "sha256") -> Path:
    """Return `dest`, downloading `url` there first unless a file with the right hash is cached.

    The file is streamed into a temporary file beside `dest`, checked for truncation and hash,
    and only then renamed into place, so an interrupted or corrupt download never looks cached.
    A cached file with the wrong hash is deleted and fetched again (offline: refused, with the command
    to run online). `algorithm` is "sha256", or "md5" for publishers that give only that (MedMNIST on
    Zenodo). Where only a sha256 prefix is published (torchvision), the full sha256 of the first
    verified download is recorded in `dest.sha256` and every later use must match it (trust on first use).
    """
    dest = Path(dest)
    hint = f" Run `{fetch_hint}` on a machine with internet access to pre-fetch it." if fetch_hint else ""
    if dest.exists():
        try:
            if _trusted(dest, sha256sum(dest, algorithm), sha256, algorithm):
                return dest
            dest.unlink()  # a stale or corrupt cache entry: fetch it again rather than trust it
            _record_path(dest).unlink(missing_ok=True)
        except OSError as exc:
            raise _unwritable(dest.parent, exc) from exc
        if is_offline():
            raise OfflineError(f"{dest} had the wrong {algorithm} (not {sha256}): damaged or replaced, so it was "
                               f"deleted, and MEDKIT_OFFLINE is set so it cannot be fetched again.{hint}")
    if is_offline():
        raise OfflineError(f"{dest.name} is not in the cache ({dest.parent}) and MEDKIT_OFFLINE is set.{hint}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise _unwritable(dest.parent, exc) from exc
    try:
        digest, size = hashlib.new(algorithm), 0
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except urllib.error.HTTPError as exc:
                raise WeightsError(f"Downloading {url} failed with HTTP {exc.code}. Check the URL or try later.") from exc
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
                raise OfflineError(f"Could not download {url} ({exc}). This machine looks offline.{hint}") from exc
            with response:
                expected_size = int(response.headers.get("Content-Length") or -1)
                try:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                except (TimeoutError, http.client.IncompleteRead, ConnectionError) as exc:
                    raise WeightsError(f"Download of {url} broke off after {size} bytes ({exc}). Try again.") from exc
            out.flush()
            os.fsync(out.fileno())
        if expected_size >= 0 and size != expected_size:
            raise WeightsError(f"Download of {url} was truncated: got {size} of {expected_size} bytes. Try again.")
        if not hash_matches(digest.hexdigest(), sha256):
            raise ChecksumError(
                f"{url} has {algorithm} {digest.hexdigest()}, expected {sha256}. The file is corrupt or was changed "
                "upstream; nothing was written to the cache."
            )
        os.replace(tmp, dest)
        _record_path(dest).unlink(missing_ok=True)
        _trusted(dest, digest.hexdigest(), sha256, algorithm)  # records the full sha256 of a prefix-named file
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
