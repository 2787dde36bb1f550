"""Every option of ``train_and_test.py``, defined once: the parser, ``--mode demo``, the experiment
files, the tests and the benchmarks all build from ``GROUPS``.

An option is a flag, its help, default and type, and the modes it applies to (its group's, unless
it names its own). Where an option chooses from a list, the list comes from the module that owns it
(``model_config.CONFIG_NAMES``, ``model_config.FUSION_CHOICES``, ``common.devices.PRECISIONS``, ...), or,
where that module loads Keras, TensorFlow or matplotlib, is typed here and read by it (``--loss-2d``,
``--loss-3d``: train/losses.py; ``--strategy``: common/distribution.py; ``--root``: evaluation.py).

Settings come from three places, the later winning: the defaults here, an experiment file
(``--experiment file.toml``: one ``name = value`` per option, named as the flag without its dashes;
``--mode demo`` reads ``experiments/configs/demo.toml`` unless given another), the command line.

Plain Python and NumPy only, so ``--help`` answers at once; TensorFlow loads in the modes.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys

import h36m_utils
import model_config
from common import devices
from rig import calibration
from rig import detections
from rig import run_summary

MODES = ("train", "test", "predict", "demo")
CONFIGS_DIR = pathlib.Path(__file__).resolve().parent / "experiments" / "configs"
DEMO_EXPERIMENT = CONFIGS_DIR / "demo.toml"
DEMO_DIR = "synthetic_data"
# --loss: which terms train the model (train/run.py weighs them).
LOSSES = ("2d", "2d+3d", "3d")
# The 3D term's weight is 0 for this fraction of the training steps (--warmup-3d-steps overrides
# it): checked on the validation split (experiments/tune_warmup_3d.py, experiments/LOG.md). At the demo's
# 1,000 steps 0 was 0.6 mm better; 0.45 stays until the tables measured with it are re-measured.
WARMUP_3D_FRACTION = 0.45
# The 3D error of the root found in the videos before the model's refinement (root_finder), its
# standard deviation per rig axis (x, y horizontal, up), mm, measured on the synthetic training
# subjects S1 S5 S6 S7 (benchmarks/bench_root.py; mean offsets under 3 mm): training crops are cut
# around the labelled pelvis moved by such an offset, so the model learns from the roots it is given.
ROOT_JITTER_MM = (34.0, 34.0, 23.0)


class UsageError(Exception):
    """A problem the user can fix (missing data, wrong flag); printed without a traceback."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One flag. shown: what the default means when it is None ("(default: <shown>)" in --help);
    modes: the modes that read it (None: its group's); positive: a number that must be >= 1;
    file / folder: a path that must exist before any slow work starts; output: says where results go or
    how much is printed, never what they are."""
    flag: str
    help: str
    default: object = None
    type: type | None = None
    choices: tuple | None = None
    nargs: str | int | None = None
    metavar: str | tuple | None = None
    switch: bool = False
    shown: str | None = None
    modes: tuple | None = None
    positive: bool = False
    file: bool = False
    folder: bool = False
    output: bool = False

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def initial(self):
        """The value when nothing sets it (a fresh list for a list default, off for a switch)."""
        if self.switch:
            return False
        return list(self.default) if isinstance(self.default, list) else self.default


@dataclasses.dataclass(frozen=True)
class Group:
    title: str
    modes: tuple
    options: tuple


GROUPS = (
    Group("what to run", MODES, (
        Option("--mode", "train: fit on the training subjects; test: run the protocol with --weights; predict: run "
                         "--weights on your own --videos and --calibration; demo: generate synthetic data (no "
                         "download), train tiny, test", default="demo", choices=MODES),
        Option("--experiment", "a .toml file of settings (one `name = value` per option, named as the flag "
                               "without its dashes, e.g. experiments/configs/paper.toml); flags given here win",
               shown="none; --mode demo: experiments/configs/demo.toml", file=True),
        Option("--verbose", "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch",
               shown="1 on a terminal, 2 otherwise (a log file gets no bar)", type=int, choices=(0, 1, 2),
               output=True),
    )),
    Group("Human3.6M data", ("train", "test"), (
        Option("--data-dir", "folder holding the Human3.6M videos (any depth)", default="Data"),
        Option("--labels-dir", "folder holding the D2/D3 pose CDF files (any depth)", default="Labels"),
        Option("--cameras", "camera file (camera-parameters.json or metadata.xml)",
               shown="<labels-dir>/camera-parameters.json", file=True),
        Option("--train-subjects", "training subjects", nargs="+", shown=" ".join(h36m_utils.TRAIN_SUBJECTS),
               modes=("train",)),
        Option("--val-subjects", "validation (picks best.weights.h5): of a TRAINING subject the last trial of every "
                                 "action is held out of training; another subject is used whole; 'none': no "
                                 "validation", nargs="+", shown="the last training subject", modes=("train", "demo")),
        Option("--test-subjects", "test subjects (S9 is filtered by S9_training_vids.txt)", nargs="+",
               shown=" ".join(h36m_utils.TEST_SUBJECTS), modes=("test",)),
        Option("--train-stride", "train on every n-th frame (5: 10 fps)", default=5, type=int, positive=True,
               modes=("train", "demo")),
        Option("--val-stride", "validate on every n-th frame after each epoch", default=64, type=int,
               positive=True, modes=("train", "demo")),
        Option("--test-stride", "test on every n-th frame (the protocol uses 5)", default=5, type=int,
               positive=True, modes=("test", "demo")),
        Option("--cache-dir", "where the crop caches are built once and reused", shown="$CROP_CACHE_DIR or cache/",
               modes=("train", "test", "demo"), output=True),
    )),
    Group("model", MODES, (
        Option("--config", "model_config.CONFIGS; -skip, -mean: that --fusion. test and predict without --config: "
                           "the config named in the weights' .json sidecar", choices=model_config.CONFIG_NAMES,
               shown="paper"),
        Option("--fusion", "concat: the paper's fusion (a model runs on the V cameras it was trained with); "
                           "skip: concat, and each view's decoder also gets its own code (same cameras); "
                           "mean: order-free, any number of cameras >= 2", choices=model_config.FUSION_CHOICES,
               shown="the config's"),
        Option("--box-mm", "side of the world square around the pelvis that a crop shows", default=2000.0,
               type=float),
        Option("--batch-size", "GLOBAL batch (samples of 4 views); split evenly across replicas", default=16,
               type=int, positive=True),
    )),
    Group("training", ("train", "demo"), (
        Option("--backbone-weights", "ResNet weights file (keras.applications' *_notop.h5) to start the encoder "
                                     "from, for machines without internet", shown="ImageNet, downloaded once",
               file=True),
        Option("--no-imagenet", "start the ResNet encoder from random weights instead of ImageNet", switch=True),
        Option("--loss", "2d: heatmap joints only; 2d+3d: plus the 3D term through the DLT; 3d: DLT only",
               default="2d+3d", choices=LOSSES),
        Option("--loss-2d", "2D term on crop coordinates / S", default="mse", choices=("mse", "l1")),
        Option("--loss-3d", "3D term in mm", default="l1", choices=("l1", "huber")),
        Option("--weight-3d", "final weight of the 3D term (2d+3d)", default=1e-4, type=float),
        Option("--warmup-3d-steps", "training steps with the 3D weight at 0 before it ramps up (2d+3d); "
                                    "experiments/LOG.md compares others", type=int,
               shown=f"{WARMUP_3D_FRACTION:g} of all steps (--epochs x --steps-per-epoch)"),
        Option("--ramp-3d-steps", "steps of the linear 3D-weight ramp (2d+3d)", default=0, type=int),
        Option("--epochs", "training epochs", default=30, type=int, positive=True),
        Option("--steps-per-epoch", "steps per epoch", type=int, positive=True,
               shown="one pass over the training frames at --train-stride"),
        Option("--val-steps", "validation batches per epoch", type=int, positive=True,
               shown="all of them at --val-stride"),
        Option("--lr", "peak learning rate of Adam (gradient norm clipped at 1): linear warm-up, then cosine decay to 1%%", default=1e-3,
               type=float),
        Option("--lr-warmup-steps", "steps of the learning-rate warm-up", default=500, type=int),
        Option("--seed", "seed of the weights' initialisation, the data order and the augmentation", default=0, type=int),
        Option("--root-jitter-mm", "standard deviation of the 3D offset of the training crops' root from the "
                                   "labelled pelvis, per rig axis (the root finder's error); validation uses the "
                                   "same", default=list(ROOT_JITTER_MM), type=float, nargs=3,
               metavar=("X", "Y", "UP")),
        Option("--augment-rig", "train for rigs unlike Human3.6M's: crops turned (camera roll), box scaled, the "
                                "world turned about the vertical and moved, random 2..V views in random order (the "
                                "last needs --fusion mean)", switch=True),
        Option("--checkpoint-dir", "where best.weights.h5, last.weights.h5 (+ .json sidecars) and the resume "
                                   "backup go", default="checkpoints", output=True),
        Option("--log-dir", "TensorBoard and CSV logs", default="logs", output=True),
        Option("--backup-every", "steps between backups of the training state (for --resume)", default=200,
               type=int, positive=True),
        Option("--resume", "continue an interrupted run from <checkpoint-dir>/backup, at the same epoch and step",
               switch=True),
        Option("--overwrite", "replace the weights already in --checkpoint-dir (a new run refuses to start over "
                              "them otherwise)", switch=True),
        Option("--strategy", "default: one device; mirrored: all GPUs of this machine (or --cpu-replicas); "
                             "multiworker: several processes or machines configured by TF_CONFIG",
               default="default", choices=("default", "mirrored", "multiworker")),
        Option("--cpu-replicas", "mirrored on a machine without GPUs: split the CPU into this many replicas (for "
                                 "trying multi-replica training, e.g. 2)", default=0, type=int),
        Option("--worker-start-timeout", "multiworker: seconds to wait for every worker of TF_CONFIG to join "
                                         "before giving up", default=600.0, type=float),
        Option("--accumulate-steps", "average the gradients of N batches per optimizer update: the effective "
                                     "batch is --batch-size x N; steps (epochs, schedules, backups) count "
                                     "updates; --strategy default only (docs/TRAINING.md)", default=1, type=int,
               positive=True),
    )),
    Group("weights and outputs", MODES, (
        Option("--weights", "weights file or URL: test and predict run it; train starts from it (checked "
                            "against --config via its .json sidecar)", file=True),
        Option("--weights-sha256", "expected sha256 of --weights; a mismatch is an error naming both hashes"),
        Option("--output-dir", "where metrics.json, metrics.csv and predictions.npz/.csv (test) or every "
                               "predict output go", default="outputs", modes=("test", "predict", "demo"), output=True),
        Option("--images-dir", "where kpts_preds.png and 3d_prediction.png go", default="imgs",
               modes=("test", "demo"), output=True),
        Option("--demo-dir", "the synthetic data set is generated here once and reused", default=DEMO_DIR,
               modes=("demo",), output=True),
    )),
    Group("test", ("test", "demo"), (
        Option("--root", "where the crops' root comes from: estimated = found in the videos (the protocol); "
                         "labels = the labelled pelvis (only to compare with papers that crop with ground-truth "
                         "boxes)", default="estimated", choices=("estimated", "labels"), modes=("test",)),
        Option("--test-cameras", "the cameras the model gets, in this order (2 or more of "
                                 f"{' '.join(h36m_utils.CAMERA_IDS)}; other than all four needs --fusion mean)",
               nargs="+", metavar="ID", shown="all four", modes=("test",)),
        Option("--allow-partial", "score even when sequences of the protocol are missing or unreadable; the "
                                  "table and metrics say 'partial: N of M sequences' and list them",
               switch=True, modes=("test",)),
        Option("--refinements", "times the crops are re-centred on the model's own pelvis after the root "
                                "finder's", type=int, shown="rig/inference.py's DEFAULT_REFINEMENTS",
               modes=("test", "predict", "demo")),
    )),
    Group("predict (your own rig)", ("predict",), (
        Option("--videos", "folder of one video per camera, named <camera name>.<ext> or "
                           "<anything>.<camera name>.<ext>", folder=True),
        Option("--calibration", "the cameras: a pose2sim/anipose .toml, an EasyMocap folder (or "
                                "intri.yml/extri.yml), or the repo's camera JSON (see docs/INFERENCE.md)", file=True),
        Option(calibration.UNITS_FLAG, "the calibration's length unit", choices=tuple(calibration.UNIT_TO_MM),
               shown="the format's (toml, EasyMocap: m; json: mm)"),
        Option("--calibration-subject", "the subject whose cameras to use when a camera JSON holds several"),
        Option("--background-videos", "folder of more videos of the same cameras (named like --videos), e.g. "
                                      "of the empty scene, that the person finder learns the background from "
                                      "too; needed when the person stays in one place", folder=True),
        Option("--detections", "folder of the 2D keypoints you already have (OpenPose-format JSON, one folder "
                               "per camera named after it, one file per frame, e.g. pose2sim's pose/): the root "
                               "is the mid-hip triangulated from them, the person associated across views",
               folder=True),
        Option(detections.LAYOUT_FLAG, "the layout of --detections", choices=tuple(detections.LAYOUTS),
               shown="from the keypoint count (25: told apart by the keypoints, or an error asking for this flag)"),
        Option("--root-source", "where the root comes from; centre: the point the cameras look at, for one "
                                "person who stays near it", choices=run_summary.ROOT_SOURCES,
               shown="detections with --detections, else silhouettes (background subtraction)"),
        Option("--stride", "predict every n-th frame", default=1, type=int, positive=True),
    )),
    Group("device", MODES, (
        Option("--precision", "Keras dtype policy: mixed_bfloat16 on Ampere and later GPUs, mixed_float16 (with "
                              "loss scaling) on Volta/Turing; camera geometry, DLT and losses stay float32 "
                              "(docs/TRAINING.md)", default="float32", choices=devices.PRECISIONS),
        Option("--jit-compile", "XLA-compile the step; auto: on a single GPU, off on the CPU and under a strategy",
               default="auto", choices=devices.JIT_CHOICES),
    )),
)
OPTIONS = {option.dest: option for group in GROUPS for option in group.options}


def modes_of(option: Option) -> tuple:
    return option.modes or next(group.modes for group in GROUPS if option in group.options)


# --------------------------------------------------------------------------- the parser

class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each flag's help with its default, unless the default is nothing (None, off)."""

    def _get_help_string(self, action):
        option = OPTIONS.get(action.dest)
        if option is None:
            return action.help
        shown = option.shown if option.default is None else option.default
        if option.switch or shown is None:
            return action.help
        if isinstance(shown, (list, tuple)):
            shown = " ".join(f"{value:g}" if isinstance(value, float) else str(value) for value in shown)
        return f"{action.help} (default: {shown})"


def build_parser(suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """The command line, one argument group per group of ``GROUPS`` (its title names the modes it serves).
    suppress_defaults: options not given stay out of the Namespace (which were given)."""
    parser = argparse.ArgumentParser(
        prog="train_and_test.py", formatter_class=HelpFormatter,
        usage="%(prog)s [--mode {" + ",".join(MODES) + "}] [--experiment FILE.toml] [flags of the mode, below]",
        description="Train, test, predict or demo the canonical-fusion multi-view 3D pose model (Remelli et "
                    "al., CVPR 2020).", epilog="Each group names the modes that read its flags.")
    for group in GROUPS:
        modes = "every mode" if group.modes == MODES else "--mode " + ", ".join(group.modes)
        section = parser.add_argument_group(f"{group.title} ({modes})")
        for option in group.options:
            default = argparse.SUPPRESS if suppress_defaults else option.initial
            if option.switch:
                section.add_argument(option.flag, action="store_true", default=default, help=option.help)
                continue
            extra = {key: value for key, value in (("type", option.type), ("choices", option.choices),
                                                   ("nargs", option.nargs), ("metavar", option.metavar))
                     if value is not None}
            section.add_argument(option.flag, default=default, help=option.help, **extra)
    return parser


def defaults() -> dict:
    """{dest: default} of every option."""
    return {dest: option.initial for dest, option in OPTIONS.items()}


def namespace(mode: str = "train", **settings) -> argparse.Namespace:
    """The settings a run of ``mode`` reads, as the command line would give them: the defaults, the
    experiment file (``experiment=``; mode "demo": the demo's), then ``settings`` (named as the dests),
    checked as the command line's are. For code that calls the modes (benchmarks, experiments, tests)."""
    settings["mode"] = mode
    unknown = sorted(set(settings) - set(OPTIONS))
    if unknown:
        raise UsageError(f"Unknown option(s) {', '.join(unknown)}; see options.GROUPS.")
    from_file = experiment_settings(mode, settings.get("experiment"))
    args = finish(argparse.Namespace(**{**defaults(), **from_file, **settings}))
    args.given = tuple(sorted({*from_file, *settings}))
    return args


def experiment_settings(mode: str, experiment) -> dict:
    """{dest: value} of --experiment, or of the demo's recipe for --mode demo without one."""
    experiment = experiment or (DEMO_EXPERIMENT if mode == "demo" else None)
    return read_experiment(experiment) if experiment else {}


# --------------------------------------------------------------------------- experiment files

def read_experiment(path) -> dict:
    """{dest: value} of an experiment .toml file; an unknown name or a value the flag would refuse is an
    error naming the file, the name and what to write instead."""
    import tomllib
    path = pathlib.Path(path)
    if not path.is_file():
        raise UsageError(f"--experiment {path}: no such file.")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--experiment {path}: not valid TOML ({error}).") from error
    settings = {}
    for name, value in values.items():
        dest = name.replace("-", "_")
        option = OPTIONS.get(dest)
        if option is None or dest in ("mode", "experiment"):
            raise UsageError(f"--experiment {path}: '{name}' is not a setting. Use the names of the flags of "
                             "`python train_and_test.py --help` without their dashes (e.g. batch_size = 8); "
                             "--mode and --experiment are given on the command line.")
        settings[dest] = _checked_value(option, value, path)
    return settings


def _checked_value(option: Option, value, path):
    """``value`` as the flag would hold it, or a UsageError naming the file and the setting."""
    where = f"--experiment {path}: {option.dest} = {value!r}"
    if option.switch:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: write true or false.")
        return value
    values = value if isinstance(value, list) else [value]
    if (option.nargs is None) != (not isinstance(value, list)):
        raise UsageError(f"{where}: write {'a list, e.g. [...]' if option.nargs else 'one value, not a list'}.")
    kind = option.type or str
    fits = {int: lambda item: isinstance(item, int) and not isinstance(item, bool),
            float: lambda item: isinstance(item, (int, float)) and not isinstance(item, bool),
            str: lambda item: isinstance(item, str)}[kind]
    if not all(map(fits, values)):
        raise UsageError(f"{where}: write {'a whole number' if kind is int else 'a number' if kind is float else 'quoted text'}.")
    values = [kind(item) for item in values]
    bad = [item for item in values if option.choices is not None and item not in option.choices]
    if bad:
        raise UsageError(f"{where}: choose from {', '.join(map(str, option.choices))}.")
    return values if isinstance(value, list) else values[0]


# --------------------------------------------------------------------------- parsing

def parse(argv=None) -> argparse.Namespace:
    """The settings of a command line: defaults, then the experiment file, then the flags given.
    ``args.given`` names the options the user set (command line or file)."""
    args = build_parser().parse_args(argv)
    given = vars(build_parser(suppress_defaults=True).parse_args(argv))
    from_file = experiment_settings(args.mode, args.experiment)
    settings = {**vars(args), **from_file, **given}
    changed = sorted(dest for dest in given if dest != "mode" and not OPTIONS[dest].output)
    if args.mode == "demo" and changed:
        print(f"Note: the demo's recipe ({args.experiment or DEMO_EXPERIMENT}) with "
              f"{', '.join(OPTIONS[d].flag for d in changed)} from the command line: not the demo's numbers.",
              file=sys.stderr)
    args = finish(argparse.Namespace(**settings), command_line=tuple(given))
    args.given = tuple(sorted({*from_file, *given}))
    return args


def finish(args: argparse.Namespace, command_line=()) -> argparse.Namespace:
    """Check the settings (numbers, combinations, every file named) before any slow work; note the
    flags of the ``command_line`` that the chosen mode does not read; fill the defaults that depend
    on others."""
    for dest, option in OPTIONS.items():
        value = getattr(args, dest)
        if option.positive and value is not None and value < 1:
            raise UsageError(f"{option.flag} must be >= 1, got {value}")
    if args.cpu_replicas and args.strategy != "mirrored":
        raise UsageError("--cpu-replicas splits the CPU for --strategy mirrored; add --strategy mirrored.")
    chosen = args.test_cameras
    if chosen is not None and (len(set(chosen)) != len(chosen) or len(chosen) < 2
                               or not set(chosen) <= set(h36m_utils.CAMERA_IDS)):
        raise UsageError(f"--test-cameras needs 2 or more different cameras of {' '.join(h36m_utils.CAMERA_IDS)}; "
                         f"got {' '.join(chosen)}.")
    if args.refinements is not None and args.refinements < 0:
        raise UsageError(f"--refinements must be >= 0, got {args.refinements}")
    if args.mode == "test" and not args.weights:
        raise UsageError("--mode test needs --weights (a .weights.h5 file or a URL).")
    if args.mode == "predict" and not (args.weights and args.videos and args.calibration):
        raise UsageError("--mode predict needs --weights, --videos and --calibration (see docs/INFERENCE.md).")
    unused = [OPTIONS[dest].flag for dest in command_line if args.mode not in modes_of(OPTIONS[dest])]
    if unused:
        print(f"Note: --mode {args.mode} does not read {', '.join(unused)}.", file=sys.stderr)
    check_files(args)
    if args.verbose is None:
        args.verbose = 1 if sys.stdout.isatty() else 2
    if args.config is None and args.mode in ("train", "demo"):
        args.config = OPTIONS["config"].shown  # test and predict read the weights' sidecar first
    args.cameras = args.cameras or os.path.join(args.labels_dir, "camera-parameters.json")
    return args


def check_files(args) -> None:
    """Every file or folder named on the command line exists (a URL for --weights is fetched later)."""
    for dest, option in OPTIONS.items():
        path = getattr(args, dest)
        if not path or not (option.file or option.folder) or "://" in str(path):
            continue
        if option.folder and not os.path.isdir(path):
            raise UsageError(f"{option.flag} {path}: no such folder.")
        # --calibration may be an EasyMocap folder; the others are files.
        if option.file and not (os.path.isfile(path) or (dest == "calibration" and os.path.isdir(path))):
            raise UsageError(f"{option.flag} {path}: no such file.")
