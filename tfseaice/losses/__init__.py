"""The losses, one module per family; their public names are importable from `tfseaice.losses` too.

  regional     the paper's regional (per-polygon) SIC loss and the polygon plumbing (segments, means)
  composition  the SOD/FLOE composition losses on the same polygons (sse, xent, pll_focal)
  pixel        pixel-wise losses on the rasterised chart (the baselines)
  gan          pix2pix's adversarial and L1 losses
  options      the options they accept and their validators
"""

from tfseaice.losses.composition import composition_loss, composition_terms
from tfseaice.losses.gan import gan_discriminator_loss, gan_generator_loss, l1_loss
from tfseaice.losses.options import (COMPOSITION_LOSSES, DEFAULT_PLL_FOCAL_GAMMA, PIXEL_LOSSES, REGIONAL_REDUCTIONS,
                                     REGIONAL_WEIGHTINGS, check_composition_options, check_pixel_loss,
                                     check_regional_options)
from tfseaice.losses.pixel import pixel_class_loss, pixel_sic_loss, rasterize_polygon_classes
from tfseaice.losses.regional import (as_polygon_table, cross_replica_sum, polygon_means, polygon_segments,
                                      polygon_terms, rasterize_polygon_sic, reduce_regional_loss, regional_sic_loss)

__all__ = ["COMPOSITION_LOSSES", "DEFAULT_PLL_FOCAL_GAMMA", "PIXEL_LOSSES", "REGIONAL_REDUCTIONS",
           "REGIONAL_WEIGHTINGS", "as_polygon_table", "check_composition_options", "check_pixel_loss",
           "check_regional_options", "composition_loss", "composition_terms", "cross_replica_sum",
           "gan_discriminator_loss", "gan_generator_loss", "l1_loss", "pixel_class_loss", "pixel_sic_loss",
           "polygon_means", "polygon_segments", "polygon_terms", "rasterize_polygon_classes",
           "rasterize_polygon_sic", "reduce_regional_loss", "regional_sic_loss"]
