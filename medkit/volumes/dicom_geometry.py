"""Where a DICOM series' voxels are, by the standard (PS3.3 C.7.6.2.1.1), checked before slices are stacked.

A slice's pixel (c, r) lies at ImagePositionPatient + c * dc * X + r * dr * Y (LPS mm), with X and Y the row and
column direction cosines of ImageOrientationPatient and (dr, dc) = PixelSpacing. So X and Y must be unit vectors
(a header that writes them with another length is normalised, with a warning) at right angles (a series whose
rows and columns are further than `ORTHOGONAL_DEGREES` from 90 degrees is refused: no stacking of it is a grid).
The slices are stacked along the line their positions follow. When that line leaves the slice normal X x Y,
the series was acquired with a tilted gantry (CT) or is sheared: `gantry_tilt` measures it and `untilt` resamples
the stack onto the grid orthogonal to the slices, as dcm2niix does by default, so every later step (resampling,
the slice scroller, a 3-D network) can take voxel axes at face value.
"""

import warnings

import numpy as np

from ..base.errors import DataError

__all__ = ["ORTHOGONAL_DEGREES", "numbers", "direction_cosines", "check_orthogonal", "gantry_tilt", "untilt"]

# Decimal strings of 5-6 digits put real rows and columns within 0.001 degree of 90 (nibabel's DICOM wrapper
# allows about 0.003); 0.1 leaves room for scanners that write 4 digits and still refuses any real shear.
ORTHOGONAL_DEGREES = 0.1
UNIT_TOLERANCE = 1e-3  # |length - 1| of a direction cosine vector beyond which the header is said to be off
# A tilt or a stray position smaller than this fraction of a pixel over the whole series is rounding, not geometry
PIXEL_FRACTION = 0.1


def numbers(ds, key: str, count: int, path) -> np.ndarray:
    """Return the `count` finite numbers of attribute `key` of dataset `ds`, or refuse by name."""
    try:
        values = np.array([float(v) for v in ds[key].value], dtype=float)
    except (TypeError, ValueError) as exc:  # a single value, a non-numeric string, an empty element
        raise DataError(f"{path}: {key} is {ds[key].value!r}; it must be {count} numbers. The header is broken; "
                        "re-export the series.") from exc
    if values.shape != (count,) or not np.isfinite(values).all():
        raise DataError(f"{path}: {key} is {values.tolist()}; it must be {count} finite numbers. The header is "
                        "broken; re-export the series.")
    return values


def direction_cosines(orientation: np.ndarray, path, warn: bool = True) -> np.ndarray:
    """Return ImageOrientationPatient's row and column directions as unit vectors (2 x 3), warning if rescaled."""
    pair = orientation.reshape(2, 3)
    lengths = np.linalg.norm(pair, axis=1)
    if not (lengths > 1e-6).all():
        raise DataError(f"{path}: ImageOrientationPatient {orientation.tolist()} has a zero-length row or column "
                        "direction; the slice cannot be placed. The header is broken; re-export the series.")
    if warn and np.abs(lengths - 1).max() > UNIT_TOLERANCE:
        warnings.warn(f"{path}: ImageOrientationPatient {orientation.tolist()} holds vectors of length "
                      f"{lengths[0]:.4g} and {lengths[1]:.4g}, not unit direction cosines; normalised for the whole "
                      "series (spacing comes from PixelSpacing and the slice positions, not from these lengths).",
                      stacklevel=5)
    return pair / lengths[:, None]


def check_orthogonal(cosines: np.ndarray, path) -> None:
    """Refuse a slice whose rows and columns are more than ORTHOGONAL_DEGREES from a right angle."""
    angle = float(np.degrees(np.arccos(np.clip(np.dot(cosines[0], cosines[1]), -1, 1))))
    if abs(angle - 90) > ORTHOGONAL_DEGREES:
        raise DataError(f"{path}: the rows and columns of ImageOrientationPatient {cosines.ravel().round(6).tolist()} "
                        f"are {angle:.2f} degrees apart, not 90 (medkit allows {ORTHOGONAL_DEGREES}): the pixels "
                        "are not a grid any scanner acquires. The header is broken; re-export the series.")


def gantry_tilt(positions: np.ndarray, normal: np.ndarray, pixel: float, names) -> tuple[np.ndarray, float]:
    """Return (in-plane drift per mm along the normal, tilt in degrees) of slices at `positions` (n x 3, sorted).

    The in-plane offsets of the positions from the first must grow in proportion to the distance along the
    normal; a slice off that line by more than PIXEL_FRACTION of a pixel (`pixel`, mm) is refused, naming it.
    A drift below that over the whole series is returned as zero.
    """
    offsets = positions - positions[0]
    along = offsets @ normal
    in_plane = offsets - np.outer(along, normal)
    drift = (along @ in_plane) / (along @ along)  # least squares through the first slice
    stray = np.linalg.norm(in_plane - np.outer(along, drift), axis=1)
    if stray.max() > PIXEL_FRACTION * pixel:
        k = int(np.argmax(stray))
        raise DataError(f"The slice positions do not lie on a line: {names[k]} is {stray[k]:.3f} mm off the line "
                        f"through the others (more than {PIXEL_FRACTION} of a {pixel:.3g} mm pixel). The folder "
                        "mixes acquisitions or the positions are damaged; split or re-export the series.")
    if np.linalg.norm(drift) * along[-1] < PIXEL_FRACTION * pixel:
        return np.zeros(3), 0.0
    return drift, float(np.degrees(np.arctan(np.linalg.norm(drift))))


def untilt(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resample a sheared stack (`affine`'s third column off the slice normal) onto the orthogonal grid.

    Each slice keeps its plane and is shifted within it (linear interpolation in the plane only: the slices are
    not mixed). The grid grows in i and j to hold every shifted slice; voxels no slice covers take the minimum.
    """
    from scipy.ndimage import affine_transform

    in_plane = affine[:3, :2]
    normal = np.cross(in_plane[:, 0], in_plane[:, 1])
    normal /= np.linalg.norm(normal)
    step = affine[:3, 2]
    # the slice-to-slice shift in (i, j) voxels, and how far the last slice has moved
    shift = np.linalg.lstsq(in_plane, step - normal * (step @ normal), rcond=None)[0]
    travel = shift * (array.shape[2] - 1)
    # (a millionth of a voxel is rounding in the positions' decimal strings, not a column more)
    low = np.floor(np.minimum(travel, 0) + 1e-6).astype(int)
    high = np.ceil(np.maximum(travel, 0) - 1e-6).astype(int)
    target = affine.copy()
    target[:3, 2] = normal * (step @ normal)
    target[:3, 3] = affine[:3, 3] + in_plane @ low
    shape = (array.shape[0] + high[0] - low[0], array.shape[1] + high[1] - low[1], array.shape[2])
    to_source = np.linalg.inv(affine) @ target
    out = affine_transform(array, to_source[:3, :3], offset=to_source[:3, 3], output_shape=shape, order=1,
                           mode="grid-constant", cval=float(array.min()))  # "constant" drops an edge at -1e-16
    return out.astype(np.float32), target
