"""SavedModel export of a pix2pix generator for TF Serving (input `mask`, output `sar`)."""

import json
import os

import keras
import tensorflow as tf

from tfseaice import io_utils
from tfseaice.data import glacier

SIDECAR = "tfseaice_generator.json"


def generator_of(model):
    """The generator of a Pix2Pix model (or the generator itself)."""
    return getattr(model, "generator", model)


def export_generator(model, export_dir, extra_names=None):
    """Export the generator as a SavedModel for TF Serving.

    Signature `serving_default`: input `mask` float32 [B, H, W, 4 + E] (one-hot
    classes 0 no data, 1 rock, 2 glacier, 3 ocean, then the E extra channels;
    H and W multiples of 256), output `sar` float32 [B, H, W, 1] in [0, 1]
    (8-bit PNG value / 255). Generator in inference mode (moving BatchNorm
    statistics; dropout as configured on its NoiseDropout layers).
    """
    generator = generator_of(model)
    channels = int(generator.input_shape[-1])
    if extra_names is None:
        extra_names = [f"extra_{i}" for i in range(channels - glacier.NUM_CLASSES)]
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def serve(mask):
        out = generator(mask, training=False)
        return {"sar": tf.clip_by_value((out + 1.0) / 2.0, 0.0, 1.0)}

    archive.add_endpoint("serving_default", serve, input_signature=[
        tf.TensorSpec([None, None, None, channels], tf.float32, name="mask")])
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    with io_utils.atomic_path(export_dir) as tmp:
        archive.write_out(tmp, verbose=False)
        with open(os.path.join(tmp, SIDECAR), "w") as f:
            json.dump({"input": "mask", "output": "sar", "input_channels": channels,
                       "class_names": list(glacier.CLASS_NAMES),
                       "extra_channels": list(extra_names)}, f, indent=2)
    return export_dir
