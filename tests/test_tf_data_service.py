"""--tf_data_service: a local tf.data dispatcher and worker feed a training run."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf

from tfseaice.training.config import TrainConfig
from tfseaice.train_lib import run_training
from tfseaice.training.model_dir import read_task_file
from tfseaice.data import pipeline
from tfseaice.errors import InputError

from sic_fixtures import convert_tiny


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """In-process dispatcher + one worker on 127.0.0.1, and tiny converted data."""
    root = tmp_path_factory.mktemp("dss")
    convert_tiny(root)
    dispatcher = tf.data.experimental.service.DispatchServer(
        tf.data.experimental.service.DispatcherConfig(port=0))
    port = int(dispatcher.target.rsplit(":", 1)[1])
    worker = tf.data.experimental.service.WorkerServer(tf.data.experimental.service.WorkerConfig(
        dispatcher_address=f"127.0.0.1:{port}", worker_address="127.0.0.1:%port%", port=0))
    yield f"grpc://127.0.0.1:{port}", worker, str(root / "records"), root
    worker.stop()
    dispatcher.stop()


def test_data_service_feeds_a_training_run(service):
    address, worker, data_dir, root = service
    assert worker._num_tasks() == 0  # noqa: SLF001 - TF's own tests count tasks this way
    cfg = TrainConfig(task="sic_regional", data_dir=data_dir, model_dir=str(root / "model"), epochs=2,
                               steps_per_epoch=3, batch_size=4, seed=1, image_every=0,
                               tf_data_service=address, extra={"filters": [4, 8, 8, 8]})
    history = run_training(cfg)
    assert worker._num_tasks() >= 1, "the tf.data service worker never ran the training pipeline"  # noqa: SLF001
    with open(os.path.join(cfg.model_dir, "history.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(np.isfinite(v) for v in history.history["loss"] + history.history["val_polygon_rmse"])
    assert read_task_file(cfg.model_dir)["config"]["tf_data_service"] == address


@pytest.mark.parametrize("mode", ["distributed_epoch", "parallel_epochs"])
def test_both_processing_modes_give_the_pipelines_batches(service, mode):
    address, _, data_dir, _ = service

    def key(b):
        return [(s.decode(), tuple(o)) for s, o in zip(b["scene_id"].numpy(), b["patch_offset"].numpy())]

    local = pipeline.sic_dataset(data_dir, "val", 4, training=False, keys=("scene_id", "patch_offset"))
    served = pipeline.through_data_service(local, address, mode)
    want = sorted(k for b in local for k in key(b))
    got = sorted(k for b in served for k in key(b))
    assert got == want  # one pass, every example once (one service worker)


def test_bad_service_address_is_an_input_error(service):
    _, _, data_dir, root = service
    cfg = TrainConfig(task="sic_regional", data_dir=data_dir, model_dir=str(root / "bad"),
                               tf_data_service="http://dispatcher")
    with pytest.raises(InputError, match="must be grpc://HOST:PORT") as e:
        run_training(cfg)
    assert e.value.path == "--tf_data_service"
    assert pipeline.check_data_service_address("10.0.0.2:5050") == "grpc://10.0.0.2:5050"
