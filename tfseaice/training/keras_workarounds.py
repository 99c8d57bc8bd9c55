"""Workarounds for Keras 3 bugs under MultiWorkerMirroredStrategy, with their upstream issues.

Each patch checks that the Keras internals it replaces still exist and is a
no-op otherwise; remove it once the issue is fixed in the Keras we pin.
"""

import tensorflow as tf


def multi_worker_workarounds(model, strategy):
    """Work around two Keras 3 bugs under MultiWorkerMirroredStrategy.

    1. tensorflow/tensorflow#72388: fit/evaluate reduce each step's logs with
       `strategy.reduce("MEAN", v, axis=0)`, which fails for the scalar logs
       every model returns ("Invalid reduction dimension 0 for input with 0
       dimensions"); Keras 3.15 hard-codes that reduction. Scalars are reduced
       with axis=None instead (the same mean over all replicas).
    2. keras-team/keras#20329: see `build_from_local_batch`.
    """
    patch_keras_scalar_reduction()
    build_from_local_batch(model, strategy)


def patch_keras_scalar_reduction():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = getattr(tf_trainer, "reduce_per_replica", None)
    multi_worker = getattr(tf_trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or multi_worker is None or getattr(original, "_tfseaice_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            def scalar_mean(v):
                if isinstance(v, tf.distribute.DistributedValues):
                    rank = strategy.experimental_local_results(v)[0].shape.rank
                else:
                    rank = getattr(getattr(v, "shape", None), "rank", None)
                return strategy.reduce("MEAN", v, axis=None) if rank == 0 else original(v, strategy, reduction)

            return tf.nest.map_structure(scalar_mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._tfseaice_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def build_from_local_batch(model, strategy):
    """Work around keras-team/keras#20329 under MultiWorkerMirroredStrategy.

    Keras 3 fit/evaluate first reduce one batch over the replicas
    (`strategy.reduce("MEAN", batch)`) to build the model symbolically; with
    MultiWorkerMirroredStrategy that fails for dict batches (ValueError:
    "Attempt to convert a value ({...PerReplica...}) to a Tensor"). Our models
    are built at construction, so no batch is needed; if one is, the local
    replica's batch gives the shapes.
    """
    def needs_data():
        compiled = [getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)]
        return (not all(layer.built for layer in model._flatten_layers())
                or any(c is not None and not c.built for c in compiled))

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if data_batch is None and iterator is not None and needs_data():
            iterator.reset()
            for _, _, it in iterator:
                batch = next(it)
                break
            data_batch = tf.nest.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, batch)
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build

