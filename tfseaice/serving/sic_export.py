r"""SavedModel export of a SIC model (tasks sic_regional, sic_pixel; icechart_regional, icechart_pixel) for TF Serving.

Signature `serving_default`
  input   sar        float32 [batch, H, W, C]  SAR as the files hold it (dB), NaN = no data;
                     H, W any multiples of 16; C = the model's channels (e.g. HH, HV)
  outputs sic        float32 [batch, H, W]     pixel SIC in [0, 1]; NaN where any input channel is NaN
          ice_water  uint8   [batch, H, W]     1 ice (sic >= 0.5), 0 water, 255 no data
  and for an ice-chart model (its output a dict with SOD/FLOE probabilities):
          sod, floe  uint8   [batch, H, W]     most probable AutoICE class, 255 no data
          sod_probability, floe_probability
                     float32 [batch, H, W, 6 or 7]  class probabilities, NaN no data (what
                                               tiled inference blends across tiles)
A wrong rank (e.g. no batch axis), channel count, or H or W not a multiple of
16 fails with an InvalidArgumentError that says so; a wrong dtype is refused by
TF before the graph runs ("expected to be a float tensor but is a double
tensor"). Scenes of any size: tile them as `tfseaice.serving.scene_inference.predict_scene` does (or run
`python -m tfseaice.predict --saved_model=...`).

The export folder is the SavedModel itself (saved_model.pb, variables/, and
assets.extra/tfseaice.json with channels, downsampling and normalisation).
"""

import keras
import tensorflow as tf

import tfseaice
from tfseaice import io_utils
from tfseaice.errors import InputError
from tfseaice.models.flip_average import inference_flips
from tfseaice.serving.loading import inference_network
from tfseaice.serving.saved_model import describe_saved_model, write_export_meta
from tfseaice.data.egg_codes import SOD_CLASSES, FLOE_CLASSES, UNLABELLED
from tfseaice.serving.scene_inference import ALIGN, CLASS_HEADS, model_channels


def _serving_fn(unet, num_channels, threshold, channel_names):
    spec = tf.TensorSpec([None, None, None, num_channels], tf.float32, name="sar")

    @tf.function(input_signature=[spec], autograph=False)
    def serve(sar):
        # A call does not enforce the signature's shape (TF Serving checks the dtype only),
        # so check the rank at run time first: a missing batch axis then reads "expected
        # shape [?,?,?,?]" instead of an index error. Everything below depends on it.
        sar = tf.ensure_shape(sar, [None, None, None, None], name="sar_must_be_batch_h_w_c")
        shape = tf.shape(sar)
        channels_ok = tf.debugging.Assert(tf.equal(shape[3], num_channels), [
            f"sar must have {num_channels} channels ({', '.join(channel_names)}) in the last axis; got", shape[3]])
        ok = tf.logical_and(tf.equal(shape[1] % ALIGN, 0), tf.equal(shape[2] % ALIGN, 0))
        size_ok = tf.debugging.Assert(ok, [f"sar height and width must be multiples of {ALIGN}; got", shape[1:3]])
        with tf.control_dependencies([channels_ok, size_ok]):
            out = unet(tf.identity(sar), training=False)
        heads = out if isinstance(out, dict) else {"sic": out}
        sic = tf.reshape(heads["sic"], shape[:3])                 # [B, H, W, 1] -> [B, H, W]
        finite = tf.reduce_all(tf.math.is_finite(sar), axis=-1)
        sic = tf.where(finite, sic, tf.constant(float("nan"), sic.dtype))
        ice = tf.where(finite, tf.cast(sic >= threshold, tf.uint8), tf.constant(255, tf.uint8))
        result = {"sic": tf.identity(sic, name="sic"), "ice_water": tf.identity(ice, name="ice_water")}
        for head in CLASS_HEADS:
            if head in heads:
                probs = tf.cast(heads[head], tf.float32)
                classes = tf.where(finite, tf.cast(tf.argmax(probs, axis=-1), tf.uint8),
                                   tf.constant(UNLABELLED, tf.uint8))
                probs = tf.where(finite[..., None], probs, tf.constant(float("nan")))
                result[head] = tf.identity(classes, name=head)
                result[f"{head}_probability"] = tf.identity(probs, name=f"{head}_probability")
        return result

    return serve


def export_sic(model, export_dir, info=None, threshold=0.5, overwrite=False, extra_meta=None, flip_tta=False):
    """Write a TF Serving SavedModel of a SIC model; returns `describe_saved_model(export_dir)`.

    Args:
      model: the SIC Keras model (a functional U-Net, or a task model with `.unet`),
        taking float32 [B, H, W, C] in file units with normalisation inside.
      export_dir: SavedModel folder to write (temporary sibling, then renamed).
      info: dataset_info dict of the training data (channels, downsample,
        normalization), recorded in assets.extra/tfseaice.json.
      threshold: ice/water threshold of the `ice_water` output.
      overwrite: replace an existing export_dir.
      flip_tta: serve the mean of the four flips of each input (tfseaice.models.flip_average), for
        four forward passes per call; recorded as `inference_flips` in tfseaice.json.
    """
    info = dict(info or {})
    io_utils.refuse_existing(export_dir, overwrite)
    unet = inference_network(model, flip_tta)   # BatchNorm folded, as predict runs it
    channels = model_channels(model)
    if channels is None:
        if not info.get("channels"):
            raise ValueError("cannot tell the model's channel count; pass info with 'channels'")
        channels = len(info["channels"])
    if info.get("channels") and len(info["channels"]) != channels:
        raise InputError(export_dir, f"the model takes {channels} channels but its dataset_info lists {info['channels']}")
    archive = keras.export.ExportArchive()
    archive.track(unet)
    names = list(info.get("channels") or [f"ch{i}" for i in range(channels)])
    serve = _serving_fn(unet, channels, float(threshold), names)
    archive.add_endpoint("serving_default", serve)
    outputs = serve.get_concrete_function().structured_outputs
    meta = {
        "format": "tfseaice SIC SavedModel",
        "tfseaice_version": tfseaice.__version__,
        "signature": "serving_default",
        "inputs": {"sar": {"dtype": "float32", "shape": ["batch", "H", "W", channels],
                           "units": "as the scene files (dB for raw files)",
                           "note": f"H, W multiples of {ALIGN}; NaN = no data"}},
        "outputs": {"sic": {"dtype": "float32", "shape": ["batch", "H", "W"],
                            "note": "sea ice concentration in [0, 1]; NaN where any input channel is NaN"},
                    "ice_water": {"dtype": "uint8", "shape": ["batch", "H", "W"],
                                  "note": f"1 ice (sic >= {threshold:g}), 0 water, 255 no data"}},
        "ice_water_threshold": float(threshold),
        "channels": info.get("channels"),
        "downsample": info.get("downsample"),
        "pixel_spacing_m": info.get("pixel_spacing_m"),
        "normalization": info.get("normalization"),
        "inference_flips": inference_flips(flip_tta),
    }
    if "sod" in outputs or "floe" in outputs:
        for head, classes in (("sod", SOD_CLASSES), ("floe", FLOE_CLASSES)):
            if head in outputs:
                meta["outputs"][head] = {"dtype": "uint8", "shape": ["batch", "H", "W"], "classes": list(classes),
                                         "note": f"most probable AutoICE {head.upper()} class; {UNLABELLED} no data"}
                meta["outputs"][f"{head}_probability"] = {
                    "dtype": "float32", "shape": ["batch", "H", "W", len(classes)],
                    "note": "class probabilities (softmax); NaN where any input channel is NaN"}
        meta["format"] = "tfseaice ice-chart SavedModel"
    meta.update(extra_meta or {})
    with io_utils.atomic_path(export_dir) as tmp:
        archive.write_out(tmp, verbose=False)
        write_export_meta(tmp, meta)
    return describe_saved_model(export_dir)
