"""options.py: every option defined once, its lists taken from their owners; experiment files; the demo's
recipe; --help without noise; early checks of the files named; quiet, plain output. Fast: no training."""
import io
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import model_config
import options
import train_and_test
from common import devices
from common import progress
from synthetic import demo

ROOT = pathlib.Path(options.__file__).resolve().parent
# The demo's recipe as train_and_test.DEMO_SETTINGS held it when the demo's tables were measured: the
# demo must still run exactly this (same seeds, same numbers).
DEMO_RECIPE = dict(config="tiny-skip", fusion=None, loss="2d+3d", loss_2d="l1", batch_size=8, epochs=8,
                   steps_per_epoch=125, lr=2e-3, lr_warmup_steps=100, warmup_3d_steps=None, ramp_3d_steps=150,
                   train_stride=1, val_subjects=None, val_stride=5, val_steps=None, test_stride=5,
                   strategy="default", cpu_replicas=0, no_imagenet=True, backbone_weights=None, weights=None,
                   weights_sha256=None, box_mm=2000.0, augment_rig=False)


def test_option_lists_come_from_their_owners():
    """Each list is typed once: options reads the light owners' lists; the owners that load Keras,
    TensorFlow or matplotlib read theirs from options."""
    import evaluation
    from common import distribution
    from rig import calibration
    from train import losses
    assert options.OPTIONS["config"].choices is model_config.CONFIG_NAMES
    assert options.OPTIONS["fusion"].choices is model_config.FUSION_CHOICES
    assert options.OPTIONS["precision"].choices is devices.PRECISIONS
    assert options.OPTIONS["jit_compile"].choices is devices.JIT_CHOICES
    assert options.OPTIONS["calibration_units"].choices == tuple(calibration.UNIT_TO_MM)
    assert losses.Loss2D.KINDS is options.OPTIONS["loss_2d"].choices
    assert losses.Loss3D.KINDS is options.OPTIONS["loss_3d"].choices
    assert distribution.STRATEGIES is options.OPTIONS["strategy"].choices
    assert evaluation.ROOTS is options.OPTIONS["root"].choices


@pytest.mark.parametrize("dest, make, shape", [
    ("loss_2d", lambda losses, kind: losses.Loss2D(32, kind=kind), (2, 4, 17, 2)),
    ("loss_3d", lambda losses, kind: losses.Loss3D(kind=kind), (2, 17, 3)),
])
def test_every_loss_choice_is_a_loss_of_its_own(dest, make, shape):
    """Every --loss-2d / --loss-3d choice builds, gives a finite value, and no two give the same one
    (a choice the loss does not implement would fall back on another's formula)."""
    from train import losses
    rng = np.random.default_rng(0)
    y_true, y_pred = (rng.normal(scale=100.0, size=shape).astype("float32") for _ in range(2))
    values = {kind: float(make(losses, kind)(y_true, y_pred)) for kind in options.OPTIONS[dest].choices}
    assert all(np.isfinite(value) and value > 0 for value in values.values()), values
    assert len(set(values.values())) == len(values), values
    with pytest.raises(ValueError, match=re.escape(str(options.OPTIONS[dest].choices))):
        make(losses, "bogus")


def test_every_strategy_choice_is_made_by_its_owner(monkeypatch):
    import tensorflow as tf
    from common import distribution
    for name in [name for name in os.environ if name.startswith("SLURM_")] + ["TF_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    for name in options.OPTIONS["strategy"].choices:
        if name == "multiworker":  # no cluster on this machine: its own branch says what it needs
            with pytest.raises(ValueError, match="TF_CONFIG"):
                distribution.make_strategy(name)
        else:
            assert isinstance(distribution.make_strategy(name), tf.distribute.Strategy), name
    # An unknown name is refused with the list: tests/test_distribution.py::test_bad_strategy_inputs.


def test_every_root_choice_is_accepted_and_described():
    import evaluation
    summary = evaluation.Summary(per_action={}, frames={}, over_actions=dict.fromkeys(dict(evaluation.METRICS), 1.0),
                                 over_frames=dict.fromkeys(dict(evaluation.METRICS), 1.0),
                                 visibility={"hidden_fraction": float("nan")})
    titles = set()
    for root in options.OPTIONS["root"].choices:
        with pytest.raises(ValueError, match="The test set is empty"):  # past the check of the root
            evaluation.predict(None, [], {}, stride=1, image_size=32, box_mm=2000.0, root=root)
        titles.add(evaluation.format_table(summary, root).splitlines()[0])
    assert len(titles) == len(options.OPTIONS["root"].choices)  # each says where its crops' root came from
    with pytest.raises(ValueError, match=re.escape(str(options.OPTIONS["root"].choices))):
        evaluation.predict(None, [], {}, stride=1, image_size=32, box_mm=2000.0, root="bogus")


def test_help_has_no_none_defaults_and_groups_name_their_modes(capsys):
    with pytest.raises(SystemExit):
        train_and_test.main(["--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: False)" not in text
    for flag in (option.flag for option in options.OPTIONS.values()):
        assert flag in text, flag
    assert "training (--mode train, demo):" in text and "predict (your own rig) (--mode predict):" in text
    assert "(default: paper)" in text and "(default: 0.45 of all steps" in text


def test_importing_options_loads_no_deep_learning_framework():
    code = "import sys, options; print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_demo_runs_its_recorded_recipe_and_flags_override_it(tmp_path, capsys):
    args = demo.demo_args(options.parse(["--demo-dir", str(tmp_path)]))
    assert {name: getattr(args, name) for name in DEMO_RECIPE} == DEMO_RECIPE
    assert capsys.readouterr().err == ""  # nothing changed, nothing to say
    changed = demo.demo_args(options.parse(["--demo-dir", str(tmp_path), "--epochs", "1", "--config", "paper"]))
    assert changed.epochs == 1 and changed.config == "paper" and changed.batch_size == 8
    assert "--config, --epochs from the command line" in capsys.readouterr().err


def test_the_demo_refuses_the_data_flags_it_sets_itself(tmp_path):
    with pytest.raises(options.UsageError, match="does not take --data-dir, --train-subjects"):
        demo.demo_args(options.parse(["--demo-dir", str(tmp_path), "--data-dir", "x", "--train-subjects", "S1"]))


def test_the_paper_file_is_the_defaults():
    paper = options.read_experiment(options.CONFIGS_DIR / "paper.toml")
    defaults = options.defaults()
    defaults["config"] = options.OPTIONS["config"].shown
    assert paper and {name: defaults[name] for name in paper} == paper


def test_an_experiment_file_sets_options_and_flags_win(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('config = "tiny-mean"\nepochs = 3\nlr = 1\ntrain_subjects = ["S1", "S5"]\naugment_rig = true\n')
    args = options.parse(["--mode", "train", "--experiment", str(path), "--epochs", "7"])
    assert (args.config, args.epochs, args.lr, args.train_subjects, args.augment_rig) == (
        "tiny-mean", 7, 1.0, ["S1", "S5"], True)
    assert args.batch_size == options.OPTIONS["batch_size"].default


@pytest.mark.parametrize("line, message", [
    ("epoch = 3", "'epoch' is not a setting"),
    ("epochs = 2.5", "write a whole number"),
    ('config = "huge"', "choose from paper"),
    ('train_subjects = "S1"', "write a list"),
    ("resume = 1", "write true or false"),
    ('mode = "train"', "given on the command line"),
])
def test_a_bad_experiment_file_is_an_error_naming_the_setting(tmp_path, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(line + "\n")
    with pytest.raises(options.UsageError, match=message) as error:
        options.parse(["--mode", "train", "--experiment", str(path)])
    assert str(path) in str(error.value)


def test_every_file_named_is_checked_before_any_work(tmp_path, capsys):
    """A missing --weights is an error at once, before the data index (which takes ~20 s on Human3.6M)."""
    code = train_and_test.main(["--mode", "test", "--weights", str(tmp_path / "missing.weights.h5"),
                                "--data-dir", str(tmp_path), "--labels-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and "--weights" in captured.err and "missing.weights.h5: no such file" in captured.err
    assert "index" not in captured.out
    for flag in ("--calibration", "--cameras", "--backbone-weights"):
        with pytest.raises(options.UsageError, match=f"{flag} .*nope: no such file"):
            options.parse(["--mode", "train", flag, str(tmp_path / "nope")])
    for flag in ("--videos", "--detections", "--background-videos"):
        with pytest.raises(options.UsageError, match=f"{flag} .*nope: no such folder"):
            options.parse(["--mode", "train", flag, str(tmp_path / "nope")])


def test_a_flag_the_mode_does_not_read_is_named(capsys, tmp_path):
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"")
    options.parse(["--mode", "test", "--weights", str(weights), "--epochs", "3", "--test-stride", "10"])
    err = capsys.readouterr().err
    assert "--mode test does not read --epochs" in err and "--test-stride" not in err


def test_new_flags_of_other_branches_are_defined():
    args = options.namespace(overwrite=True, allow_partial=True, keypoint_layout="coco17")
    assert (args.overwrite, args.allow_partial, args.keypoint_layout, args.detections) == (True, True, "coco17", None)


def test_terminal_codes_are_dropped_when_the_output_is_not_a_terminal(monkeypatch):
    """Keras' progress bar writes bold and colour codes and backspaces whatever its output is."""
    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", log)
    with progress.plain_text_unless_terminal():
        sys.stdout.write("\x1b[1m3/5\x1b[0m \x1b[32m━━\x1b[0m\b\b ok\n")
    assert log.getvalue() == "3/5 ━━ ok\n"
    assert sys.stdout is log  # restored


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_one_line_per_epoch_a_terminal_the_bar_unless_told(monkeypatch, tmp_path):
    def verbose(*flags):
        return options.parse(["--demo-dir", str(tmp_path), *flags]).verbose
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert verbose() == 2 and verbose("--verbose", "1") == 1
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert verbose() == 1 and verbose("--verbose", "0") == 0


def test_tensorflow_start_up_notes_are_left_out_warnings_kept():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on.\n"
            "I0000 00:00:1.0 1 cpu_feature_guard.cc:210] This TensorFlow binary is optimized\n"
            "To enable the following instructions: AVX2, in other operations, rebuild\n"
            "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit\n"
            "a line of our own\n")
    assert devices.without_entries(text, devices.STARTUP_NOTE.match) == ("E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit\n"
                                                          "a line of our own\n")


def test_tensorflow_starts_without_its_notes_printed_twice():
    code = "from common import devices; devices.import_tensorflow_quietly(); import keras; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr, result.stderr
