"""Zone-segmentation U-Net for glacier SAR (task glacier_zones, the FCN-score model)."""

import keras
from keras import layers

from tfseaice.models.batchnorm import FusedBatchNormalization


def build_zones_unet(input_channels=1, num_classes=4, filters=(16, 32, 64, 128), sync_batchnorm=False,
                     downsample=2, name="zones_unet"):
    """Small zone-segmentation U-Net (SAR in [0, 1] -> class logits) for the FCN-score.

    Each level: 2 x (conv3x3-BN-ReLU), max-pool; decoder: 2x2 stride-2 transposed conv, concat,
    2 x (conv3x3-BN-ReLU); 1x1 conv -> ``num_classes`` logits. H, W multiples of
    downsample * 2**(len(filters) - 1). BatchNorm momentum 0.9 (moving
    statistics settle within the few hundred steps of a short run).

    ``downsample=2`` (default): the U-Net runs at half resolution (2x2 average
    pooling in; nearest x2 upsampling of the last features and a 3x3 conv to
    the logits out). Zones are large structures, and this makes the model 4x
    cheaper, so that it trains to convergence within the quickstart budget.
    """
    inputs = keras.Input(shape=(None, None, int(input_channels)), name="sar")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inputs)  # [0, 1] -> [-1, 1]
    if downsample > 1:
        x = layers.AveragePooling2D(downsample, name="downsample")(x)

    def block(x, f, tag):
        for k in (1, 2):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{tag}_conv{k}")(x)
            x = FusedBatchNormalization(synchronized=sync_batchnorm, momentum=0.9,
                                          name=f"{tag}_bn{k}")(x)
            x = layers.ReLU(name=f"{tag}_relu{k}")(x)
        return x

    skips = []
    for i, f in enumerate(filters[:-1]):
        x = block(x, f, f"enc{i}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    x = block(x, filters[-1], "bridge")
    for i in reversed(range(len(filters) - 1)):
        x = layers.Conv2DTranspose(filters[i], 2, strides=2, name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i]])
        x = block(x, filters[i], f"dec{i}")
    if downsample > 1:
        x = layers.UpSampling2D(downsample, interpolation="nearest", name="upsample")(x)
        logits = layers.Conv2D(num_classes, 3, padding="same", dtype="float32", name="logits")(x)
    else:
        logits = layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)
