"""The regional (per-polygon) SIC loss of the paper (Eq. 1) and the polygon plumbing every polygon loss shares.

Conventions: pred [B,H,W,1] or [B,H,W] in [0,1]; polygon_ids [B,H,W] int,
patch-local 0..K_b-1, -1 (or any id outside 0..K_b-1) = pixel not usable;
the per-polygon target table is a tf.RaggedTensor [B,(K_b)] float32: row b is
image b's charted SIC per polygon (NaN = unknown, ignored). A padded [B,K]
tensor is accepted too and read as K polygons per image (padding rows have no
pixel, so they never count). Segments are (image, polygon) pairs: image b's
polygon k is segment row_splits[b] + k, unusable pixels get segment -1 (the
segment ops drop negative ids), so one segment sum over the whole batch
(tfseaice.losses.segments) replaces the paper's per-image, per-polygon loop
(Algorithm 1).
A table of class compositions is a RaggedTensor [B,(K_b),C] (padded [B,K,C]):
the same segments, the per-class means of a [B,H,W,C] prediction.
"""

import tensorflow as tf

from tfseaice.losses.options import check_regional_options
from tfseaice.losses.segments import pixel_segments, segment_sums


def cross_replica_sum(x):
    """Sum `x` over the replicas of the current tf.distribute replica context.

    Identity with one replica or outside a replica context (cross-replica
    context, plain eager code). Not meant to carry gradients of the loss: use
    it on counts/denominators.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)


def as_polygon_table(polygon_sic, num_polygons=None):
    """The per-polygon target table as a float32 RaggedTensor [B,(K_b)] (or [B,(K_b),C]).

    A RaggedTensor is returned as is (cast to float32). A padded [B,K] (or
    [B,K,C] class-composition) tensor becomes rows of `num_polygons` [B]
    entries (the real rows), or of all K entries when `num_polygons` is None
    (the loss is the same: padding rows have no pixel).
    """
    if isinstance(polygon_sic, tf.RaggedTensor):
        return tf.cast(polygon_sic, tf.float32)
    dense = tf.cast(tf.convert_to_tensor(polygon_sic), tf.float32)
    if dense.shape.rank is not None and dense.shape.rank not in (2, 3):
        raise ValueError("the per-polygon table must be a RaggedTensor [B,(K_b)] or padded [B,K] "
                         f"(or [B,K,C]), got shape {dense.shape}")
    if num_polygons is None:
        return tf.RaggedTensor.from_tensor(dense)
    return tf.RaggedTensor.from_tensor(dense, lengths=tf.cast(num_polygons, tf.int64))


def polygon_segments(polygon_ids, table):
    """(segment [B*H*W] int32, usable [B*H*W] bool) of every pixel for `table`'s rows.

    Pixel (b, y, x) with id k in 0..K_b-1 is segment row_splits[b] + k; any
    other pixel is -1 and not usable.
    """
    segments, usable = pixel_segments(polygon_ids, table.row_splits)
    return tf.reshape(segments, [-1]), tf.reshape(usable, [-1])


def _num_segments(table):
    """Number of (image, polygon) pairs, from the values' shape.

    Not row_splits[-1]: XLA (jit_compile) bounds a shape-derived size, but
    rejects sizes read from tensor values ("must be a compile-time constant").
    """
    n = table.flat_values.shape[0]
    return n if n is not None else tf.shape(table.flat_values, out_type=tf.int32)[0]


def _row_ids(table):
    """Image index of every (image, polygon) pair, [N] int32.

    searchsorted over the row splits rather than RaggedTensor.value_rowids(),
    whose tf.range of a value-dependent size XLA cannot compile.
    """
    splits = tf.cast(table.row_splits, tf.int32)
    return tf.searchsorted(splits[1:], tf.range(_num_segments(table)), side="right")


def polygon_means(pred, polygon_ids, polygon_sic):
    """Mean prediction over the usable pixels of every (image, polygon) pair.

    Args:
      pred: [B,H,W,1] or [B,H,W] float; [B,H,W,C] class probabilities when
        the table holds class compositions ([B,(K_b),C]).
      polygon_ids: [B,H,W] int, patch-local ids; ids outside 0..K_b-1 (e.g.
        -1) are excluded.
      polygon_sic: the target table (RaggedTensor [B,(K_b)] or [B,(K_b),C],
        or padded [B,K] / [B,K,C]); only its row lengths and inner shape are used.

    Returns:
      (pred_mean, count) RaggedTensors with the table's row splits: the mean
      (segment sum / count; 0 where count is 0), [B,(K_b)] float32
      or, for a composition table, [B,(K_b),C]; and the number of usable
      pixels of each pair, [B,(K_b)].
    """
    table = as_polygon_table(polygon_sic)
    pred = tf.cast(pred, tf.float32)
    composition = table.flat_values.shape.rank == 2  # class compositions: per-class means
    channels = (pred.shape[-1] or tf.shape(pred)[-1]) if composition else 1
    # one pass over the pixels for the sums and the counts (tfseaice.losses.segments)
    sums, counts = segment_sums(tf.reshape(pred, [-1, channels]), polygon_ids, table.row_splits,
                                _num_segments(table))
    means = tf.math.divide_no_nan(sums, counts[:, None])
    return table.with_flat_values(means if composition else means[:, 0]), table.with_flat_values(counts)


def polygon_terms(pred, polygon_ids, polygon_sic):
    """Per-(image, polygon) pieces of the regional loss and the polygon metrics.

    `polygon_sic` is the target table (see as_polygon_table). Returns a dict of
    RaggedTensors [B,(K_b)] float32 with the table's row splits:
      pred_mean  predicted polygon SIC (mean over usable pixels; 0 if absent)
      target     charted polygon SIC (0 where absent)
      count      usable pixels of the polygon in this patch
      present    1.0 where count > 0 and the charted SIC is finite, else 0.0
      sq_err     (pred_mean - target)**2 where present, else 0
      error      the same tensor: the per-pair error reduce_regional_loss reduces
    """
    table = as_polygon_table(polygon_sic)
    pred_mean, count = polygon_means(pred, polygon_ids, table)
    sic, mean, n = table.flat_values, pred_mean.flat_values, count.flat_values
    present = (n > 0) & tf.math.is_finite(sic)
    target = tf.where(present, sic, tf.zeros_like(sic))
    presentf = tf.cast(present, tf.float32)
    sq_err = tf.square(mean - target) * presentf
    sq_err = table.with_flat_values(sq_err)
    return {"pred_mean": pred_mean, "target": table.with_flat_values(target), "count": count,
            "present": table.with_flat_values(presentf), "sq_err": sq_err, "error": sq_err}


def reduce_regional_loss(terms, *, reduction="polygon", weighting="polygon",
                         global_polygon_count=None):
    """Reduce per-pair terms (`polygon_terms`, `composition_terms`) to the scalar loss.

    Reads `present`, `count` and `error` (see regional_sic_loss for the options).
    """
    reduction, weighting = check_regional_options(reduction, weighting)
    present = terms["present"]
    weight = present.flat_values * (terms["count"].flat_values if weighting == "area" else 1.0)
    weighted = weight * terms["error"].flat_values
    if reduction == "polygon":
        numerator = tf.reduce_sum(weighted)
        denominator = tf.reduce_sum(weight)
    else:
        rows = _row_ids(present)
        nrows = tf.shape(present.row_splits, out_type=tf.int32)[0] - 1
        patch_weight = tf.math.unsorted_segment_sum(weight, rows, nrows)
        patch_loss = tf.math.divide_no_nan(tf.math.unsorted_segment_sum(weighted, rows, nrows),
                                           patch_weight)
        numerator = tf.reduce_sum(patch_loss)
        denominator = tf.reduce_sum(tf.cast(patch_weight > 0, tf.float32))
    if global_polygon_count is None:
        denominator = cross_replica_sum(denominator)
    else:
        denominator = tf.cast(global_polygon_count, tf.float32)
    return tf.math.divide_no_nan(numerator, denominator)


def regional_sic_loss(pred, polygon_ids, polygon_sic, *, reduction="polygon",
                      weighting="polygon", global_polygon_count=None, return_terms=False):
    """Regional (weak-label) SIC loss, paper Eq. 1, vectorised over the batch.

    Each (image, polygon) pair's prediction is the mean of `pred` over the
    polygon's usable pixels in that image; a pair is present if it has at
    least one usable pixel and a finite charted SIC.

    Args:
      pred: [B,H,W,1] or [B,H,W] predicted pixel SIC in [0, 1].
      polygon_ids: [B,H,W] int32 patch-local ids, -1 = excluded.
      polygon_sic: the per-polygon target table, tf.RaggedTensor [B,(K_b)]
        float32 (or padded [B,K]: K polygons per image, see as_polygon_table).
      reduction: "polygon" (default): mean squared error over all present
        (image, polygon) pairs of the batch, every polygon weighted equally.
        "patch": mean over the polygons of each patch, then mean over the
        patches that have any present polygon.
      weighting: "polygon" (default, or None): equal weights; "area": each
        polygon weighted by its usable pixel count in the patch.
      global_polygon_count: the denominator over the whole global batch
        (number of present polygons; total area for weighting="area"; number
        of patches with polygons for reduction="patch"). None: computed here
        and, inside a tf.distribute replica context with several replicas,
        all-reduced (SUM) across replicas. Each replica then returns its own
        sum divided by the global denominator, so the per-replica losses (and
        gradients) sum to the single-device ones, which is what Keras' summing
        of gradients over replicas expects.
      return_terms: also return the `polygon_terms` dict (the polygon metrics
        use it; saves computing the segment means twice).

    Returns:
      scalar float32 (or (loss, terms)); 0 (with zero, finite gradients) if no
      polygon is present.
    """
    terms = polygon_terms(pred, polygon_ids, polygon_sic)
    loss = reduce_regional_loss(terms, reduction=reduction, weighting=weighting,
                                global_polygon_count=global_polygon_count)
    return (loss, terms) if return_terms else loss


def rasterize_polygon_sic(polygon_ids, polygon_sic):
    """Per-pixel chart SIC from patch-local ids: (target [B,H,W], usable [B,H,W] bool).

    `polygon_sic` is the target table (RaggedTensor [B,(K_b)] or padded
    [B,K]). A pixel is usable if its id is in 0..K_b-1 and that polygon's SIC
    is finite; target is 0 elsewhere.
    """
    ids = tf.convert_to_tensor(polygon_ids)
    table = as_polygon_table(polygon_sic)
    segments, usable = polygon_segments(ids, table)
    values = table.flat_values
    # one extra entry so that excluded pixels (and an empty table) gather a real one
    padded = tf.concat([values, tf.zeros([1], values.dtype)], axis=0)
    target = tf.gather(padded, tf.where(usable, segments, tf.shape(values, out_type=tf.int32)[0]))
    usable = usable & tf.math.is_finite(target)
    target = tf.where(usable, target, tf.zeros_like(target))
    shape = tf.shape(ids)
    return tf.reshape(target, shape), tf.reshape(usable, shape)
