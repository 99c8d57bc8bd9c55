"""Metrics, one module per job; their public names are importable from `tfseaice.metrics` too.

  regression    RMSE, R^2, F1 of maps against truth, pooled over scenes (numpy; evaluation)
  segmentation  confusion counts, pixel accuracy, IoU (numpy; evaluation)
  autoice       the AutoICE challenge's scores from pooled class counts (numpy; evaluation)
  images        non-binary Dice and SSIM of generated SAR (TensorFlow; training and evaluation)
  trackers      Keras trackers of training (pooled, exact across batches and replicas)
"""

from tfseaice.metrics.autoice import (AUTOICE_MASK, AUTOICE_NUM_CLASSES, AUTOICE_WEIGHTS, ClassConfusion,
                                      autoice_scores)
from tfseaice.metrics.images import (SSIM_FILTER_SIGMA, SSIM_FILTER_SIZE, SSIM_K1, SSIM_K2, batch_dice_non_binary,
                                     batch_ssim, dice_non_binary, ssim)
from tfseaice.metrics.regression import RegressionAccumulator, f1_score, r2_score, rmse
from tfseaice.metrics.segmentation import confusion_matrix, scores_from_confusion, segmentation_scores
from tfseaice.metrics.trackers import PooledRegressionMetric

__all__ = ["AUTOICE_MASK", "AUTOICE_NUM_CLASSES", "AUTOICE_WEIGHTS", "ClassConfusion", "PooledRegressionMetric",
           "RegressionAccumulator", "SSIM_FILTER_SIGMA", "SSIM_FILTER_SIZE", "SSIM_K1", "SSIM_K2", "autoice_scores",
           "batch_dice_non_binary", "batch_ssim", "confusion_matrix", "dice_non_binary", "f1_score", "r2_score",
           "rmse", "scores_from_confusion", "segmentation_scores", "ssim"]
