"""Whole glacier images from zone masks with a generator: tiling, blending, CaFFe-layout output.

Masks are CaFFe zone PNGs (0 no data, 64 rock, 127 glacier, 254 ocean) of any
size; each output is an 8-bit PNG of the mask's own size, no-data pixels 0 and
valid pixels >= 1 (the CaFFe convention).
"""

import datetime
import os
import re

import numpy as np

from tfseaice import io_utils
from tfseaice.data import glacier, glacier_masks
from tfseaice.errors import InputError

TILE = 256
ROCK, GLACIER = glacier.CLASS_NAMES.index("rock"), glacier.CLASS_NAMES.index("glacier")
SYNTHETIC_RESOLUTION_M = 20   # pixel size written into the names of random pairs (no real meaning)


def _window(n):
    w = np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2
    return np.maximum(w, 1e-3)


def _padded_size(n, tile, stride):
    if n <= tile:
        return tile
    return tile + int(np.ceil((n - tile) / stride)) * stride


def conditioning(classes, extra=None, num_classes=glacier.NUM_CLASSES):
    cond = np.eye(num_classes, dtype=np.float32)[classes.astype(np.int64)]
    if extra is not None:
        cond = np.concatenate([cond, np.asarray(extra, np.float32).reshape(*classes.shape, -1)], -1)
    return cond


def tiled_apply(fn, inputs, tile=TILE, batch_size=8):
    """Apply `fn` ([B, tile, tile, C] -> [B, tile, tile, K]) to an [H, W, C] array of any size.

    Mirrored padding to whole tiles, tiles overlapping by half, blended with a
    sin^2 window (the weights sum to a smooth positive map); returns float64 [H, W, K].
    """
    inputs = np.asarray(inputs)
    h, w = inputs.shape[:2]
    stride = tile // 2
    hp, wp = _padded_size(h, tile, stride), _padded_size(w, tile, stride)
    padded = np.pad(inputs, ((0, hp - h), (0, wp - w), (0, 0)), mode="symmetric")
    offsets = [(r, c) for r in range(0, hp - tile + 1, stride) for c in range(0, wp - tile + 1, stride)]
    win = np.outer(_window(tile), _window(tile))[..., None]
    acc = None
    wsum = np.zeros((hp, wp, 1))
    for i in range(0, len(offsets), batch_size):
        chunk = offsets[i:i + batch_size]
        res = np.asarray(fn(np.stack([padded[r:r + tile, c:c + tile] for r, c in chunk])))
        if acc is None:
            acc = np.zeros((hp, wp, res.shape[-1]))
        for (r, c), t in zip(chunk, res):
            acc[r:r + tile, c:c + tile] += t * win
            wsum[r:r + tile, c:c + tile] += win
    return (acc / wsum)[:h, :w]


def generate_image(gen, classes, extra=None, mode="tile", batch_size=8, tile=TILE):
    """uint8 [H, W] image for class map `classes` [H, W] (any size).

    mode "tile": mirrored padding to whole tiles, 50 % overlapping tiles blended
    with a sin^2 window (tiled_apply); "full": one pass over the mask padded to a
    multiple of `tile`. No-data pixels become 0, the others >= 1.
    """
    classes = np.asarray(classes)
    h, w = classes.shape
    if getattr(gen, "zone_classes", 3) == 2:   # a generator trained on the 2-class zones never saw rock
        classes = np.where(classes == ROCK, GLACIER, classes)
    cond = conditioning(classes, extra, gen.num_classes)
    if cond.shape[-1] != gen.input_channels:
        raise ValueError(f"generator takes {gen.input_channels} channels, condition has {cond.shape[-1]}")
    if mode == "full":
        hp, wp = int(np.ceil(h / tile)) * tile, int(np.ceil(w / tile)) * tile
        padded = np.pad(cond, ((0, hp - h), (0, wp - w), (0, 0)), mode="symmetric")
        out = np.asarray(gen(padded[None])[0, ..., 0])
    else:
        out = tiled_apply(lambda tiles: np.asarray(gen(tiles))[..., :1], cond, tile, batch_size)[..., 0]
    img = np.clip(np.rint(out[:h, :w] * 255.0), 1, 255).astype(np.uint8)
    img[classes == glacier.NO_DATA] = 0
    return img


def output_name(mask_path):
    """Safe output file name for a mask path: `NAME_zones.png` -> `NAME.png`."""
    stem = os.path.basename(mask_path)
    stem = re.sub(r"\.(png|PNG)$", "", stem)
    stem = re.sub(r"_zones$", "", stem)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".")
    return (stem or "mask") + ".png"


def _safe_join(out_dir, name):
    root = os.path.realpath(out_dir)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.dirname(path) != root:
        raise InputError(name, f"output name escapes {out_dir}")
    return path


def _extra_for(mask_path, extra_names):
    if not extra_names:
        return None
    base = re.sub(r"_zones\.png$", "", mask_path, flags=re.IGNORECASE)
    base = re.sub(r"\.png$", "", base, flags=re.IGNORECASE)
    chans = []
    for ch in extra_names:
        for ext in (".npy", ".png"):
            if os.path.isfile(f"{base}_{ch}{ext}"):
                chans.append(glacier.read_extra(f"{base}_{ch}{ext}"))
                break
        else:
            raise InputError(mask_path, f"the generator needs extra channel {ch!r}: "
                                        f"{base}_{ch}.npy or .png not found")
    return np.stack(chans, -1)


def generate_from_masks(gen, mask_paths, out_dir, overwrite=False, mode="tile", batch_size=8):
    """One PNG per mask in `out_dir`; returns [(mask_path, output_path)]."""
    mask_paths = sorted(mask_paths)
    if not mask_paths:
        raise InputError("--masks_glob", "matches no file")
    names = [output_name(p) for p in mask_paths]
    seen = {}
    for p, n in zip(mask_paths, names):
        if n in seen:
            raise InputError(p, f"gives the same output name {n} as {seen[n]}")
        seen[n] = p
    io_utils.refuse_existing(out_dir, overwrite)
    n_extra = gen.input_channels - gen.num_classes
    extra_names = gen.extra_names or tuple(f"extra_{i}" for i in range(n_extra))

    def inputs(p):
        classes = glacier.read_zones_png(p)
        extra = _extra_for(p, extra_names[:n_extra]) if n_extra else None
        if extra is not None and extra.shape[:2] != classes.shape:
            raise InputError(p, f"extra channels are {extra.shape[:2]} but the mask is {classes.shape}")
        return classes, extra

    # Check every mask (and its extra channels) before writing anything: a bad
    # mask among many must not leave a half-filled --out_dir behind.
    targets = [_safe_join(out_dir, n) for n in names]
    for p in mask_paths:
        inputs(p)
    os.makedirs(out_dir, exist_ok=True)
    done = []
    for p, path in zip(mask_paths, targets):
        classes, extra = inputs(p)
        img = generate_image(gen, classes, extra, mode=mode, batch_size=batch_size)
        glacier.write_png(path, img)
        done.append((p, path))
    return done


def synthetic_name(index, seed, resolution_m=SYNTHETIC_RESOLUTION_M):
    """CaFFe-style name `Glacier_Date_Satellite_Resolution_Quality_Orbit` of random pair `index`:
    glacier "Synthetic", one day per index from 2000-01-01, satellite "GAN", quality 0, orbit = seed."""
    day = datetime.date(2000, 1, 1) + datetime.timedelta(days=int(index))
    return f"Synthetic_{day.isoformat()}_GAN_{int(resolution_m)}_0_{int(seed)}"


def generate_random(gen, num, out_dir, seed=0, overwrite=False, min_size=300, max_size=700,
                    mode="tile", batch_size=8):
    """Draw `num` random fjord masks; write mask + image pairs in the CaFFe layout
    (names: `synthetic_name`), ready for data_prep.glacier_to_tfrecord."""
    if gen.input_channels != gen.num_classes:
        raise InputError("--random_masks", "this generator needs extra conditioning channels, "
                                           "which random masks cannot supply; use --masks_glob")
    io_utils.refuse_existing(out_dir, overwrite)
    written = []
    for i in range(num):
        rng = np.random.default_rng([seed, i])
        h, w = (int(rng.integers(min_size, max_size + 1)) for _ in range(2))
        classes = glacier_masks.random_fjord_mask(h, w, rng)
        img = generate_image(gen, classes, mode=mode, batch_size=batch_size)
        name = synthetic_name(i, seed)
        files = {
            ("sar_images", f"{name}.png"): img,
            ("zones", f"{name}_zones.png"): glacier.classes_to_zones(classes),
            ("fronts", f"{name}_front.png"):
                np.where(glacier_masks.front_line(classes, 2), 255, 0).astype(np.uint8),
        }
        for (folder, fname), arr in files.items():
            glacier.write_png(os.path.join(out_dir, folder, "train", fname), arr)
        written.append(name)
    return written
