"""Image similarity of generated against real SAR (TensorFlow ops, training and evaluation alike):
non-binary Dice (pix2pix paper Eq. 6) and SSIM with the settings the paper's scores use.
"""

import numpy as np
import tensorflow as tf


SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def dice_non_binary(x, y):
    """Non-binary Dice (paper Eq. 6): 2 * sum(x * y) / (sum(x) + sum(y)).

    x, y: images in [0, 1] of the same shape (numpy or tensors); sums run over
    every element, so pass one image pair (see `batch_dice_non_binary` for a
    per-image batch version). Two all-zero images score 1.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x {x.shape} and y {y.shape} differ in shape")
    den = x.sum() + y.sum()
    if den == 0:
        return 1.0
    return float(2.0 * np.sum(x * y) / den)


def batch_dice_non_binary(x, y):
    """Per-image non-binary Dice of [B, H, W(, C)] tensors in [0, 1] -> [B] float32."""
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.float32)
    b = tf.shape(x)[0]
    x = tf.reshape(x, [b, -1])
    y = tf.reshape(y, [b, -1])
    num = 2.0 * tf.reduce_sum(x * y, axis=1)
    den = tf.reduce_sum(x, axis=1) + tf.reduce_sum(y, axis=1)
    return tf.where(den > 0, num / tf.maximum(den, 1e-12), tf.ones_like(den))


def batch_ssim(x, y, max_val=1.0):
    """Per-image SSIM of [B, H, W, C] tensors -> [B] float32 (see `ssim`)."""
    return tf.image.ssim(tf.cast(x, tf.float32), tf.cast(y, tf.float32), max_val=max_val,
                         filter_size=SSIM_FILTER_SIZE, filter_sigma=SSIM_FILTER_SIGMA,
                         k1=SSIM_K1, k2=SSIM_K2)


def ssim(x, y, max_val=1.0):
    """Structural similarity (Wang et al. 2004) of images in [0, max_val].

    Wraps `tf.image.ssim`: 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01,
    K2 = 0.03 (C1 = (K1 * max_val)**2, C2 = (K2 * max_val)**2), local
    statistics over the valid window positions only (no padding), mean of the
    SSIM map; channels are averaged. Images must be at least 11 x 11.
    Accepts [H, W], [H, W, C] (returns a float) or [B, H, W, C] (returns a
    numpy array [B]).
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    if x.shape != y.shape:
        raise ValueError(f"x {x.shape} and y {y.shape} differ in shape")
    if x.ndim == 2:
        x, y = x[None, ..., None], y[None, ..., None]
        single = True
    elif x.ndim == 3:
        x, y = x[None], y[None]
        single = True
    elif x.ndim == 4:
        single = False
    else:
        raise ValueError(f"ssim needs [H,W], [H,W,C] or [B,H,W,C], got {x.shape}")
    if min(x.shape[1:3]) < SSIM_FILTER_SIZE:
        raise ValueError(f"ssim needs images of at least {SSIM_FILTER_SIZE} x {SSIM_FILTER_SIZE}")
    values = batch_ssim(x, y, max_val).numpy().astype(np.float64)
    return float(values[0]) if single else values
