"""What an image's content is, cheaply: a sha256 of its bytes and a difference hash (dHash) of its pixels.

The data audit (`audit.py`) groups files by sha256 (byte-identical copies) and pairs images whose dHashes
differ in few bits (near-identical: re-encoded, resized, slightly brightened copies). dHash (Krawetz, "Kind of
like that", 2013) compares each pixel of a small grey thumbnail with its right neighbour; the `imagehash`
package computes the same thing, but it is not a dependency of medkit and the hash is ten lines of numpy.
JPEGs are decoded at reduced scale (PIL's `draft`: the DCT does the shrinking), about 1 ms an image on one core;
the 17 x 16 thumbnail needs no more.
"""

import hashlib

import numpy as np

__all__ = ["HASH_SIDE", "file_sha256", "dhash_array", "dhash_file", "near_pairs"]

# a 16 x 16 gradient grid: 256 bits. The 8 x 8 grid of the usual 64-bit dHash cannot tell chest X-rays apart (they
# all share one layout), so unrelated films fall within a few bits of each other
HASH_SIDE = 16


def file_sha256(path) -> str:
    """Return the sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dhash_array(image) -> np.ndarray:
    """Return the dHash of an image array (H x W or H x W x C, any dtype) as HASH_SIDE**2 booleans."""
    from PIL import Image

    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        a = a.mean(-1)
    low, high = float(a.min()), float(a.max())
    grey = np.zeros(a.shape, np.uint8) if high == low else ((a - low) * (255 / (high - low))).astype(np.uint8)
    return _dhash(Image.fromarray(grey))


def _dhash(im) -> np.ndarray:
    small = np.asarray(im.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), resample=1), dtype=np.int16)  # LANCZOS
    return (small[:, 1:] > small[:, :-1]).ravel()


def dhash_file(path) -> np.ndarray | None:
    """Return the dHash of an image file (None when PIL cannot decode it: a DICOM, a broken file)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("L", (2 * HASH_SIDE, 2 * HASH_SIDE))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale
            return _dhash(im)
    except Exception:  # noqa: BLE001 - any decode failure means "no hash"; the loaders name the file later
        return None


def near_pairs(hashes: np.ndarray, max_bits: int, chunk: int = 2048) -> list[tuple[int, int, int]]:
    """Return (i, j, bits differing) for every pair i < j of hashes at most `max_bits` apart.

    All pairs are compared (a matrix product of the bit vectors, in row chunks): 5,000 images take well under
    a second; the cost grows with the square of the count.
    """
    bits = np.asarray(hashes, dtype=np.float32)
    ones = bits.sum(1)
    found = []
    for start in range(0, len(bits), chunk):
        block = bits[start:start + chunk]
        # hamming(a, b) = |a| + |b| - 2 a.b
        dist = ones[start:start + chunk, None] + ones[None, :] - 2 * (block @ bits.T)
        i, j = np.nonzero(dist <= max_bits + 0.5)
        i = i + start
        keep = i < j
        found += [(int(a), int(b), int(round(dist[a - start, b]))) for a, b in zip(i[keep], j[keep])]
    return found
