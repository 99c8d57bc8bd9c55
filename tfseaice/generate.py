r"""Generate synthetic glacier SAR images from zone masks with a trained pix2pix generator.

  python -m tfseaice.generate --model_dir=runs/pix2pix_orig --masks_glob='masks/*_zones.png' \
      --out_dir=synthetic [--checkpoint=best|latest|EPOCH|path] [--dropout_at_inference] [--overwrite]
  python -m tfseaice.generate --saved_model=export/pix2pix --masks_glob=... --out_dir=...
  python -m tfseaice.generate --model_dir=... --random_masks=100 --seed=7 --out_dir=synthetic

Masks are CaFFe zone PNGs (0 no data, 64 rock, 127 glacier, 254 ocean) of any
size. Each output is one 8-bit PNG named after its mask (`NAME_zones.png` ->
`NAME.png`; characters other than letters, digits, `.`, `_`, `-` become `_`),
of the mask's own size. The generator works on 256 x 256 tiles: the mask is
padded (mirrored) to cover whole tiles, tiles overlap by half and are blended
with a smooth window, then the result is cropped back (`--mode=full` instead
runs the fully convolutional generator on the padded mask in one go). Pixels
that are no data in the mask are 0 in the image, valid pixels are >= 1 (the
CaFFe convention).

`--random_masks=N` draws N new plausible fjord masks
(tfseaice.simulate.glacier_masks.random_fjord_mask) and writes mask + image
pairs in the CaFFe layout (`sar_images/train/`, `zones/train/`,
`fronts/train/`), ready for data_prep.glacier_to_tfrecord.

A model trained with extra conditioning channels needs them for each mask:
`NAME_<channel>.npy` or `.png` beside `NAME_zones.png`.

Dropout: by default the generator runs deterministically (training=False:
BatchNorm moving statistics, no dropout). `--dropout_at_inference` keeps the
dropout layers on, the paper's (and Isola et al.'s) noise source, so repeated
runs differ; BatchNorm still uses its moving statistics.
"""

import glob
import json
import os
import re

import numpy as np
import tensorflow as tf
from absl import flags, logging

from tfseaice import cli, io_utils
from tfseaice.data import glacier
from tfseaice.errors import InputError
from tfseaice.simulate import glacier_masks

TILE = 256
SIDECAR = "tfseaice_generator.json"
FLAGS = flags.FLAGS


def define_flags():
    """Flags of this entry point (defined on demand, not at import)."""
    flags.DEFINE_string("model_dir", None, "Trained pix2pix model folder.")
    flags.DEFINE_string("saved_model", None, "Exported generator SavedModel (instead of --model_dir).")
    flags.DEFINE_string("checkpoint", "best", "With --model_dir: best, latest, an epoch number "
                        "(checkpoints/epoch_NNNN.weights.h5) or a .weights.h5 path.")
    flags.DEFINE_string("masks_glob", None, "Zone mask PNGs to turn into images.")
    flags.DEFINE_string("out_dir", None, "Output folder.", required=True)
    flags.DEFINE_bool("dropout_at_inference", False, "Keep dropout on when generating (paper's noise).")
    flags.DEFINE_integer("random_masks", 0, "Draw this many random fjord masks instead of --masks_glob.")
    flags.DEFINE_integer("seed", 0, "Seed of --random_masks (and of dropout noise).")
    flags.DEFINE_integer("min_size", 300, "Smallest side of a random mask.")
    flags.DEFINE_integer("max_size", 700, "Largest side of a random mask.")
    flags.DEFINE_enum("mode", "tile", ["tile", "full"], "Overlapping 256 tiles, or one fully "
                      "convolutional pass over the padded mask.")
    flags.DEFINE_integer("batch_size", 8, "Tiles per generator call.")
    flags.DEFINE_bool("overwrite", False, "Write into a non-empty --out_dir.")


# ------------------------------------------------------------ generator I/O

class GeneratorFn:
    """A generator as a function: condition [N,H,W,C] float32 -> SAR [N,H,W,1] in [0, 1]."""

    def __init__(self, fn, input_channels, num_classes=glacier.NUM_CLASSES, extra_names=()):
        self.fn = fn
        self.input_channels = int(input_channels)
        self.num_classes = num_classes
        self.extra_names = tuple(extra_names)

    def __call__(self, cond):
        return np.asarray(self.fn(tf.convert_to_tensor(cond, tf.float32)))


def _generator_of(model):
    return getattr(model, "generator", model)


def from_keras(generator, extra_names=()):
    """GeneratorFn of a Keras generator (or a Pix2Pix model)."""
    generator = _generator_of(generator)

    @tf.function(reduce_retracing=True)
    def run(cond):
        return tf.clip_by_value((generator(cond, training=False) + 1.0) / 2.0, 0.0, 1.0)

    return GeneratorFn(run, generator.input_shape[-1], extra_names=extra_names)


def load_from_model_dir(model_dir, checkpoint="best", dropout_at_inference=False):
    """GeneratorFn of a trained pix2pix model folder (weights: best|latest|EPOCH|path)."""
    from tfseaice import training
    from tfseaice.models.pix2pix import set_dropout_at_inference
    from tfseaice.tasks import pix2pix as task

    meta = training.read_task_file(model_dir)
    if meta.get("task") != "pix2pix":
        raise InputError(model_dir, f"holds a {meta.get('task')!r} model, not pix2pix")
    info = meta["dataset_info"]
    checkpoint = str(checkpoint)
    if checkpoint.isdigit() or checkpoint.endswith(".weights.h5") and "epoch_" in os.path.basename(checkpoint):
        path = task.checkpoint_path(model_dir, int(checkpoint)) if checkpoint.isdigit() else checkpoint
        if not os.path.exists(path):
            raise InputError(path, "generator checkpoint not found")
        cfg = training.TrainConfig.from_json(meta["config"])
        generator = task.build_generator_from(cfg, info)
        generator.load_weights(path)
    else:
        model, _ = training.load_trained(model_dir, weights=checkpoint, expect_task="pix2pix")
        generator = model.generator
    set_dropout_at_inference(generator, dropout_at_inference)
    return from_keras(generator, extra_names=info.get("extra_channels", []))


def load_saved_model(path):
    """GeneratorFn of an exported generator SavedModel (input `mask`, output `sar`)."""
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        raise InputError(path, "not a SavedModel folder (no saved_model.pb)")
    loaded = tf.saved_model.load(path)
    sig = loaded.signatures.get("serving_default")
    if sig is None:
        raise InputError(path, "SavedModel has no serving_default signature")
    spec = sig.structured_input_signature[1].get("mask")
    if spec is None:
        raise InputError(path, "SavedModel's serving_default takes no `mask` input")
    extra_names = ()
    sidecar = os.path.join(path, SIDECAR)
    if os.path.exists(sidecar):
        with open(sidecar) as f:
            extra_names = tuple(json.load(f).get("extra_channels", []))

    def run(cond):
        return sig(mask=cond)["sar"]

    run.keep_alive = loaded
    return GeneratorFn(run, spec.shape[-1], extra_names=extra_names)


def export_generator(model, export_dir, extra_names=None):
    """Export the generator as a SavedModel for TF Serving.

    Signature `serving_default`: input `mask` float32 [B, H, W, 4 + E] (one-hot
    classes 0 no data, 1 rock, 2 glacier, 3 ocean, then the E extra channels;
    H and W multiples of 256), output `sar` float32 [B, H, W, 1] in [0, 1]
    (8-bit PNG value / 255). Generator in inference mode (moving BatchNorm
    statistics; dropout as configured on its NoiseDropout layers).
    """
    import keras

    generator = _generator_of(model)
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


# ------------------------------------------------------------- image making

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


def generate_image(gen, classes, extra=None, mode="tile", batch_size=8, tile=TILE):
    """uint8 [H, W] image for class map `classes` [H, W] (any size).

    mode "tile": mirrored padding to whole tiles, 50 % overlapping tiles blended
    with a sin^2 window; "full": one pass over the mask padded to a multiple of
    `tile`. No-data pixels become 0, the others >= 1.
    """
    classes = np.asarray(classes)
    h, w = classes.shape
    cond = conditioning(classes, extra, gen.num_classes)
    if cond.shape[-1] != gen.input_channels:
        raise ValueError(f"generator takes {gen.input_channels} channels, condition has {cond.shape[-1]}")
    stride = tile // 2 if mode == "tile" else tile
    hp, wp = _padded_size(h, tile, stride), _padded_size(w, tile, stride)
    if mode == "full":
        hp, wp = int(np.ceil(h / tile)) * tile, int(np.ceil(w / tile)) * tile
    padded = np.pad(cond, ((0, hp - h), (0, wp - w), (0, 0)), mode="symmetric")
    if mode == "full":
        out = gen(padded[None])[0, ..., 0]
    else:
        offsets = [(r, c) for r in range(0, hp - tile + 1, stride) for c in range(0, wp - tile + 1, stride)]
        win = np.outer(_window(tile), _window(tile))
        acc = np.zeros((hp, wp))
        wsum = np.zeros((hp, wp))
        for i in range(0, len(offsets), batch_size):
            chunk = offsets[i:i + batch_size]
            tiles = np.stack([padded[r:r + tile, c:c + tile] for r, c in chunk])
            res = gen(tiles)[..., 0]
            for (r, c), t in zip(chunk, res):
                acc[r:r + tile, c:c + tile] += t * win
                wsum[r:r + tile, c:c + tile] += win
        out = acc / wsum
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


def generate_random(gen, num, out_dir, seed=0, overwrite=False, min_size=300, max_size=700,
                    mode="tile", batch_size=8):
    """Draw `num` random fjord masks; write mask + image pairs in the CaFFe layout."""
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
        name = f"SYN_random-{seed}_GAN_0_0_{i:05d}"
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


def main(argv):
    del argv
    if bool(FLAGS.model_dir) == bool(FLAGS.saved_model):
        raise InputError("flags", "give exactly one of --model_dir and --saved_model")
    if bool(FLAGS.masks_glob) == bool(FLAGS.random_masks):
        raise InputError("flags", "give exactly one of --masks_glob and --random_masks")
    import keras

    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.model_dir:
        gen = load_from_model_dir(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.dropout_at_inference)
    else:
        if FLAGS.dropout_at_inference:
            logging.warning("--dropout_at_inference has no effect on a SavedModel (fixed at export)")
        gen = load_saved_model(FLAGS.saved_model)
    if FLAGS.random_masks:
        names = generate_random(gen, FLAGS.random_masks, FLAGS.out_dir, seed=FLAGS.seed,
                                overwrite=FLAGS.overwrite, min_size=FLAGS.min_size,
                                max_size=FLAGS.max_size, mode=FLAGS.mode, batch_size=FLAGS.batch_size)
        print(f"Wrote {len(names)} random mask + image pairs (CaFFe layout) to {FLAGS.out_dir}")
    else:
        paths = [p for p in glob.glob(FLAGS.masks_glob) if os.path.isfile(p)]
        done = generate_from_masks(gen, paths, FLAGS.out_dir, overwrite=FLAGS.overwrite,
                                   mode=FLAGS.mode, batch_size=FLAGS.batch_size)
        print(f"Wrote {len(done)} images to {FLAGS.out_dir}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
