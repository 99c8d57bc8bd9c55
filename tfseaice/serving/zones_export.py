"""SavedModel export of a glacier zone-segmentation model for TF Serving."""

import keras
import tensorflow as tf


def export_zones(model, export_dir):
    """SavedModel: input `sar` [B,H,W,1] in [0, 1] (H, W multiples of 8) -> `zones` logits."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda sar: {"zones": model(sar, training=False)},
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="sar")])
    archive.write_out(export_dir)
    return export_dir
