"""What a NIfTI file must pass before medkit reads its voxels (lesson 11): size, datatype, units, gzip integrity.

Every check runs on the header and the file's length before any voxel array is allocated, so a header that claims
30000^3 voxels, a negative dimension or an unsupported datatype is refused by name instead of ending in a
MemoryError or a numpy traceback. A .nii.gz is decompressed in full, in chunks and never beyond what the header
claims, so gzip's CRC-32 and length check run: a flipped bit anywhere in the stream is refused, not read as a few
wrong voxels.
"""

import gzip
import math
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..base.errors import DataError

__all__ = ["nifti_bytes", "head_bytes", "header_of", "spatial_unit_mm"]

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 22  # 4 MiB: reading a gzip stream in chunks keeps a lying header from allocating what it claims
# NIFTI_UNITS_* (nifti1.h): the low three bits of xyzt_units, as millimetres per unit
_MM_PER_UNIT = {1: 1000.0, 2: 1.0, 3: 0.001}


def header_of(block: bytes, source):
    """Return the NIfTI-1 or NIfTI-2 header held in the first bytes `block` of a file (nibabel's classes)."""
    from nibabel.nifti1 import Nifti1Header
    from nibabel.nifti2 import Nifti2Header

    for klass, size in ((Nifti1Header, 348), (Nifti2Header, 540)):
        for order in ("<", ">"):
            if len(block) >= size and int.from_bytes(block[:4], "little" if order == "<" else "big") == size:
                return klass(block[:size], endianness=order, check=False)
    raise DataError(f"{source} is not a NIfTI file: its first 4 bytes (sizeof_hdr) are neither 348 (NIfTI-1) nor "
                    f"540 (NIfTI-2), or the file holds fewer bytes ({len(block)}) than a header.")


def _voxel_dtype(header, source) -> np.dtype:
    """Return the numpy type of the voxels, refusing the NIfTI types a scalar volume cannot hold."""
    from nibabel.spatialimages import HeaderDataError

    code = int(header["datatype"])
    try:
        dtype = header.get_data_dtype()
        name = header.get_value_label("datatype")
    except (HeaderDataError, KeyError) as exc:
        raise DataError(f"{source}: NIfTI datatype code {code} is not one the standard defines; the header is "
                        "damaged. Re-export the file.") from exc
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        what = {"c": "complex numbers (MR raw phase or k-space?)", "V": "colour or structured voxels"}.get(
            dtype.kind, "a type numpy cannot compute with portably")
        raise DataError(f"{source} stores its voxels as NIfTI {name} (code {code}): {what}. medkit reads scalar "
                        "volumes (integers or floats of at most 64 bits); convert it first, e.g. take the "
                        "magnitude of a complex image or one channel of an RGB one, and save that as float32.")
    return dtype


def _data_shape(header, source) -> tuple:
    """Return the voxel grid the header claims, refusing counts that are not positive."""
    dim = [int(d) for d in header["dim"]]
    if not 1 <= dim[0] <= 7:
        raise DataError(f"{source}: dim[0] (the number of dimensions) is {dim[0]}; NIfTI allows 1 to 7. The header "
                        "is damaged or was written with the wrong byte order; re-export the file.")
    shape = tuple(dim[1:dim[0] + 1])
    bad = [(axis + 1, n) for axis, n in enumerate(shape) if n < 1]
    if bad:
        raise DataError(f"{source}: the header gives dimension {bad[0][0]} a size of {bad[0][1]} (dim = "
                        f"{dim[:dim[0] + 1]}); every size must be at least 1. The header is damaged; re-export it.")
    return shape


def _expected_bytes(header, source) -> int:
    """Return how many bytes a file must hold for the header's voxels (exact Python integers: no overflow)."""
    shape, dtype = _data_shape(header, source), _voxel_dtype(header, source)
    offset = float(header["vox_offset"])
    if not math.isfinite(offset) or offset < header.sizeof_hdr:
        raise DataError(f"{source}: vox_offset (where the voxels start) is {offset}; it must be at least "
                        f"{header.sizeof_hdr}, past the header. The header is damaged; re-export the file.")
    return int(offset) + math.prod(shape) * dtype.itemsize


def _too_short(source, header, expected: int, have: int) -> DataError:
    shape = _data_shape(header, source)
    return DataError(f"{source}: the header claims {' x '.join(map(str, shape))} voxels of "
                     f"{header.get_data_dtype()} ({expected:,} bytes with the header), but the file holds "
                     f"{have:,}{'' if have < expected else ' or more'} bytes. The file is truncated, or its header's "
                     "dimensions or datatype are wrong; re-export it.")


def nifti_bytes(path: Path) -> bytes:
    """Return the whole (decompressed) NIfTI file at `path`, checked: header sizes against the data, gzip's CRC."""
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
    if not compressed:
        with open(path, "rb") as f:
            block = f.read(540)
            header = header_of(block, path)
            expected, have = _expected_bytes(header, path), path.stat().st_size
            if have < expected:
                raise _too_short(path, header, expected, have)
            return block + f.read()
    return _gunzip(path)


def _gunzip(path: Path) -> bytes:
    """Decompress a .nii.gz in chunks, never past the header's claim, reading to the end so gzip checks its CRC."""
    parts, have = [], 0
    try:
        with gzip.open(path, "rb") as f:
            block = f.read(540)
            header = header_of(block, path)
            expected = _expected_bytes(header, path)
            parts.append(block)
            have = len(block)
            while have < expected and (chunk := f.read(min(_CHUNK, expected - have))):
                parts.append(chunk)
                have += len(chunk)
            if have < expected:
                raise _too_short(path, header, expected, have)
            while chunk := f.read(_CHUNK):  # bytes past the voxels (rare): read so that the CRC is checked
                parts.append(chunk)
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise _damaged(path, exc) from exc
    return b"".join(parts)


def _damaged(path: Path, exc: Exception) -> DataError:
    reason = {"EOFError": "the stream ends early (a truncated download or copy)",
              "error": "the compressed data are corrupt"}.get(type(exc).__name__, "its integrity check failed")
    return DataError(f"{path}: the gzip stream is damaged: {reason} ({type(exc).__name__}: {exc}). Some voxels "
                     "would be wrong without any sign; re-download or re-export the file.")


def head_bytes(path: Path, n: int = 540) -> bytes:
    """Return the first `n` bytes of the (decompressed) file: enough for either NIfTI header."""
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_MAGIC
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            return f.read(n)
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        if compressed:
            raise _damaged(path, exc) from exc
        raise


def spatial_unit_mm(header, source) -> float:
    """Return millimetres per unit of the header's xyzt_units (metres 1000, microns 0.001); warn when unknown."""
    code = int(header["xyzt_units"]) & 0x07
    if code in _MM_PER_UNIT:
        return _MM_PER_UNIT[code]
    what = "unset (0)" if code == 0 else f"{code}, which is no unit NIfTI defines"
    warnings.warn(f"{source}: the header's spatial unit (xyzt_units) is {what}; assuming mm, as nibabel and ITK do. "
                  "Check the voxel sizes, and write the unit (nibabel: header.set_xyzt_units('mm')).", stacklevel=3)
    return 1.0

