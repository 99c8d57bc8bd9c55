"""Whole-scene SIC inference in bounded memory.

`predict_scene(model, sar)` runs a fully convolutional SIC model over a scene of any size, tile by
tile, and blends the overlapping tiles into one pixel-SIC map (paper Fig. 2e). `polygon_map(pred,
chart_ids)` turns that map into the polygon-SIC map (paper Fig. 2g) in `tfseaice.serving.sic_products`.

Tiling (what the blending guarantees)
-------------------------------------
* The scene is (virtually) padded at the bottom/right to a multiple of
  `ALIGN` = 16 by reflection, exactly as a one-shot prediction of the whole
  scene would be padded. Tiles are at most `tile` x `tile` (rounded up to a
  multiple of 16, or the padded scene size if smaller; along each axis shrunk to
  the smallest multiple of 16 that needs no more tiles), and every tile origin is a
  multiple of 16. A U-Net with 4 pooling levels is only shift-equivariant for
  shifts by multiples of 16, so this alignment is what makes a tile compute the
  same numbers as the one-shot prediction at the same pixels.
* Consecutive tiles overlap by at least `overlap` pixels. Each tile's
  prediction is weighted by a separable window that is 1 in the tile, and at
  every tile edge that lies *inside* the scene is 0 for the first
  `overlap // 4` pixels, then rises smoothly (raised cosine) to 1 over the next
  `overlap // 2` pixels. Edges on the scene border keep weight 1. The output is
  sum(weight * prediction) / sum(weight): no seams, and a pixel never takes
  any part of its value from a tile whose edge is closer than `overlap // 4`.
  Hence: **for a fully convolutional model whose receptive-field radius is at
  most `overlap // 4` (and whose pooling divides 16), the tiled result equals
  the one-shot result everywhere, borders included** (up to float round-off).
  With a larger receptive field (the 4-level U-Net's is about 100 pixels) the
  result is exact wherever every contributing tile edge is farther away than
  the receptive field, and close to it elsewhere.
* Memory: besides the [H, W] float32 output (also the accumulator; the weight normaliser is separable,
  so it is two 1-D vectors), only one batch of `batch_size` tiles is held at a time.
* Pixels where any input channel is non-finite (NaN = no data) are NaN in the output. The model receives
  them as NaN (the SIC U-Net maps them to the channel mean inside the model), so they serve as context.
* An ice-chart model (dict output: "sic" and the SOD/FLOE probabilities) is
  blended the same way head by head, the class heads in probability space
  (a blend of distributions is one); `predict_scene_charts` then takes each
  pixel's most probable class. The guarantees above hold for every head; the
  class maps add [H, W, 6 + 7] float32 accumulators.
"""

import dataclasses
import math
import weakref

import numpy as np

from tfseaice.data.egg_codes import NUM_FLOE, NUM_SOD, UNLABELLED
from tfseaice.precision import cpu_flags

ALIGN = 16
ROW_CHUNK = 1024   # rows per chunk of the [H, W] passes: bounded temporaries


def default_tiling(flags):
    """(tile, batch_size) on a CPU with ISA `flags`: one 1024 tile a call with AVX-512 (the fastest measured
    there); without it two of 768, as oneDNN then runs brgemm convolutions only from two images a call
    on, im2col products for one, at half the speed (docs/performance.md)."""
    return (1024, 1) if "avx512f" in set(flags) else (768, 2)


DEFAULT_TILE, DEFAULT_BATCH_SIZE = default_tiling(cpu_flags())
_KERAS_CALLS = weakref.WeakKeyDictionary()   # Keras model -> {channels: its inference tf.function}
CLASS_HEADS = {"sod": NUM_SOD, "floe": NUM_FLOE}   # class heads of an ice-chart model: class count
CLASS_FILL = UNLABELLED                             # class maps: no data


# --------------------------------------------------------------- tile layout
def _round_up(n, m):
    return int(math.ceil(n / m) * m)


@dataclasses.dataclass(frozen=True)
class AxisTiles:
    """Tiles along one axis of the padded scene."""

    length: int          # scene length (pixels)
    padded: int          # length rounded up to ALIGN
    size: int            # tile length along this axis
    origins: tuple       # tile origins, multiples of ALIGN
    margin: int          # zero-weight pixels at interior tile edges
    ramp: int            # raised-cosine ramp length after the margin

    def interior(self, k):
        """(left edge inside the scene, right edge inside the scene) of tile k."""
        o = self.origins[k]
        return o > 0, o + self.size < self.padded

    def weights(self, k):
        """1-D blending weight of tile k, float64 [size]."""
        left, right = self.interior(k)
        w = np.ones(self.size)
        d = np.arange(self.size)
        if left:
            w *= _ramp(d, self.margin, self.ramp)
        if right:
            w *= _ramp(d[::-1], self.margin, self.ramp)
        return w

    def support(self, k):
        """[lo, hi) of tile k where its weight is positive and the pixel lies in the scene (tile coordinates)."""
        left, right = self.interior(k)
        lo = self.margin if left else 0
        hi = self.size - self.margin if right else self.size
        return lo, min(hi, self.length - self.origins[k])

    def weight_sum(self):
        """Sum of the weights of all tiles over the scene, float64 [length]."""
        total = np.zeros(self.padded)
        for k, o in enumerate(self.origins):
            total[o:o + self.size] += self.weights(k)
        return total[:self.length]


def _ramp(d, margin, ramp):
    """0 for d < margin, raised cosine up to 1 over `ramp` pixels, then 1."""
    x = (d - margin + 1) / (ramp + 1)
    return np.where(d < margin, 0.0, np.where(x >= 1, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0, 1))))


def _origins(padded, size, overlap):
    """Tile origins (multiples of ALIGN) covering `padded` with tiles of `size` overlapping >= `overlap`."""
    if size >= padded:
        return (0,)
    step = (size - overlap) // ALIGN * ALIGN
    return tuple(range(0, padded - size, step)) + (padded - size,)


def axis_tiles(length, tile, overlap):
    """Tile layout along one axis (see the module docstring).

    `tile` is the largest tile length: the tiles are shrunk to the smallest multiple of
    ALIGN that covers the axis with no more tiles than `tile` needs, so that the last tile
    does not mostly overlap its neighbour (5000 x 5200 at tile 512: 1.32 instead of 1.45
    computed pixels per scene pixel). `tile=None` means one tile covering the whole (padded) axis.
    """
    length = int(length)
    if length < 1:
        raise ValueError(f"scene axis has length {length}")
    padded = _round_up(length, ALIGN)
    overlap = int(overlap)
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if tile is None:
        size = padded
    else:
        size = _round_up(int(tile), ALIGN)
        if size - overlap < ALIGN:
            raise ValueError(f"tile ({tile}, rounded to {size}) must exceed overlap ({overlap}) by at least {ALIGN}")
        size = min(size, padded)
    origins = _origins(padded, size, overlap)
    if tile is not None and len(origins) > 1:
        for smaller in range(_round_up(overlap + ALIGN, ALIGN), size, ALIGN):
            fewer = _origins(padded, smaller, overlap)
            if len(fewer) <= len(origins):
                size, origins = smaller, fewer
                break
    margin = overlap // 4
    return AxisTiles(length=length, padded=padded, size=size, origins=origins,
                     margin=margin, ramp=overlap // 2)


def _reflect_index(idx, length):
    """Map indices >= length back into [0, length) by reflection (no edge repeat)."""
    if length == 1:
        return np.zeros_like(idx)
    period = 2 * (length - 1)
    k = np.mod(idx, period)
    return np.where(k < length, k, period - k)


# ------------------------------------------------------------------- models
def _as_predict_fn(model, num_channels):
    """A function numpy [B,h,w,C] float32 -> {head: numpy float32 [B,h,w] (sic) or [B,h,w,k]} for `model`.

    `model`: a Keras model/layer (called with training=False inside one
    tf.function), a `keras.layers.TFSMLayer` or `tf.saved_model.load` result
    with a `serving_default` signature, or any callable. Outputs may be
    [B,h,w,1], [B,h,w] or a dict holding "sic" and, for an ice-chart model, the
    probabilities of "sod" [B,h,w,6] and "floe" [B,h,w,7] (an exported
    SavedModel names them `sod_probability`/`floe_probability`: its `sod`/`floe` are class indices).
    """
    import keras  # here, not at import: tiling and blending need no TF
    import tensorflow as tf

    if hasattr(model, "signatures") and "serving_default" in getattr(model, "signatures", {}):
        sig = model.signatures["serving_default"]

        def call(x):
            return sig(sar=x)
    elif isinstance(model, (keras.Model, keras.layers.Layer)):
        call = _KERAS_CALLS.setdefault(model, {}).get(num_channels)
        if call is None:   # once per model: a new tf.function per scene traces again (~0.2 s on 2 cores)
            ref, is_tfsm = weakref.ref(model), isinstance(model, keras.layers.TFSMLayer)  # weak: no model kept alive

            @tf.function(input_signature=[tf.TensorSpec([None, None, None, num_channels], tf.float32)], autograph=False)
            def call(x):
                return ref()(x) if is_tfsm else ref()(x, training=False)

            _KERAS_CALLS[model][num_channels] = call
    else:
        call = model

    def predict(batch):
        out = call(tf.convert_to_tensor(batch, tf.float32))
        heads = {}
        if isinstance(out, dict):
            for head in CLASS_HEADS:
                probs = out.get(f"{head}_probability", out.get(head))
                if probs is not None and np.ndim(probs) == 4:
                    heads[head] = np.asarray(probs, np.float32)
            if "sic" in out:
                out = out["sic"]
            elif len(out) == 1:
                out = next(iter(out.values()))
            else:
                raise ValueError(f"model returns outputs {sorted(out)}; expected one named 'sic'")
        out = np.asarray(out, np.float32)
        if out.ndim == 4 and out.shape[-1] == 1:
            out = out[..., 0]
        if out.shape != batch.shape[:3]:
            raise ValueError(f"model returned shape {out.shape} for input {batch.shape}; expected {batch.shape[:3]} (+1)")
        for head, probs in heads.items():
            if probs.shape != (*batch.shape[:3], CLASS_HEADS[head]):
                raise ValueError(f"model returned {head} of shape {probs.shape} for input {batch.shape}; "
                                 f"expected {(*batch.shape[:3], CLASS_HEADS[head])}")
        return {"sic": out, **heads}

    return predict


def model_channels(model):
    """Input channel count of a Keras SIC model (or its `.unet`), None if unknown."""
    for m in (model, getattr(model, "unet", None)):
        try:
            shape = m.inputs[0].shape
        except (AttributeError, IndexError, TypeError):
            continue
        if shape[-1] is not None:
            return int(shape[-1])
    return None


# ---------------------------------------------------------------- inference
def finite_mask(sar, rows_per_chunk=ROW_CHUNK):
    """[H, W] bool: every channel finite. Computed in row chunks (no [H,W,C] temp), channel by
    channel (numpy's all(axis=-1) over 2 channels is ~10x slower than two elementwise passes)."""
    h, c = sar.shape[0], sar.shape[-1]
    out = np.empty(sar.shape[:2], bool)
    for r in range(0, h, rows_per_chunk):
        block, mask = np.asarray(sar[r:r + rows_per_chunk]), out[r:r + rows_per_chunk]
        np.isfinite(block[..., 0], out=mask)
        for ch in range(1, c):
            mask &= np.isfinite(block[..., ch])
    return out


def iter_tiles(rows, cols):
    """(row tile index, col tile index) over a tile grid, row-major."""
    for i in range(len(rows.origins)):
        for j in range(len(cols.origins)):
            yield i, j


def predict_scene(model, sar, tile=DEFAULT_TILE, overlap=64, batch_size=DEFAULT_BATCH_SIZE, mask_nodata=True):
    """Pixel SIC [H, W] float32 of a whole scene by overlapping tiles.

    Args:
      model: a fully convolutional SIC model taking float32 [B, h, w, C] (h, w
        multiples of 16; NaN allowed) and returning SIC [B, h, w, 1] or
        [B, h, w] (or a dict with "sic"): a Keras model, a TFSMLayer, a
        `tf.saved_model.load` object, or a plain callable.
      sar: [H, W, C] array (float32 dB as the files hold it; NaN = no data).
        Any H, W >= 1.
      tile: tile side in pixels (rounded up to a multiple of 16); None = one
        tile covering the whole scene (one-shot prediction).
      overlap: minimum overlap of neighbouring tiles in pixels (see the module
        docstring for what it guarantees).
      batch_size: tiles per model call.
      mask_nodata: NaN where any input channel is NaN (False: keep the model's
        output there too, as a challenge submission needs a class for every pixel).

    Returns:
      float32 [H, W]: blended prediction, NaN where any input channel is NaN (if `mask_nodata`).
      An ice-chart model's SOD/FLOE heads are left out (`predict_scene_charts` gives them).
    """
    return _predict_heads(model, sar, tile, overlap, batch_size, mask_nodata, heads=("sic",))["sic"]


def predict_scene_charts(model, sar, tile=DEFAULT_TILE, overlap=64, batch_size=DEFAULT_BATCH_SIZE, mask_nodata=True,
                         probabilities=False):
    """Every head of a whole-scene prediction: {"sic": float32 [H, W]} and, for an ice-chart model,
    "sod"/"floe": uint8 [H, W] class maps.

    Tiles are blended in probability space (each class's probability as SIC is, see the
    module docstring), then the class is the argmax of the blended probabilities;
    CLASS_FILL (255) where any input channel is NaN (if `mask_nodata`; otherwise every
    pixel gets a class). `probabilities`: also "sod_probability"/"floe_probability",
    float32 [H, W, k] (NaN where masked). Arguments as `predict_scene`; a SIC-only model
    gives {"sic": predict_scene(...)}.
    """
    blended = _predict_heads(model, sar, tile, overlap, batch_size, mask_nodata, heads=("sic", *CLASS_HEADS))
    out = {"sic": blended.pop("sic")}
    for head, probs in blended.items():
        classes = np.empty(probs.shape[:2], np.uint8)
        for r in range(0, probs.shape[0], ROW_CHUNK):
            sl = slice(r, r + ROW_CHUNK)
            classes[sl] = np.argmax(probs[sl], axis=-1)
            if mask_nodata:
                classes[sl][np.isnan(probs[sl, :, 0])] = CLASS_FILL
        out[head] = classes
        if probabilities:
            out[f"{head}_probability"] = probs
    return out


def _predict_heads(model, sar, tile, overlap, batch_size, mask_nodata, heads):
    """{head: blended float32 [H, W] (sic) or [H, W, k]} of the `heads` the model has."""
    sar = np.asarray(sar) if not hasattr(sar, "shape") else sar
    if sar.ndim != 3:
        raise ValueError(f"sar must be [H, W, C], got shape {sar.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    h, w, c = sar.shape
    rows, cols = axis_tiles(h, tile, overlap), axis_tiles(w, tile, overlap)
    predict = _as_predict_fn(model, c)
    outs, blends = {}, {}
    batch = np.empty((min(batch_size, len(rows.origins) * len(cols.origins)), rows.size, cols.size, c), np.float32)
    pending = []

    def flush():
        for k, (i, j) in enumerate(pending):
            _tile_into(batch[k], sar, rows, cols, i, j)
        preds = predict(batch[:len(pending)])
        for head in heads:
            if head in preds and head not in outs:   # accumulators made on the first batch
                outs[head] = np.zeros((h, w, *preds[head].shape[3:]), np.float32)
                blends[head] = _Blender(rows, cols, outs[head])
        for head, blend in blends.items():
            for (i, j), p in zip(pending, preds[head]):
                blend.add(i, j, p)
        pending.clear()

    for ij in iter_tiles(rows, cols):
        pending.append(ij)
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    norm_r = rows.weight_sum().astype(np.float32)
    norm_c = cols.weight_sum().astype(np.float32)
    for r in range(0, h, ROW_CHUNK):
        sl = slice(r, r + ROW_CHUNK)
        norm = np.outer(norm_r[sl], norm_c)
        nodata = ~finite_mask(sar[sl]) if mask_nodata else None
        for out in outs.values():
            out[sl] /= norm if out.ndim == 2 else norm[..., None]
            if mask_nodata:
                out[sl][nodata] = np.nan
    return outs


class _Blender:
    """Adds weighted tile predictions into `out` [H, W] (or [H, W, k]), only where a tile's weight is positive.

    Skipping the zero-weight margins is both cheaper and what keeps a NaN/Inf prediction
    there out of the sum. The 2-D weights are cached: tiles with the same interior edges and
    extent share one array (a scene has at most 9 distinct ones).
    """

    def __init__(self, rows, cols, out):
        self.rows, self.cols, self.out = rows, cols, out
        self._cache = {}

    def _weight(self, i, j, rs, cs):
        key = (self.rows.interior(i), self.cols.interior(j), rs, cs)
        if key not in self._cache:
            wr = self.rows.weights(i)[rs[0]:rs[1]].astype(np.float32)
            wc = self.cols.weights(j)[cs[0]:cs[1]].astype(np.float32)
            self._cache[key] = np.outer(wr, wc)
        return self._cache[key]

    def add(self, i, j, p):
        rs, cs = self.rows.support(i), self.cols.support(j)
        if rs[1] <= rs[0] or cs[1] <= cs[0]:
            return
        r0, c0 = self.rows.origins[i], self.cols.origins[j]
        weight = self._weight(i, j, rs, cs)
        tile = np.multiply(p[rs[0]:rs[1], cs[0]:cs[1]], weight if p.ndim == 2 else weight[..., None])
        self.out[r0 + rs[0]:r0 + rs[1], c0 + cs[0]:c0 + cs[1]] += tile


def _tile_into(dest, sar, rows, cols, i, j):
    """Copy tile (i, j) of the reflect-padded scene into `dest` float32 [rows.size, cols.size, C]."""
    r0, c0 = rows.origins[i], cols.origins[j]
    if r0 + rows.size <= rows.length and c0 + cols.size <= cols.length:
        dest[...] = sar[r0:r0 + rows.size, c0:c0 + cols.size]
        return
    ri = _reflect_index(np.arange(r0, r0 + rows.size), rows.length)
    ci = _reflect_index(np.arange(c0, c0 + cols.size), cols.length)
    dest[...] = np.asarray(sar[np.ix_(ri, ci)])
