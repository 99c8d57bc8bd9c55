"""--zone_classes means one thing in `train` and `evaluate`: the number of zone classes, 2 or 3.

3 = rock, glacier, ocean; 2 = the pix2pix paper's ocean vs glacier + rock. No data is not a
zone. `train` used to say 4 for 3 (it counted no data): 4 still works there and in a model's
task.json, so users' scripts and old model folders keep working, and is stored as 3.
"""

import pytest
from absl import flags

from tfseaice import train
from tfseaice.data import glacier_mix
from tfseaice.errors import InputError
from tfseaice.evaluation import caffe_metrics
from tfseaice.tasks.shared_options import GlacierDataOptions

FLAGS = flags.FLAGS


@pytest.mark.parametrize("given, zones", [(2, 2), (3, 3), (4, 3), ("2", 2), ("3", 3), ("4", 3)])
def test_one_meaning_old_spelling_kept(given, zones):
    assert caffe_metrics.check_zone_classes(given) == zones                     # evaluate, task.json
    assert GlacierDataOptions.from_extra({"zone_classes": given}).zone_classes == zones  # train's data options


def test_default_is_three_zones_and_the_pipeline_gets_its_own_count():
    assert GlacierDataOptions.from_extra({}).zone_classes == 3
    assert glacier_mix.pipeline_zone_classes(3) == 4   # the tf.data masks' classes, no data included
    assert glacier_mix.pipeline_zone_classes(2) == 2


@pytest.mark.parametrize("bad", [1, 5, "x", None])
def test_other_values_are_refused_naming_the_flag(bad):
    with pytest.raises(InputError, match="2 or 3") as err:
        GlacierDataOptions.from_extra({"zone_classes": bad if bad is not None else "none"})
    assert err.value.path == "--zone_classes"


@pytest.fixture()
def train_flags():
    if "zone_classes" not in FLAGS:
        train.define_flags()
    yield
    FLAGS.unparse_flags()


@pytest.mark.parametrize("value, stored", [("2", 2), ("3", 3), ("4", 3)])
def test_train_flag_stores_the_zone_count(train_flags, value, stored):
    FLAGS(["train", "--task=glacier_zones", "--data_dir=d", "--model_dir=m", f"--zone_classes={value}"])
    assert train.config_from_flags().extra["zone_classes"] == stored


def test_train_default_is_three(train_flags):
    FLAGS(["train", "--task=pix2pix", "--data_dir=d", "--model_dir=m"])
    assert train.config_from_flags().extra["zone_classes"] == 3
