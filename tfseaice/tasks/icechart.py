"""Ice-chart tasks: SIC, stage of development (SOD) and floe size (FLOE) from one U-Net.

`IcechartRegionalModel` trains only on polygon labels: the regional SIC loss
(paper Eq. 1) and, for SOD and FLOE, the composition loss (each polygon's mean
predicted class distribution against its egg-code composition; tfseaice.losses.composition).
`IcechartPixelModel` is the AutoICE/MMSeaIce-style baseline on the same
network: pixel MSE on the rasterised SIC and cross-entropy on each polygon's
dominant SOD/FLOE class (unlabelled polygons masked). The total loss is the
chart losses weighted by `chart_weights` (SIC, SOD, FLOE; default 2:2:1 as
the AutoICE score) and divided by their sum.

Batch keys (tfseaice.data.pipeline, schema 2) beside the SIC task's:
`polygon_sod` [B,K,6], `polygon_floe` [B,K,7] float32 (NaN rows = unlabelled),
`polygon_sod_class`, `polygon_floe_class` [B,K] int (255 = unlabelled).
Both models report the same trackers, so they compare:

  loss, polygon_rmse, polygon_r2   as the SIC tasks (SIC head)
  sic_loss, sod_loss, floe_loss    each chart's loss term (global batch)
  sod_accuracy, floe_accuracy      pixel accuracy of argmax against the polygon's
                                   dominant class (pixels whose polygon has one)
  sod_composition_rmse, floe_...   RMSE of the polygon-mean class shares against
                                   the composition (every class of every labelled polygon)
  sic_sod_gap                      mean |SIC - (1 - P(open water))| over usable pixels:
                                   how far the SIC head and the SOD head disagree
All are pooled over the epoch (exact across batches and replicas).
"""

import dataclasses
import functools

import keras
import tensorflow as tf
from absl import logging

from tfseaice import tensorboard_panels
from tfseaice.data import pipeline
from tfseaice.data.chart_prior import composition_prior
from tfseaice.data.egg_codes import NUM_SOD
from tfseaice.errors import InputError
from tfseaice.losses.composition import (adjust_probs, composition_loss, composition_terms, pixel_entropy,
                                         prior_class_weights, prior_logit_offset, prior_prediction_shift)
from tfseaice.losses.options import (COMPOSITION_LOSSES, DEFAULT_PLL_FOCAL_GAMMA, check_class_vector,
                                     check_composition_options, check_lever, check_pixel_loss,
                                     check_regional_options, check_temperature)
from tfseaice.losses.pseudo_labels import DEFAULT_TEMPERATURE, pseudo_label_loss
from tfseaice.losses.pixel import pixel_class_loss, pixel_sic_loss, rasterize_polygon_classes
from tfseaice.losses.regional import as_polygon_table, cross_replica_sum, polygon_terms, regional_sic_loss
from tfseaice.metrics.trackers import PooledRegressionMetric
from tfseaice.models.unet import build_icechart_unet
from tfseaice.tasks.sic import REQUIRED_KEYS, SicImagePanels, SicModelBase, SicOptions, SicTask, polygon_table
from tfseaice.training.config import adam
from tfseaice.training.options import option

CHARTS = ("sod", "floe")
ICECHART_KEYS = REQUIRED_KEYS + ("polygon_sod", "polygon_floe", "polygon_sod_class", "polygon_floe_class")
DEFAULT_CHART_WEIGHTS = (2.0, 2.0, 1.0)   # SIC, SOD, FLOE: the AutoICE score's weights
# Cross-entropy beat squared error on synthetic mixed-polygon scenes (3 seeds: SOD weighted F1
# 0.924 vs 0.905, FLOE 0.450 vs 0.348; the pixel baseline 0.675 / 0.375).
DEFAULT_COMPOSITION_LOSS = "xent"


def check_chart_weights(weights):
    """Three non-negative floats (SIC, SOD, FLOE) with a positive sum."""
    weights = tuple(float(w) for w in weights)
    if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"chart_weights must be 3 non-negative numbers (SIC, SOD, FLOE) with a positive "
                         f"sum, got {weights}")
    return weights


class _IcechartModel(SicModelBase):
    """Three-head U-Net wrapper: the SIC model's steps, the chart losses and trackers."""

    required_keys = ICECHART_KEYS

    def __init__(self, unet, chart_weights=DEFAULT_CHART_WEIGHTS, **kwargs):
        super().__init__(unet, **kwargs)
        self.chart_weights = check_chart_weights(chart_weights)
        mean = keras.metrics.Mean
        self.term_trackers = [mean(name=f"{c}_loss") for c in ("sic",) + CHARTS]
        self.accuracy_trackers = [mean(name=f"{c}_accuracy") for c in CHARTS]
        self.composition_trackers = [PooledRegressionMetric("rmse", name=f"{c}_composition_rmse")
                                     for c in CHARTS]
        self.gap_tracker = mean(name="sic_sod_gap")

    @property
    def metrics(self):
        return (super().metrics + self.term_trackers + self.accuracy_trackers
                + self.composition_trackers + [self.gap_tracker])

    def chart_losses(self, out, polygon_ids, sic_table, compositions, classes):
        """({"sic", "sod", "floe"}: loss, {"sic": polygon_terms, "sod"/"floe": composition_terms})."""
        raise NotImplementedError

    def _forward(self, batch, training):
        out = self(batch["sar"], training=training)
        ids, count = batch["polygon_ids"], batch.get("polygon_count")
        compositions = {c: as_polygon_table(batch[f"polygon_{c}"], count) for c in CHARTS}
        classes = {c: as_polygon_table(batch[f"polygon_{c}_class"], count) for c in CHARTS}
        per_chart, terms = self.chart_losses(out, ids, polygon_table(batch), compositions, classes)
        weights = self.chart_weights
        loss = sum(w * per_chart[c] for w, c in zip(weights, ("sic",) + CHARTS)) / sum(weights)
        terms = dict(terms, chart_losses=per_chart, out=out, ids=ids, classes=classes)
        return out, terms, loss

    def _update_metrics(self, loss, terms):
        out, ids = terms["out"], terms["ids"]
        for tracker, chart in zip(self.term_trackers, ("sic",) + CHARTS):
            tracker.update_state(cross_replica_sum(tf.stop_gradient(terms["chart_losses"][chart])))
        for acc, rmse, chart in zip(self.accuracy_trackers, self.composition_trackers, CHARTS):
            label, valid = rasterize_polygon_classes(ids, terms["classes"][chart])
            correct = tf.cast(tf.argmax(out[chart], axis=-1, output_type=tf.int32) == label, tf.float32)
            acc.update_state(correct, sample_weight=tf.cast(valid, tf.float32))
            comp = terms[chart]
            target, pred_mean = comp["target"].flat_values, comp["pred_mean"].flat_values
            present = tf.broadcast_to(comp["present"].flat_values[:, None], tf.shape(target))
            rmse.update_state(target, pred_mean, sample_weight=present)
        usable = tf.cast(ids >= 0, tf.float32)
        gap = tf.abs(out["sic"][..., 0] - (1.0 - out["sod"][..., 0]))
        self.gap_tracker.update_state(tf.where(ids >= 0, gap, 0.0), sample_weight=usable)
        return super()._update_metrics(loss, terms["sic"])

    def get_config(self):
        config = super().get_config()
        config.update({"chart_weights": list(self.chart_weights)})
        return config


@keras.saving.register_keras_serializable(package="tfseaice")
class IcechartRegionalModel(_IcechartModel):
    """Polygon labels only: regional SIC loss + composition loss for SOD and FLOE.

    Args:
      unet: `tfseaice.models.unet.build_icechart_unet(...)`.
      reduction, weighting: as SicRegionalModel, for all three charts.
      composition_loss: "xent" (default) | "sse" | "pll_focal" (see losses.composition_loss).
      chart_weights: (SIC, SOD, FLOE) weights of the total loss.
      pll_focal_gamma: the focal exponent of "pll_focal" (ignored by the others).
      sod_class_weights: [6] weights of the SOD classes' terms (None = 1 each).
      sod_logit_offset: [6] added to log p of the SOD head before its loss (None = 0).
      sod_entropy_weight: weight of the SOD pixels' mean entropy, added to the SOD loss (0 = none).
      sod_pseudo_label_weight: weight of the SOD pixels' cross-entropy against their proportion-matched
        pseudo-labels (tfseaice.losses.pseudo_labels), added to the SOD loss (0 = none).
      sod_pseudo_label_temperature: the pseudo-labels' sharpening temperature T > 0.
    """

    def __init__(self, unet, reduction="polygon", weighting="polygon",
                 composition_loss=DEFAULT_COMPOSITION_LOSS, chart_weights=DEFAULT_CHART_WEIGHTS,
                 pll_focal_gamma=DEFAULT_PLL_FOCAL_GAMMA, sod_class_weights=None, sod_logit_offset=None,
                 sod_entropy_weight=0.0, sod_pseudo_label_weight=0.0,
                 sod_pseudo_label_temperature=DEFAULT_TEMPERATURE, **kwargs):
        super().__init__(unet, chart_weights=chart_weights, **kwargs)
        self.reduction, self.weighting = check_regional_options(reduction, weighting)
        self.composition_loss, self.pll_focal_gamma = check_composition_options(composition_loss, pll_focal_gamma)
        self.sod_class_weights = check_class_vector(sod_class_weights, NUM_SOD, "sod_class_weights", positive=True)
        self.sod_logit_offset = check_class_vector(sod_logit_offset, NUM_SOD, "sod_logit_offset")
        self.sod_entropy_weight = check_lever(sod_entropy_weight, "sod_entropy_weight")
        self.sod_pseudo_label_weight = check_lever(sod_pseudo_label_weight, "sod_pseudo_label_weight")
        self.sod_pseudo_label_temperature = check_temperature(sod_pseudo_label_temperature,
                                                              "sod_pseudo_label_temperature")

    def chart_losses(self, out, polygon_ids, sic_table, compositions, classes):
        options = dict(reduction=self.reduction, weighting=self.weighting, return_terms=True)
        per_chart, terms = {}, {}
        per_chart["sic"], terms["sic"] = regional_sic_loss(out["sic"], polygon_ids, sic_table, **options)
        for c in CHARTS:
            levers = (dict(class_weights=self.sod_class_weights, logit_offset=self.sod_logit_offset)
                      if c == "sod" else {})
            per_chart[c], terms[c] = composition_loss(out[c], polygon_ids, compositions[c], kind=self.composition_loss,
                                                      gamma=self.pll_focal_gamma, **levers, **options)
        if self.sod_entropy_weight:
            per_chart["sod"] += self.sod_entropy_weight * pixel_entropy(out["sod"], polygon_ids)
        if self.sod_pseudo_label_weight:
            scored = adjust_probs(out["sod"], self.sod_logit_offset)  # what the composition loss scores
            per_chart["sod"] += self.sod_pseudo_label_weight * pseudo_label_loss(
                scored, polygon_ids, compositions["sod"], temperature=self.sod_pseudo_label_temperature)
        return per_chart, terms

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "weighting": self.weighting,
                       "composition_loss": self.composition_loss, "pll_focal_gamma": self.pll_focal_gamma,
                       "sod_class_weights": self.sod_class_weights and list(self.sod_class_weights),
                       "sod_logit_offset": self.sod_logit_offset and list(self.sod_logit_offset),
                       "sod_entropy_weight": self.sod_entropy_weight,
                       "sod_pseudo_label_weight": self.sod_pseudo_label_weight,
                       "sod_pseudo_label_temperature": self.sod_pseudo_label_temperature})
        return config


@keras.saving.register_keras_serializable(package="tfseaice")
class IcechartPixelModel(_IcechartModel):
    """The AutoICE/MMSeaIce-style baseline: pixel SIC loss + cross-entropy on the dominant classes.

    `loss`: the SIC pixel loss ("mse", default, or "bce"), as SicPixelModel.
    """

    def __init__(self, unet, loss="mse", chart_weights=DEFAULT_CHART_WEIGHTS, **kwargs):
        super().__init__(unet, chart_weights=chart_weights, **kwargs)
        self.pixel_loss = check_pixel_loss(loss)

    def chart_losses(self, out, polygon_ids, sic_table, compositions, classes):
        per_chart = {"sic": pixel_sic_loss(out["sic"], polygon_ids, sic_table, loss=self.pixel_loss)}
        terms = {"sic": polygon_terms(out["sic"], polygon_ids, sic_table)}
        for c in CHARTS:
            per_chart[c] = pixel_class_loss(out[c], polygon_ids, classes[c])
            terms[c] = composition_terms(out[c], polygon_ids, compositions[c])  # for the trackers
        return per_chart, terms

    def get_config(self):
        config = super().get_config()
        config.update({"loss": self.pixel_loss})
        return config


class IcechartImagePanels(SicImagePanels):
    """The SIC panels plus, per chart, the polygons' dominant class | the predicted class."""

    def write_panels(self, pred, step):
        super().write_panels(pred, step)
        for chart, n in (("sod", pred["sod"].shape[-1]), ("floe", pred["floe"].shape[-1])):
            label, valid = rasterize_polygon_classes(self.batch["polygon_ids"],
                                                     self.batch[f"polygon_{chart}_class"])
            chart_classes = tf.where(valid, label, 255)
            predicted = tf.argmax(pred[chart], axis=-1)
            tf.summary.image(f"{chart}_panels/chart_dominant|predicted",
                             tensorboard_panels.class_panels(chart_classes, predicted, n), step=step, max_outputs=4)


def _nonnegative(name):
    """The parse of option `name`: a finite float >= 0, or ValueError naming it (losses.options.check_lever)."""
    return functools.partial(check_lever, what=name)


def sod_levers(opts, data_dir):
    """(sod_class_weights, sod_logit_offset, sod_prediction_shift) of the options, from the training charts'
    SOD prior; None for each lever that is off.

    The loss's offset is the logit adjustment's tau log prior minus the prediction shift, so the loss
    scores what it would without the shift (the network's output carries it). Without readable records
    (a model folder reloaded for inference, where the loss is never used) the loss levers are off with a
    warning and the shift is a zero placeholder that the weights file restores.
    """
    alpha, tau, shift_tau = opts.sod_class_weight_alpha, opts.sod_logit_adjust_tau, opts.sod_predict_tau
    if not (alpha or tau or shift_tau):
        return None, None, None
    try:
        prior = composition_prior(data_dir, "sod")
    except (InputError, OSError, tf.errors.OpError) as exc:
        logging.warning("SOD prior unreadable (%s): the SOD loss levers are not applied (inference does not use "
                        "them)", str(exc).splitlines()[0] if str(exc) else exc)
        return None, None, ((0.0,) * NUM_SOD if shift_tau else None)
    logging.info("SOD prior of the training charts: %s", ", ".join(f"{p:.4f}" for p in prior))
    shift = prior_prediction_shift(prior, shift_tau) if shift_tau else None
    offset = prior_logit_offset(prior, tau) if tau else (0.0,) * NUM_SOD
    if shift:
        offset = tuple(o - s for o, s in zip(offset, shift))
    return (prior_class_weights(prior, alpha) if alpha else None, offset if (tau or shift) else None, shift)


@dataclasses.dataclass(frozen=True)
class IcechartOptions(SicOptions):
    """The SIC tasks' options and the ice-type losses' (`python -m tfseaice.train` flags, task.json)."""

    composition_loss: str = option(
        DEFAULT_COMPOSITION_LOSS, "icechart_regional: SOD/FLOE polygon loss: cross-entropy (xent) or squared error "
        "(sse) between the polygon's mean predicted distribution and its egg-code composition, or pll_focal, each "
        "pixel's focal loss against its polygon's stages/forms weighted by their partial concentrations "
        "(docs/ice_type_losses.md).", choices=COMPOSITION_LOSSES)
    pll_focal_gamma: float = option(DEFAULT_PLL_FOCAL_GAMMA, "icechart_regional --composition_loss=pll_focal: the "
                                    "focal exponent gamma (>= 0; 0 = pixel-wise soft cross-entropy).",
                                    parse=_nonnegative("pll_focal_gamma"))
    sod_class_weight_alpha: float = option(
        0.0, "icechart_regional: weight each SOD class's term of the composition loss by prior^-alpha (prior: the "
        "training charts' pixel share of the stage; 0 = unweighted, 1 = inverse prior; docs/ice_type_losses.md).",
        parse=_nonnegative("sod_class_weight_alpha"))
    sod_logit_adjust_tau: float = option(
        0.0, "icechart_regional: logit adjustment of the SOD loss: it scores softmax(log p + tau log prior), the "
        "model predicts with p (Menon et al. 2021; 0 = off, 1 = the paper's).",
        parse=_nonnegative("sod_logit_adjust_tau"))
    sod_entropy_weight: float = option(
        0.0, "icechart_regional: add this times the SOD pixels' mean softmax entropy to the SOD loss, so that "
        "pixels commit to a stage instead of each predicting its polygon's shares (0 = off).",
        parse=_nonnegative("sod_entropy_weight"))
    sod_pseudo_label_weight: float = option(
        0.0, "icechart_regional: add this times the SOD pixels' cross-entropy against proportion-matched "
        "pseudo-labels (each polygon's pixels split between its stages in the chart's proportions, by the "
        "network's own ranking; docs/ice_type_losses.md) to the SOD loss (0 = off).",
        parse=_nonnegative("sod_pseudo_label_weight"))
    sod_pseudo_label_temperature: float = option(
        DEFAULT_TEMPERATURE, "icechart_regional --sod_pseudo_label_weight: the temperature T > 0, in units of "
        "each polygon's spread of log-probabilities, that sharpens the prediction before the split (smaller = "
        "harder labels).",
        parse=functools.partial(check_temperature, what="sod_pseudo_label_temperature"))
    sod_predict_tau: float = option(
        0.0, "icechart_regional: prediction-time prior correction of the SOD head: it predicts softmax(log p - tau "
        "log prior) over the stages holding >= 1 percent of the training charts' pixels (post-hoc logit adjustment, "
        "Menon et al. 2021; the loss still scores p; 0 = off).", parse=_nonnegative("sod_predict_tau"))
    chart_weights: tuple = option(DEFAULT_CHART_WEIGHTS, "Ice-chart tasks: weights of the SIC, SOD and FLOE losses "
                                  "(default 2:2:1 as the AutoICE score).", parse=check_chart_weights)


class IcechartTask(SicTask):
    """Task glue for `icechart_regional` and `icechart_pixel` (the SIC tasks' data)."""

    monitor = ("val_loss", "min")
    serving_kind = "icechart"
    options = IcechartOptions
    panels = IcechartImagePanels
    batch_keys = pipeline.ICECHART_TRAIN_KEYS

    def build_model(self, cfg, info):
        opts = self.options.from_extra(cfg.extra)
        norm = info.get("normalization", {})
        weights, offset, shift = sod_levers(opts, cfg.data_dir) if self.name == "icechart_regional" else (None,) * 3
        unet = build_icechart_unet(len(info["channels"]), filters=opts.filters,
                                   norm_mean=norm.get("mean"), norm_std=norm.get("std"), sod_offset=shift)
        if self.name == "icechart_regional":
            model = IcechartRegionalModel(unet, reduction=opts.loss_reduction, weighting=opts.loss_weighting,
                                          composition_loss=opts.composition_loss, chart_weights=opts.chart_weights,
                                          pll_focal_gamma=opts.pll_focal_gamma, sod_class_weights=weights,
                                          sod_logit_offset=offset, sod_entropy_weight=opts.sod_entropy_weight,
                                          sod_pseudo_label_weight=opts.sod_pseudo_label_weight,
                                          sod_pseudo_label_temperature=opts.sod_pseudo_label_temperature)
        else:
            model = IcechartPixelModel(unet, loss=opts.pixel_loss, chart_weights=opts.chart_weights)
        model.compile(optimizer=adam(cfg, info, opts.ema_momentum))
        return model


TASKS = (IcechartTask("icechart_regional"), IcechartTask("icechart_pixel"))
