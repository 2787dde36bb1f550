"""Train, test, predict or demo the canonical-fusion multi-view 3D pose model (Remelli et al., CVPR 2020).

    python train_and_test.py --mode demo                      # no download: synthetic data, tiny model
    python train_and_test.py --mode train --config paper      # Human3.6M under Data/ and Labels/
    python train_and_test.py --mode test --weights checkpoints/best.weights.h5
    python train_and_test.py --mode predict --weights W --videos DIR --calibration Calib.toml

Thin on purpose: the data set's facts are in h36m_utils, tensors in data_loader, the network
in model / losses / dlt_layer, fitting in training, the protocol in evaluation, the predict
loop in inference (with root_finder, calibration, prediction_outputs), plots in visualize.
``python train_and_test.py --help`` explains every flag.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import h36m_utils  # numpy only: --help stays fast (TensorFlow is imported by the modes)

DEMO_DIR = "synthetic_data"
# The demo's fixed budget (sized for 15 minutes in all on a 2-core CPU; see docs/BENCHMARKS.md).
DEMO_SETTINGS = dict(config="tiny", fusion=None, loss="2d+3d", loss_2d="l1", batch_size=8, epochs=8,
                     steps_per_epoch=125, lr=2e-3, lr_warmup_steps=100, warmup_3d_steps=None, ramp_3d_steps=150,
                     train_stride=1, val_subjects=None, val_stride=5, val_steps=None, test_stride=5,
                     strategy="default", cpu_replicas=0, no_imagenet=True, backbone_weights=None, weights=None,
                     weights_sha256=None, box_mm=2000.0, augment_rig=False)
# The 3D term's weight is 0 for this fraction of the training steps (--warmup-3d-steps overrides
# it): checked on the validation split (benchmarks/tune_warmup_3d.py, BENCHMARKS.md). At the demo's
# 1,000 steps 0 was 0.6 mm better; 0.45 stays until the tables measured with it are re-measured.
WARMUP_3D_FRACTION = 0.45
# The 3D error of the root found in the videos before the model's refinement (root_finder), its
# standard deviation per rig axis (x, y horizontal, up), mm, measured on the synthetic training
# subjects S1 S5 S6 S7 (benchmarks/bench_root.py; mean offsets under 3 mm): training crops are cut
# around the labelled pelvis moved by such an offset, so the model learns from the roots it is given.
ROOT_JITTER_MM = (34.0, 34.0, 23.0)


class UsageError(Exception):
    """A problem the user can fix (missing data, wrong flag); printed without a traceback."""


# --------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--mode", choices=("train", "test", "predict", "demo"), default="demo",
                        help="train: fit on the training subjects; test: run the protocol with "
                             "--weights; predict: run --weights on your own --videos and --calibration; "
                             "demo: generate synthetic data (no download), train tiny, test")
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default="Data", help="folder holding the Human3.6M videos (any depth)")
    data.add_argument("--labels-dir", default="Labels", help="folder holding the D2/D3 pose CDF files (any depth)")
    data.add_argument("--cameras", default=None,
                      help="camera file (camera-parameters.json or metadata.xml); "
                           "default: <labels-dir>/camera-parameters.json")
    data.add_argument("--train-subjects", nargs="+", default=None,
                      help="training subjects; default: S1 S5 S6 S7 S8 (demo: the synthetic S1 S5 S6 S7)")
    data.add_argument("--val-subjects", nargs="+", default=None,
                      help="validation (picks best.weights.h5): of a TRAINING subject the last trial of "
                           "every action is held out of training; another subject is used whole; 'none': "
                           "no validation; default: the last training subject")
    data.add_argument("--test-subjects", nargs="+", default=None,
                      help="test subjects (S9 is filtered by S9_training_vids.txt); default: S9 S11 (demo: S11)")
    data.add_argument("--train-stride", type=int, default=5, help="train on every n-th frame (5: 10 fps)")
    data.add_argument("--val-stride", type=int, default=64, help="validate on every n-th frame after each epoch")
    data.add_argument("--test-stride", type=int, default=5, help="test on every n-th frame (the protocol uses 5)")
    data.add_argument("--box-mm", type=float, default=2000.0,
                      help="side of the world square around the pelvis that a crop shows")
    data.add_argument("--root", choices=("estimated", "labels"), default="estimated",
                      help="test: where the crops' root comes from: estimated = found in the videos "
                           "(the protocol); labels = the labelled pelvis (only to compare with papers that "
                           "crop with ground-truth boxes)")
    data.add_argument("--test-cameras", nargs="+", default=None, metavar="ID",
                      help="test: the cameras the model gets, in this order (2 or more of "
                           f"{' '.join(h36m_utils.CAMERA_IDS)}; other than all four needs --fusion mean); default: all four")
    data.add_argument("--refinements", type=int, default=None,
                      help="test/predict: times the crops are re-centred on the model's own pelvis after "
                           "the root finder's (default: inference.DEFAULT_REFINEMENTS)")
    data.add_argument("--allow-partial", action="store_true",
                      help="train or test although sequences are missing or unreadable; the results say what was left out")
    data.add_argument("--cache-dir", default=None,
                      help="where the crop caches are built once and reused; default: $CROP_CACHE_DIR or cache/")
    model = parser.add_argument_group("model and loss")
    model.add_argument("--config", choices=model_config_names(), default="paper",
                       help="model.CONFIGS; -mean: order-free fusion; demo: tiny")
    model.add_argument("--fusion", choices=("concat", "mean"), default=None,
                       help="concat: the paper's fusion (a model runs on the V cameras it was trained "
                            "with); mean: order-free, any number of cameras >= 2; default: the config's")
    model.add_argument("--backbone-weights", default=None,
                       help="ResNet weights file (keras.applications' *_notop.h5) to start the encoder "
                            "from, for machines without internet; default: ImageNet, downloaded once")
    model.add_argument("--no-imagenet", action="store_true",
                       help="start the ResNet encoder from random weights instead of ImageNet")
    model.add_argument("--loss", choices=("2d", "2d+3d", "3d"), default="2d+3d",
                       help="2d: heatmap joints only; 2d+3d: plus the 3D term through the DLT; 3d: DLT only")
    model.add_argument("--loss-2d", choices=("mse", "l1"), default="mse", help="2D term on crop coordinates / S")
    model.add_argument("--loss-3d", choices=("l1", "huber"), default="l1", help="3D term in mm")
    model.add_argument("--weight-3d", type=float, default=1e-4, help="final weight of the 3D term (2d+3d)")
    model.add_argument("--warmup-3d-steps", type=int, default=None,
                       help="training steps with the 3D weight at 0 before it ramps up (2d+3d); default: "
                            f"{WARMUP_3D_FRACTION:g} of all steps (--epochs x --steps-per-epoch); docs/BENCHMARKS.md compares others")
    model.add_argument("--ramp-3d-steps", type=int, default=0, help="steps of the linear 3D-weight ramp (2d+3d)")
    fit = parser.add_argument_group("training")
    fit.add_argument("--batch-size", type=int, default=16,
                     help="GLOBAL batch (samples of 4 views); split evenly across replicas")
    fit.add_argument("--epochs", type=int, default=30, help="training epochs")
    fit.add_argument("--steps-per-epoch", type=int, default=None,
                     help="steps per epoch; default: one pass over the training frames at --train-stride")
    fit.add_argument("--val-steps", type=int, default=None,
                     help="validation batches per epoch; default: all of them at --val-stride")
    fit.add_argument("--lr", type=float, default=1e-3,
                     help="peak learning rate of Adam (linear warm-up, then cosine decay to 1%%)")
    fit.add_argument("--lr-warmup-steps", type=int, default=500, help="steps of the learning-rate warm-up")
    fit.add_argument("--seed", type=int, default=0, help="seed of the weights' initialisation and the data order")
    fit.add_argument("--root-jitter-mm", type=float, nargs=3, default=list(ROOT_JITTER_MM),
                     metavar=("X", "Y", "UP"),
                     help="standard deviation of the 3D offset of the training crops' root from the "
                          "labelled pelvis, per rig axis (the root finder's error); validation uses the same")
    fit.add_argument("--augment-rig", action="store_true",
                     help="train for rigs unlike Human3.6M's: crops turned (camera roll), box scaled, "
                          "the world turned about the vertical and moved, random 2..V views in random "
                          "order (the last needs --fusion mean)")
    fit.add_argument("--checkpoint-dir", default="checkpoints",
                     help="where best.weights.h5, last.weights.h5 (+ .json sidecars) and the resume backup go")
    fit.add_argument("--log-dir", default="logs", help="TensorBoard and CSV logs")
    fit.add_argument("--backup-every", type=int, default=200,
                     help="steps between backups of the training state (for --resume)")
    fit.add_argument("--resume", action="store_true",
                     help="continue an interrupted run from <checkpoint-dir>/backup, at the same epoch and step")
    fit.add_argument("--overwrite", action="store_true",
                     help="start a new run where <checkpoint-dir> holds another run's weights (deleted first)")
    fit.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                     help="default: one device; mirrored: all GPUs of this machine (or --cpu-replicas); "
                          "multiworker: several processes or machines configured by TF_CONFIG")
    fit.add_argument("--cpu-replicas", type=int, default=0,
                     help="mirrored on a machine without GPUs: split the CPU into this many replicas "
                          "(for trying multi-replica training, e.g. 2)")
    fit.add_argument("--worker-start-timeout", type=float, default=600.0,
                     help="multiworker: seconds to wait for every worker of TF_CONFIG to join before giving up")
    device = parser.add_argument_group("device")
    device.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"), default="float32",
                        help="Keras dtype policy: mixed_bfloat16 on Ampere and later GPUs, mixed_float16 (with loss "
                             "scaling) on Volta/Turing; camera geometry, DLT and losses stay float32 (docs/TRAINING.md)")
    device.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA-compile the step; auto: on a single GPU, off on the CPU and under a strategy")
    device.add_argument("--accumulate-steps", type=int, default=1,
                        help="average the gradients of N batches per optimizer update: the effective batch is "
                             "--batch-size x N; steps (epochs, schedules, backups) count updates; --strategy "
                             "default only (docs/TRAINING.md)")
    parser.add_argument("--weights", default=None,
                        help="weights file or URL: test mode evaluates it; train mode starts from it "
                             "(checked against --config via its .json sidecar)")
    parser.add_argument("--weights-sha256", default=None,
                        help="expected sha256 of --weights; a mismatch is an error naming both hashes")
    parser.add_argument("--output-dir", default="outputs",
                        help="where metrics.json, metrics.csv and predictions.npz/.csv (test) or every "
                             "predict output go")
    parser.add_argument("--images-dir", default="imgs", help="where kpts_preds.png and 3d_prediction.png go")
    parser.add_argument("--demo-dir", default=DEMO_DIR,
                        help="demo: the synthetic data set is generated here once and reused")
    own = parser.add_argument_group("predict (your own rig)")
    own.add_argument("--videos", default=None,
                     help="folder of one video per camera, named <camera name>.<ext> or <anything>.<camera name>.<ext>")
    own.add_argument("--calibration", default=None,
                     help="the cameras: a pose2sim/anipose .toml, an EasyMocap folder (or intri.yml/extri.yml), "
                          "or the repo's camera JSON (see docs/INFERENCE.md)")
    own.add_argument("--calibration-units", choices=("mm", "cm", "m"), default=None,
                     help="the calibration's length unit; default: the format's (toml, EasyMocap: m; json: mm)")
    own.add_argument("--calibration-subject", default=None,
                     help="the subject whose cameras to use when a camera JSON holds several")
    own.add_argument("--background-videos", default=None,
                     help="folder of more videos of the same cameras (named like --videos), e.g. of the empty "
                          "scene, that the person finder learns the background from too; needed when the "
                          "person stays in one place")
    own.add_argument("--stride", type=int, default=1, help="predict every n-th frame")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch")
    return parser


def model_config_names() -> tuple:
    """The --config choices, without importing Keras (--help stays fast)."""
    bases = ("paper", "resnet50", "tiny")
    return bases + tuple(f"{base}-mean" for base in bases)


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for name in ("batch_size", "epochs", "train_stride", "val_stride", "test_stride", "backup_every",
                 "accumulate_steps", "stride"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.cpu_replicas and args.strategy != "mirrored":
        raise UsageError("--cpu-replicas splits the CPU for --strategy mirrored; add --strategy mirrored.")
    chosen = args.test_cameras
    if chosen is not None and (len(set(chosen)) != len(chosen) or len(chosen) < 2
                               or not set(chosen) <= set(h36m_utils.CAMERA_IDS)):
        raise UsageError(f"--test-cameras needs 2 or more different cameras of {' '.join(h36m_utils.CAMERA_IDS)}; "
                         f"got {' '.join(chosen)}.")
    if args.refinements is not None and args.refinements < 0:
        raise UsageError(f"--refinements must be >= 0, got {args.refinements}")
    if args.mode == "predict" and not (args.weights and args.videos and args.calibration):
        raise UsageError("--mode predict needs --weights, --videos and --calibration (see docs/INFERENCE.md).")
    args.cameras = args.cameras or os.path.join(args.labels_dir, "camera-parameters.json")
    return args


# --------------------------------------------------------------------------- data

def load_split(args, subjects, purpose: str):
    """(sequences, cameras, the index's report) of ``subjects``."""
    sequences, report = h36m_utils.find_sequences(args.data_dir, args.labels_dir, subjects)
    if not sequences:
        print(f"[{purpose}: {', '.join(subjects)}] {report}")
        raise UsageError(
            f"No Human3.6M sequences of {', '.join(subjects)} found. Looked for videos "
            f"(<subject>/Videos/<Action>.<camera>.mp4, at any depth) under --data-dir "
            f"{os.path.abspath(args.data_dir)} and pose CDFs (<subject>/MyPoseFeatures/"
            f"D3_Positions/*.cdf and D2_Positions/*.cdf) under --labels-dir "
            f"{os.path.abspath(args.labels_dir)}. Get the data set from "
            "http://vision.imar.ro/human3.6m/ (registration required) and unpack it there (see "
            "Data/README.md). To try everything without a download, run: "
            "python train_and_test.py --mode demo")
    cameras = h36m_utils.load_cameras(args.cameras)
    h36m_utils.check_cameras(cameras, sorted({s.subject for s in sequences}), args.cameras)
    return sequences, cameras, report


def validation_subjects(args, train_subjects) -> list:
    """--val-subjects: default the last training subject; 'none' for no validation."""
    if args.val_subjects is None:
        return [train_subjects[-1]]
    return [] if [s.lower() for s in args.val_subjects] == ["none"] else list(args.val_subjects)


def load_training_splits(args):
    """(train sequences, validation sequences, cameras, a sentence saying what validates)."""
    train_subjects = args.train_subjects or list(h36m_utils.TRAIN_SUBJECTS)
    val_subjects = validation_subjects(args, train_subjects)
    sequences, cameras, report = load_split(args, train_subjects, "training")
    held_in = [s for s in val_subjects if s in train_subjects]
    sequences, validation = h36m_utils.hold_out_last_trials(sequences, held_in)
    others, reports = [s for s in val_subjects if s not in train_subjects], [report]
    if others:
        extra, extra_cameras, extra_report = load_split(args, others, "validation")
        validation, cameras, reports = validation + extra, {**cameras, **extra_cameras}, reports + [extra_report]
    print(h36m_utils.describe_sequences({"training": sequences, "validation": validation}, reports))
    h36m_utils.require_complete(reports, "training", args.allow_partial)
    if val_subjects and not validation:
        raise UsageError(f"Validation has 0 sequences of {', '.join(val_subjects)} (see above): choose "
                         "--val-subjects that have data, or pass --val-subjects none to train without validation.")
    if not val_subjects:
        return sequences, [], cameras, "No validation (--val-subjects none): best.weights.h5 is not written."
    parts = [f"the last trial of every action of {', '.join(held_in)} (held out of training)"] if held_in else []
    parts += [f"all of {', '.join(others)}"] if others else []
    names = ", ".join(f"{s.subject} {s.name}" for s in validation)
    text = (f"Validation (picks best.weights.h5): {' and '.join(parts)}, every {args.val_stride}. frame: "
            f"{len(validation)} sequences ({names}).")
    leaked = sorted(set(val_subjects) & set(h36m_utils.TEST_SUBJECTS))
    if leaked:
        text += (f" WARNING: {', '.join(leaked)} are test subjects: weights picked on them are tuned to the "
                 "test set, and test numbers from them are not comparable with the papers'.")
    return sequences, validation, cameras, text


def augmentations(args, config):
    """(training, validation) crop augmentations: the root finder's error on both (validation's
    drawn the same every epoch), plus the rig's geometry in training with --augment-rig."""
    from pipeline import crop_augmentation
    root = crop_augmentation.Augmentation(root_jitter_mm=tuple(args.root_jitter_mm))
    if not args.augment_rig:
        return root, root
    if config.fusion != "mean":
        print("Note: --augment-rig with the concat fusion keeps every view in its slot (no random view "
              "subsets or order): slot k means camera k.")
    return dataclasses.replace(root, box_scale_jitter=0.15, roll_deg=30.0, world_yaw=True, world_shift_mm=500.0,
                               view_subsets=config.fusion == "mean"), root


def _dataset(args, sequences, cameras, config, batch_size, *, training, stride, augmentation=None, seed=None,
             with_metadata=False, input_context=None, drop_remainder=None, start_sample=0):
    from pipeline import crop_augmentation
    import data_loader
    return data_loader.build_dataset(sequences, cameras, image_size=config.image_size,
                                     batch_size=batch_size, training=training, stride=stride,
                                     box_mm=args.box_mm, augmentation=augmentation or crop_augmentation.NO_AUGMENTATION,
                                     seed=seed, with_metadata=with_metadata, input_context=input_context,
                                     cache_dir=args.cache_dir, drop_remainder=drop_remainder,
                                     start_sample=start_sample)


# --------------------------------------------------------------------------- train

def warmup_3d_steps(args, total_steps: int) -> int:
    """--warmup-3d-steps, or WARMUP_3D_FRACTION of the run's training steps."""
    return args.warmup_3d_steps if args.warmup_3d_steps is not None else round(WARMUP_3D_FRACTION * total_steps)


def backbone_weights(args, config) -> str | None:
    """What the encoder starts from: None (tiny, --no-imagenet), a local file, or "imagenet"."""
    if config.backbone == "tiny" or args.no_imagenet:
        return None
    if args.backbone_weights and not os.path.isfile(args.backbone_weights):
        raise UsageError(f"--backbone-weights {args.backbone_weights}: no such file.")
    return args.backbone_weights or "imagenet"


def build_network(args, config):
    """The model with its encoder's starting weights; an offline machine gets an error naming the flags."""
    import model as model_lib
    weights = backbone_weights(args, config)
    try:
        return model_lib.build_model(config, weights=weights)
    except RuntimeError as error:
        raise UsageError(f"{error}\nOn a machine without internet, pass --backbone-weights PATH (the "
                         f"keras.applications {config.backbone} *_notop.h5 file copied from a machine that "
                         "has it in ~/.keras/models), or --no-imagenet to start from random weights.") from error


def run_train(args, config=None) -> str:
    """Fit the model; returns the path of the weights to test (best, or last without validation).

    config: a ``model.ModelConfig`` to train instead of --config / --fusion (ablations)."""
    sequences, val_sequences, cameras, val_text = load_training_splits(args)

    import keras  # TensorFlow loads only once the data is known to be there
    import data_loader
    from common import devices
    from common import distribution
    from train import losses
    import model as model_lib
    from train import tensorboard_logging
    from train import training
    from common import weights_files

    training.prepare_run_folders(args.checkpoint_dir, args.log_dir, args.resume, args.overwrite)
    devices.configure(args)  # the dtype policy of --precision, before the model is built
    config = config or model_lib.get_config(args.config, args.fusion)
    train_augmentation, val_augmentation = augmentations(args, config)
    strategy = distribution.make_strategy(args.strategy, args.cpu_replicas, args.worker_start_timeout)
    chief = distribution.is_chief_process(strategy)
    checkpoint_dir, log_dir = args.checkpoint_dir, args.log_dir
    keras.utils.set_random_seed(args.seed)

    def train_data(batches_run: int = 0):
        """The training stream after ``batches_run`` global batches (a resumed run continues it)."""
        def make(batch, context):
            samples = batches_run * args.batch_size // (context.num_input_pipelines if context else 1)
            return _dataset(args, sequences, cameras, config, batch, training=True, stride=args.train_stride,
                            augmentation=train_augmentation, seed=args.seed, input_context=context,
                            start_sample=samples)
        return distribution.distributed_dataset(strategy, make, args.batch_size)
    train_data()  # builds the crop cache now: the steps below count the frames it holds
    # Counted once the cache is built: it holds fewer frames than the index where a video ends early.
    steps_per_epoch = args.steps_per_epoch or data_loader.steps_per_epoch(  # steps of the effective batch
        sequences, args.batch_size * args.accumulate_steps, args.train_stride, cache_dir=args.cache_dir)
    print(f"Training {config.name} on {len(sequences)} sequences (every {args.train_stride}. frame) with "
          f"--loss {args.loss}: {args.epochs} epochs x {steps_per_epoch} steps, global batch "
          f"{args.batch_size} on {strategy.num_replicas_in_sync} replica(s).\nTraining crops: "
          f"{train_augmentation.describe()}.\n{val_text}")
    validation = val_steps = preview = None
    if val_sequences:
        # Several replicas: full batches only, or Keras' per-output validation losses come out wrong.
        full_batches = strategy.num_replicas_in_sync > 1
        validation = _dataset(args, val_sequences, cameras, config, args.batch_size, training=False,
                              stride=args.val_stride, augmentation=val_augmentation, seed=args.seed,
                              drop_remainder=full_batches)
        frames = data_loader.count_frames(val_sequences, args.val_stride, cache_dir=args.cache_dir)
        val_steps = args.val_steps or (frames // args.batch_size if full_batches else -(-frames // args.batch_size))
        if val_steps == 0:
            raise UsageError(f"Validation has {frames} frames, fewer than one global batch of {args.batch_size} "
                             f"(with {strategy.num_replicas_in_sync} replicas only full batches validate): "
                             "lower --val-stride, or choose other --val-subjects.")
        preview = tensorboard_logging.take_preview_batch(validation, frames=3)
    start_weights = weights_files.resolve_weights(args.weights, args.weights_sha256) if args.weights else None
    if start_weights:
        weights_files.check_weights_config(start_weights, config.name)
    with strategy.scope():
        network = build_network(args, config)
        distribution.synchronize_batch_norm(network, strategy)
        if start_weights:
            weights_files.load_weights(network, start_weights, config.name)
            print(f"Starting from --weights {args.weights}.")
        # The 3D term's weight: 0 during --warmup-3d-steps, then a linear ramp (losses.Loss3DWeight).
        weight_3d = losses.Loss3DWeight({"2d": 0.0, "3d": 1.0, "2d+3d": args.weight_3d}[args.loss],
                                        warmup_3d_steps(args, args.epochs * steps_per_epoch), args.ramp_3d_steps)
        network.compile(
            optimizer=training.make_optimizer(args.lr, args.epochs * steps_per_epoch, args.lr_warmup_steps,
                                              accumulate_steps=args.accumulate_steps),
            jit_compile=devices.jit_compile_argument(args.jit_compile),
            # What the model is trained on: edit here (docs/DOCUMENTATION.md, "Changing the loss").
            loss={"kp2d": losses.Loss2D(config.image_size, kind=args.loss_2d),  # crop pixels / S
                  "kp3d": losses.Loss3D(kind=args.loss_3d)},                     # world mm, through the DLT
            loss_weights={"kp2d": 0.0 if args.loss == "3d" else 1.0, "kp3d": weight_3d.variable},
            metrics={"kp2d": [losses.pixel_error], "kp3d": [losses.mpjpe]})
    print(devices.start_report(args, "train", config.name, network))
    distribution.enable_distributed_fit(network, strategy)
    monitor = "val_kp3d_mpjpe" if validation is not None else None
    training.fit(network, train_data, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
                 checkpoint_dir=checkpoint_dir, config_name=config.name, resume=args.resume,
                 validation_data=validation, validation_steps=val_steps, monitor=monitor,
                 selection=val_text, backup_every=args.backup_every, verbose=args.verbose, is_chief=chief,
                 callbacks=[weight_3d, *training.standard_callbacks(log_dir, args.resume, weight_3d.variable,
                                                                     preview, is_chief=chief)])
    chosen = os.path.join(checkpoint_dir, "best.weights.h5" if monitor else "last.weights.h5")
    if chief:
        print(f"Weights to test and publish: {chosen} "
              f"({'lowest ' + monitor + ' on the validation data' if monitor else 'the last epoch'}).")
    return chosen


# --------------------------------------------------------------------------- test

def load_model(args, weights: str, num_views: int, mode: str, config=None):
    """(the model with ``weights`` loaded, its config, the sidecar info), at --precision and
    --jit-compile, after printing the start report of ``mode`` (devices, precision, XLA); a
    weights file of another config, or a concat model for another number of cameras, is an
    error saying what to do. config: a ``model.ModelConfig`` instead of --config / --fusion
    (ablations)."""
    from common import devices
    import model as model_lib
    from common import weights_files
    devices.configure(args)  # the dtype policy of --precision, before the model is built
    config = config or model_lib.get_config(args.config, args.fusion)
    local_weights = weights_files.resolve_weights(weights, args.weights_sha256)
    weights_files.check_weights_config(local_weights, config.name)
    network = model_lib.build_model(config, num_views=num_views)
    try:
        info = weights_files.load_weights(network, local_weights, config.name)
    except ValueError as error:
        if config.fusion != "concat":
            raise
        raise UsageError(f"{error}\nA '{config.name}' model (concat fusion: slot k is camera k) runs on exactly "
                         f"the number of cameras it was trained with, and this rig has {num_views}. Use weights "
                         "trained with --fusion mean, which take any number of cameras.") from error
    devices.apply_jit_compile(network, args.jit_compile)
    print(devices.start_report(args, mode, config.name, network))
    return network, config, info


def run_test(args, weights: str | None = None, config=None) -> dict:
    """Run the protocol on the test subjects with ``weights``; print, write and plot. Returns
    the metrics.json content. config: as ``load_model``'s."""
    import data_loader
    import evaluation
    from common import weights_files

    weights = weights or args.weights
    if not weights:
        raise UsageError("--mode test needs --weights (a .weights.h5 file or a URL).")
    test_subjects = args.test_subjects or list(h36m_utils.TEST_SUBJECTS)
    sequences, cameras, report = load_split(args, test_subjects, "test")
    print(h36m_utils.describe_sequences({"test": sequences}, [report]))
    h36m_utils.require_complete([report], "the test", args.allow_partial)
    camera_ids = tuple(args.test_cameras or h36m_utils.CAMERA_IDS)
    network, config, info = load_model(args, weights, len(camera_ids), "test", config=config)
    num_frames = data_loader.count_frames(sequences, args.test_stride)
    print(f"Testing {weights} ({config.name}; {weights_files.describe_weights(info)}) on {num_frames} frames of "
          f"{', '.join(test_subjects)} (frame stride {args.test_stride}), --root {args.root}.")
    predictions = evaluation.predict(network, sequences, cameras, stride=args.test_stride,
                                     image_size=config.image_size, box_mm=args.box_mm, root=args.root,
                                     batch_size=args.batch_size, refinements=args.refinements,
                                     camera_ids=camera_ids, progress=args.verbose > 0)
    summary, covered = evaluation.summarize(predictions), evaluation.coverage(sequences, report, predictions,
                                                                                 args.test_stride)
    print(evaluation.format_table(summary, args.root, covered))
    json_path, csv_path = evaluation.write_metrics(
        args.output_dir, summary, weights=weights, config=config.name, root=args.root, covered=covered,
        weights_info={"file": weights, **{k: v for k, v in (info or {}).items() if k != "logs"}},
        extra={"subjects": test_subjects, "test_stride": args.test_stride, "box_mm": args.box_mm,
               "cameras": list(camera_ids)})
    written = evaluation.write_predictions(args.output_dir, predictions, camera_ids)
    pictures = evaluation.draw_pictures(predictions, args.images_dir)
    print(f"Wrote {json_path}, {csv_path}, {written[0]}, {written[1]}, {pictures[0]} and {pictures[1]}.")
    evaluation.require_complete(covered, args.output_dir, args.allow_partial)
    with open(json_path, encoding="utf-8") as handle:
        return json.load(handle)


# --------------------------------------------------------------------------- predict

def run_predict(args) -> dict:
    """The model on a user's own calibrated rig: --videos + --calibration -> files in --output-dir."""
    from rig import predict
    rig = predict.load_rig(args.calibration, args.videos, args.calibration_units, args.calibration_subject,
                           args.background_videos)
    network, config, _ = load_model(args, args.weights, len(rig.cameras), "predict")
    return predict.run(network, config, rig, output_dir=args.output_dir, stride=args.stride, box_mm=args.box_mm,
                       batch_size=args.batch_size, refinements=args.refinements, progress=args.verbose > 0)


# --------------------------------------------------------------------------- demo

def demo_args(args) -> argparse.Namespace:
    """The demo's settings: the synthetic set under --demo-dir, tiny, the fixed budget.

    Output folders and verbosity come from the command line; everything else is fixed.
    """
    from synthetic import synthetic_h36m
    root = os.path.abspath(args.demo_dir)
    subjects = synthetic_h36m.DEFAULT_SUBJECTS
    return argparse.Namespace(**{
        **vars(args), **DEMO_SETTINGS,
        "data_dir": os.path.join(root, "Data"), "labels_dir": os.path.join(root, "Labels"),
        "cameras": os.path.join(root, "Labels", "camera-parameters.json"),
        "train_subjects": [s for s in subjects if s not in h36m_utils.TEST_SUBJECTS],
        "test_subjects": [s for s in subjects if s in h36m_utils.TEST_SUBJECTS]})


def ensure_synthetic_data(root: str) -> None:
    """Generate the default synthetic set into ``root`` unless it is already there.

    It is written to ``<root>.partial`` and renamed when complete, so an interrupted
    generation is never mistaken for a data set.
    """
    import shutil
    from synthetic import synthetic_h36m
    marker = os.path.join(root, "COMPLETE")
    if os.path.isfile(marker):
        print(f"Using the synthetic data set in {root} (delete the folder to regenerate it).")
        return
    if os.path.exists(root):
        raise UsageError(f"{root} exists but is not a complete synthetic data set (no COMPLETE "
                         "file). Delete it, or pass another --demo-dir.")
    partial = root + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"Generating the synthetic Human3.6M-layout data set in {root} (once) ...")
    synthetic_h36m.generate_dataset(partial, seed=0)
    with open(os.path.join(partial, "COMPLETE"), "w", encoding="utf-8") as handle:
        handle.write("generated by train_and_test.py --mode demo\n")
    os.replace(partial, root)


def run_demo(args) -> dict:
    """Synthetic data (no download) -> train tiny -> test on the held-out subject."""
    args = demo_args(args)
    start = time.time()
    ensure_synthetic_data(os.path.abspath(args.demo_dir))
    generated = time.time()
    chosen = run_train(args)
    trained = time.time()
    metrics = run_test(args, chosen)  # the protocol: the root found in the videos
    print("For comparison, the same weights on crops around the labelled pelvis (--root labels):")
    run_test(argparse.Namespace(**{**vars(args), "root": "labels",
                                   "output_dir": os.path.join(args.output_dir, "root-labels"),
                                   "images_dir": os.path.join(args.images_dir, "root-labels")}), chosen)
    print(f"Demo wall time: {time.time() - start:.0f} s (data {generated - start:.0f} s, training "
          f"{trained - generated:.0f} s, tests {time.time() - trained:.0f} s). These are results on "
          "SYNTHETIC data, not Human3.6M.")
    return metrics


def main(argv=None) -> int:
    args = None
    try:
        args = parse_args(argv)
        {"train": run_train, "test": run_test, "predict": run_predict, "demo": run_demo}[args.mode](args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = " Run the same command with --resume to continue." if args and args.mode != "test" else ""
        print(f"\nInterrupted.{resume}", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as error:
        # Raised with a message saying what is wrong and what to do (see the modules).
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # TensorFlow's runtime errors: say which file or worker, if we can
        message = explain_runtime_error(error, args)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


def explain_runtime_error(error: Exception, args) -> str | None:
    """A message for the runtime errors with a known cause (out of memory, a damaged crop cache, a lost
    worker); else None."""
    import tensorflow as tf
    if isinstance(error, tf.errors.ResourceExhaustedError) and args is not None:
        from common import devices
        settings = demo_args(args) if args.mode == "demo" else args
        return devices.explain_out_of_memory(settings, settings.config)
    if isinstance(error, tf.errors.DataLossError):
        from pipeline import crop_cache
        return crop_cache.explain_data_loss(args.cache_dir if args else None, error)
    from common import distribution
    if args is not None and args.strategy == "multiworker" and isinstance(error, distribution.LOST_WORKER_ERRORS):
        return (f"a worker of the multi-worker run was lost or stopped answering ({type(error).__name__}: "
                f"{distribution.describe_lost_worker(error)}). Start every worker again with the same command "
                f"and --resume: they continue from the chief's last backup in "
                f"{os.path.join(args.checkpoint_dir, 'backup')}.")
    return None


if __name__ == "__main__":
    sys.exit(main())
