"""Reader for glacier calving-front data in the CaFFe layout.

Layout (DESIGN.md §3)::

    DATA_ROOT/sar_images/{split}/NAME.png          SAR image, 8-bit grayscale
    DATA_ROOT/zones/{split}/NAME_zones.png         zone mask 0/64/127/254
    DATA_ROOT/fronts/{split}/NAME_front.png        calving front (not read here)
    DATA_ROOT/EXTRA/{split}/NAME_EXTRA.{png,npy}   optional extra channels

Zone values map to the package's class indices (docs/architecture.md):
0 no data -> 0, 64 rock -> 1, 127 glacier -> 2, 254 ocean incl. ice melange -> 3.

Extra conditioning channels (e.g. elevation) are optional: any top-level folder
other than ``sar_images``, ``zones`` and ``fronts`` whose ``{split}/`` folder holds
files named ``NAME_<folder>.png`` or ``NAME_<folder>.npy`` is one channel,
named after the folder. PNG channels are scaled to [0, 1] (8-bit / 255, 16-bit
/ 65535); ``.npy`` channels are read as float32 [H, W] unchanged, so keep their
values roughly in [-1, 1]. When a channel folder exists, every image of that
split needs its file.

Image conversion: the SAR image should be 8-bit grayscale. RGB(A) and palette
images are converted to luminance (ITU-R 601, as PIL's "L" mode), 16-bit images
are scaled to 8 bit (value / 257, rounded). Zone masks in RGB are accepted when
the three channels are equal; 16-bit masks are accepted when they hold the
8-bit zone values directly or those values times 257.

Every problem a user can cause raises ``InputError(path, what)``.
"""

import dataclasses
import os

import numpy as np
from PIL import Image

from tfseaice.errors import InputError
from tfseaice.io_utils import atomic_path

ZONE_VALUES = (0, 64, 127, 254)
CLASS_NAMES = ("no_data", "rock", "glacier", "ocean")
NUM_CLASSES = len(ZONE_VALUES)
NO_DATA = 0
STANDARD_FOLDERS = ("sar_images", "zones", "fronts")
IMAGE_SUFFIX = ".png"
ZONES_SUFFIX = "_zones.png"
FRONT_SUFFIX = "_front.png"

ZONE_COUNTS = (2, 3)  # what --zone_classes may say: zones trained/scored; no data is not a zone


def zone_count(value, source="--zone_classes"):
    """2 (ocean vs glacier + rock) or 3 (rock, glacier, ocean) from a flag or a task.json value.

    One meaning for `train` and `evaluate`. 4, how `train` used to spell 3 (it counted no data),
    is read as 3 so that old scripts and model folders keep working. InputError otherwise.
    """
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    n = 3 if n == 4 else n
    if n not in ZONE_COUNTS:
        raise InputError(source, f"zone_classes must be 2 or 3 (4 = 3 zone classes + no data), got {value!r}")
    return n


_ZONE_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _v in enumerate(ZONE_VALUES):
    _ZONE_LUT[_v] = _i
_CLASS_LUT = np.asarray(ZONE_VALUES, dtype=np.uint8)


@dataclasses.dataclass
class GlacierImage:
    """One CaFFe image with its mask (class indices) and optional extra channels."""

    name: str
    split: str
    sar: np.ndarray            # uint8 [H, W]
    classes: np.ndarray        # uint8 [H, W], 0..3
    extra: np.ndarray | None   # float32 [H, W, E] or None
    extra_names: tuple
    image_path: str
    zones_path: str


def zones_to_classes(zones, path="<array>"):
    """Zone values 0/64/127/254 -> class indices 0..3 (uint8). Other values: InputError."""
    zones = np.asarray(zones)
    if zones.dtype != np.uint8:
        if zones.size and (zones.min() < 0 or zones.max() > 255):
            bad = np.unique(zones[(zones < 0) | (zones > 255)])[:5]
            raise InputError(path, f"zone values outside {{0, 64, 127, 254}}: {bad.tolist()}")
        zones = zones.astype(np.uint8)
    classes = _ZONE_LUT[zones]
    if (classes == 255).any():
        bad = np.unique(zones[classes == 255])
        shown = ", ".join(str(int(v)) for v in bad[:8]) + (", ..." if len(bad) > 8 else "")
        raise InputError(path, f"zone values outside {{0, 64, 127, 254}}: {shown}")
    return classes


def classes_to_zones(classes):
    """Class indices 0..3 -> zone values 0/64/127/254 (uint8)."""
    classes = np.asarray(classes)
    if classes.size and (classes.min() < 0 or classes.max() >= NUM_CLASSES):
        raise ValueError(f"class indices must be in 0..{NUM_CLASSES - 1}")
    return _CLASS_LUT[classes.astype(np.int64)]


def _open(path):
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except Exception as exc:  # PIL raises several types for broken files
        raise InputError(path, f"cannot read image: {exc.__class__.__name__}: {exc}") from None


def read_sar_png(path):
    """Read a SAR PNG as uint8 [H, W] (RGB / palette -> luminance, 16-bit -> /257)."""
    img = _open(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise InputError(path, f"unsupported 32-bit pixel range {arr.min()}..{arr.max()}")
        return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    if img.mode == "F":
        raise InputError(path, "floating-point images are not supported; save as 8- or 16-bit PNG")
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def read_zones_png(path):
    """Read a zone mask PNG and return class indices uint8 [H, W]."""
    img = _open(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.int64)
        if arr.size and arr.max() > 255:
            if np.all(arr % 257 == 0):
                arr = arr // 257
            else:
                bad = np.unique(arr[arr > 255])[:5]
                raise InputError(path, f"zone values outside {{0, 64, 127, 254}}: {bad.tolist()}")
        return zones_to_classes(arr, path)
    if img.mode in ("RGB", "RGBA"):
        arr = np.asarray(img)[..., :3]
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise InputError(path, "colour zone mask: expected grayscale values 0/64/127/254")
        return zones_to_classes(arr[..., 0], path)
    if img.mode == "P":
        img = img.convert("L")
    elif img.mode == "LA":
        img = img.getchannel(0)
    elif img.mode != "L":
        raise InputError(path, f"unsupported mask mode {img.mode}")
    return zones_to_classes(np.asarray(img, dtype=np.uint8), path)


def read_extra(path):
    """Read one extra channel file (.png scaled to [0, 1], .npy float32 as is)."""
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise InputError(path, "file not found") from None
        except Exception as exc:
            raise InputError(path, f"cannot read .npy: {exc}") from None
        arr = np.asarray(arr)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
            raise InputError(path, f"expected a numeric [H, W] array, got {arr.dtype} {arr.shape}")
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise InputError(path, "extra channel holds NaN or infinite values")
        return arr
    img = _open(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return (np.asarray(img).astype(np.float64) / 65535.0).astype(np.float32)
    if img.mode != "L":
        img = img.convert("L")
    return (np.asarray(img, dtype=np.float32) / 255.0).astype(np.float32)


def list_splits(data_root):
    """Split folders present under sar_images/ (sorted)."""
    root = os.path.join(data_root, "sar_images")
    if not os.path.isdir(root):
        raise InputError(data_root, "not a CaFFe data root: no sar_images/ folder")
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))


def find_extra_channels(data_root):
    """Names of extra conditioning channel folders (sorted), see module docstring."""
    if not os.path.isdir(data_root):
        raise InputError(data_root, "data root not found")
    names = []
    for entry in sorted(os.listdir(data_root)):
        folder = os.path.join(data_root, entry)
        if entry in STANDARD_FOLDERS or entry.startswith(".") or not os.path.isdir(folder):
            continue
        found = False
        for split in os.listdir(folder):
            sub = os.path.join(folder, split)
            if os.path.isdir(sub) and any(
                    f.endswith((f"_{entry}.png", f"_{entry}.npy")) for f in os.listdir(sub)):
                found = True
                break
        if found:
            names.append(entry)
    return names


def list_pairs(data_root, split):
    """[(name, image_path, zones_path)] of a split, sorted by name.

    An image without its mask is an InputError; masks without an image are ignored.
    """
    img_dir = os.path.join(data_root, "sar_images", split)
    zone_dir = os.path.join(data_root, "zones", split)
    if not os.path.isdir(img_dir):
        raise InputError(img_dir, "folder not found")
    names = sorted(f[: -len(IMAGE_SUFFIX)] for f in os.listdir(img_dir)
                   if f.lower().endswith(IMAGE_SUFFIX) and not f.startswith("."))
    pairs = []
    for name in names:
        image_path = os.path.join(img_dir, name + IMAGE_SUFFIX)
        zones_path = os.path.join(zone_dir, name + ZONES_SUFFIX)
        if not os.path.isfile(zones_path):
            raise InputError(image_path, f"image has no mask (expected {zones_path})")
        pairs.append((name, image_path, zones_path))
    return pairs


def extra_path(data_root, channel, split, name):
    """Path of an extra channel file (.npy preferred over .png); InputError if absent."""
    base = os.path.join(data_root, channel, split, f"{name}_{channel}")
    for ext in (".npy", ".png"):
        if os.path.isfile(base + ext):
            return base + ext
    raise InputError(base + ".png", f"extra channel {channel!r} missing for image {name}")


def read_pair(image_path, zones_path, extra_paths=(), extra_names=(), name=None, split=""):
    """Read and validate one image/mask pair (and extra channels) -> GlacierImage."""
    sar = read_sar_png(image_path)
    classes = read_zones_png(zones_path)
    if classes.shape != sar.shape:
        raise InputError(zones_path, f"mask is {classes.shape[0]}x{classes.shape[1]} (HxW) "
                                     f"but image is {sar.shape[0]}x{sar.shape[1]}")
    extra = None
    if extra_paths:
        chans = []
        for p in extra_paths:
            arr = read_extra(p)
            if arr.shape != sar.shape:
                raise InputError(p, f"extra channel is {arr.shape[0]}x{arr.shape[1]} "
                                    f"but image is {sar.shape[0]}x{sar.shape[1]}")
            chans.append(arr)
        extra = np.stack(chans, axis=-1).astype(np.float32)
    if name is None:
        name = os.path.basename(image_path)[: -len(IMAGE_SUFFIX)]
    return GlacierImage(name=name, split=split, sar=sar, classes=classes, extra=extra,
                        extra_names=tuple(extra_names), image_path=image_path,
                        zones_path=zones_path)


def read_image(data_root, split, name, extra_names=()):
    """Read image NAME of a split with its mask and the given extra channels."""
    image_path = os.path.join(data_root, "sar_images", split, name + IMAGE_SUFFIX)
    zones_path = os.path.join(data_root, "zones", split, name + ZONES_SUFFIX)
    if not os.path.isfile(image_path):
        raise InputError(image_path, "file not found")
    if not os.path.isfile(zones_path):
        raise InputError(image_path, f"image has no mask (expected {zones_path})")
    extra_paths = [extra_path(data_root, ch, split, name) for ch in extra_names]
    return read_pair(image_path, zones_path, extra_paths, extra_names, name=name, split=split)


def iter_split(data_root, split, extra_names=None):
    """Yield GlacierImage for every image of a split (extra channels auto-detected)."""
    if extra_names is None:
        extra_names = find_extra_channels(data_root)
    for name, _, _ in list_pairs(data_root, split):
        yield read_image(data_root, split, name, extra_names)


def write_png(path, array):
    """Write a uint8 [H, W] array as 8-bit grayscale PNG (atomic rename)."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8 or arr.ndim != 2:
        raise ValueError(f"write_png needs uint8 [H, W], got {arr.dtype} {arr.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
