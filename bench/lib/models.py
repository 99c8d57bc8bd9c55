"""The benchmark models (SIC U-Net task models, pix2pix) and their counted FLOPs per image.

FLOPs are counted, not sampled: every Conv2D / Conv2DTranspose with its output
shapes at the patch size (bench/train_step.py's docstring derives the rule).
Keras and tfseaice's models are imported inside the functions: the train-step
suite's parent process and `--help` never build a model and start without TF.
"""

import numpy as np


def add_sic_batch_args(ap):
    """The package-default SIC training batch as flags (16 x 256², 2 channels, U-Net 16,32,64,64): one
    declaration for the benchmarks that time its train step piece by piece."""
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--patch_size", type=int, default=256)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--filters", default="16,32,64,64", help="comma-separated U-Net filters per block")


def build(task, channels, filters, jit, lr=1e-3):
    """(compiled task model, [its functional networks]) of `task` as tfseaice trains it."""
    import keras

    if task in ("sic_regional", "sic_pixel"):
        from tfseaice.models.unet import build_sic_unet
        from tfseaice.tasks.sic import SicPixelModel, SicRegionalModel

        unet = build_sic_unet(channels, filters=filters, norm_mean=[-16.0 - 5 * c for c in range(channels)],
                              norm_std=[5.0] * channels)
        model = (SicRegionalModel if task == "sic_regional" else SicPixelModel)(unet)
        model.compile(optimizer=keras.optimizers.Adam(lr), jit_compile=jit)
        return model, [unet]
    if task == "pix2pix":
        from tfseaice.models import pix2pix as p2p
        from tfseaice.tasks.pix2pix import NUM_CLASSES, Pix2Pix

        cin = NUM_CLASSES + channels
        gen = p2p.build_generator(cin, filters=filters[0])
        disc = p2p.build_discriminator(cin, filters=filters[0])
        model = Pix2Pix(gen, disc)
        model.compile(learning_rate=2e-4, beta_1=0.5, jit_compile=jit)
        return model, [gen, disc]
    raise ValueError(f"unknown task {task!r}")


def conv_shapes(net, input_shapes):
    """One dict per Conv2D / Conv2DTranspose of a functional model, in layer order: name, kind,
    h, w (output size; a transpose's input size), kernel (kh, kw), strides, cin, cout, groups,
    first (fed by the model input only), flops (forward FLOPs per image)."""
    import keras

    convs = [l for l in net.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    probe = keras.Model(net.inputs, [l.input for l in convs] + [l.output for l in convs])
    dummies = [np.zeros((1,) + tuple(s), np.float32) for s in input_shapes]
    outs = probe(dummies, training=False)
    ins, outs = outs[:len(convs)], outs[len(convs):]
    rows = []
    for layer, xi, xo in zip(convs, ins, outs):
        kh, kw = layer.kernel_size
        cin, cout = int(xi.shape[-1]), int(xo.shape[-1])
        transpose = isinstance(layer, keras.layers.Conv2DTranspose)
        h, w = (int(xi.shape[1]), int(xi.shape[2])) if transpose else (int(xo.shape[1]), int(xo.shape[2]))
        groups = getattr(layer, "groups", 1) or 1
        rows.append({"name": layer.name, "kind": "Conv2DTranspose" if transpose else "Conv2D", "h": h, "w": w,
                     "kernel": (kh, kw), "strides": tuple(layer.strides), "cin": cin, "cout": cout,
                     "groups": groups, "first": layer is convs[0],
                     "flops": 2 * h * w * kh * kw * cin * cout // groups})
    return rows


def conv_flops(net, input_shapes):
    """[(layer name, forward FLOPs per image, first-layer?)] for the convs of a functional model."""
    return [(r["name"], r["flops"], r["first"]) for r in conv_shapes(net, input_shapes)]


def train_flops(task, nets, patch_size, channels):
    """(forward FLOPs per image, training FLOPs per image, derivation text)."""
    p = patch_size
    if task.startswith("sic"):
        (unet,) = nets
        rows = conv_flops(unet, [(p, p, channels)])
        fwd = sum(f for _, f, _ in rows)
        first = sum(f for _, f, fl in rows if fl)
        train = 3 * fwd - first
        how = (f"U-Net convs forward {fwd / 1e9:.3f} GFLOP/image; training = forward + weight grads + "
               f"input grads = 3 x {fwd / 1e9:.3f} - first conv's input grad ({first / 1e9:.4f}) = {train / 1e9:.3f} GFLOP/image")
        return fwd, train, how
    gen, disc = nets
    from tfseaice.tasks.pix2pix import NUM_CLASSES

    cin = NUM_CLASSES + channels
    g_rows = conv_flops(gen, [(p, p, cin)])
    d_rows = conv_flops(disc, [(p, p, cin), (p, p, 1)])
    g = sum(f for _, f, _ in g_rows)
    g_first = sum(f for _, f, fl in g_rows if fl)
    d = sum(f for _, f, _ in d_rows)
    d_first = sum(f for _, f, fl in d_rows if fl)
    # G: fwd + wgrad + igrad(no first). D: 2 fwd; D loss: 2 wgrad + 2 igrad (no first-layer igrad);
    # G loss through D(fake): 1 igrad incl. the first layer (it reaches the generator).
    train = (3 * g - g_first) + (2 * d + 2 * d + 2 * (d - d_first) + d)
    how = (f"generator forward {g / 1e9:.3f} GFLOP/image, discriminator forward {d / 1e9:.3f}; training = "
           f"G x 3 (- first conv's input grad) + D x 7 (2 forward, 2 weight grads, 2 input grads for the "
           f"D loss, 1 input grad for the G loss; - 2 first-layer input grads) = {train / 1e9:.3f} GFLOP/image")
    return g + d, train, how


def loss_key(task):
    """The fit() log entry holding the task's training loss."""
    return "gen_total" if task == "pix2pix" else "loss"
