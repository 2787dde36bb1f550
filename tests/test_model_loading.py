"""common/model_loading.py: test and predict take the config from the weights' sidecar when --config is
not given, a disagreeing --config stays an error naming both, and a concat model on another number of
cameras is refused with that reason first (read from the file: nothing is built, Keras says nothing)."""
import pytest

import model
import options
from common import model_loading
from common import weights_files


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for name in ("tiny", "tiny-mean", "tiny-skip"):
        paths[name] = str(folder / f"{name}.weights.h5")
        weights_files.save_weights(model.build_model(name, num_views=4), paths[name], {"config": name})
    return paths


def test_the_trained_number_of_cameras_is_read_from_a_concat_file(weights):
    assert model_loading.trained_views(weights["tiny"], model.get_config("tiny")) == 4
    assert model_loading.trained_views(weights["tiny-mean"], model.get_config("tiny-mean")) is None
    assert model_loading.trained_views(weights["tiny-skip"], model.get_config("tiny-skip")) == 4


def test_without_config_the_sidecar_names_it(weights):
    args = options.namespace(mode="test", weights=weights["tiny-mean"], verbose=0)
    assert args.config is None
    network, config, info = model_loading.load_model(args, weights["tiny-mean"], 3, "predict")
    assert config.name == "tiny-mean" and config.fusion == "mean" and info["config"] == "tiny-mean"


def test_the_skip_fusion_is_concat_whose_decoders_also_get_each_view_code(weights):
    """--fusion skip (the variant that won on the hard synthetic set) loads from its sidecar and from
    the flag; it is a concat model, so it runs on the cameras it was trained with."""
    by_flag = options.namespace(mode="train", config="tiny", fusion="skip", verbose=0)
    assert model_loading.config_for(by_flag, None) == model.get_config("tiny-skip")
    args = options.namespace(mode="test", weights=weights["tiny-skip"], verbose=0)
    network, config, info = model_loading.load_model(args, weights["tiny-skip"], 4, "predict")
    assert config.name == "tiny-skip" and config.fusion == "concat" and config.view_skip
    assert network.get_layer("view_skip") is not None and info["config"] == "tiny-skip"
    with pytest.raises(options.UsageError, match="trained with, and this rig has 3"):
        model_loading.load_model(args, weights["tiny-skip"], 3, "predict")


def test_a_config_that_disagrees_with_the_sidecar_is_an_error_naming_both(weights):
    args = options.namespace(mode="test", config="tiny", weights=weights["tiny-mean"], verbose=0)
    with pytest.raises(ValueError, match="config 'tiny-mean'.*config 'tiny'"):
        model_loading.load_model(args, weights["tiny-mean"], 4, "predict")


def test_a_concat_model_on_three_cameras_is_refused_with_the_reason_first(weights, capfd):
    args = options.namespace(mode="test", weights=weights["tiny"], verbose=0)
    with pytest.raises(options.UsageError, match="trained with, and this rig has 3") as error:
        model_loading.load_model(args, weights["tiny"], 3, "predict")
    assert "--fusion mean" in str(error.value)
    assert "could not be loaded" not in "".join(capfd.readouterr())
