"""``--mode train``: one training run, wired from the settings: the splits, the crop augmentations,
the encoder's start, the loss and its weights (the one place to change what the model is trained
on: ``compile`` in ``run_train``), the strategy, and the fit loop of ``train.training``."""
from __future__ import annotations

import dataclasses
import os

import options
from options import UsageError
from train import splits


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


def dataset(args, sequences, cameras, config, batch_size, *, training, stride, augmentation=None, seed=None,
            input_context=None, drop_remainder=None, start_sample=0):
    """``data_loader.build_dataset`` with the run's crop size, box and cache."""
    from pipeline import crop_augmentation
    import data_loader
    return data_loader.build_dataset(sequences, cameras, image_size=config.image_size,
                                     batch_size=batch_size, training=training, stride=stride,
                                     box_mm=args.box_mm, augmentation=augmentation or crop_augmentation.NO_AUGMENTATION,
                                     seed=seed, input_context=input_context, cache_dir=args.cache_dir,
                                     drop_remainder=drop_remainder, start_sample=start_sample)


def warmup_3d_steps(args, total_steps: int) -> int:
    """--warmup-3d-steps, or options.WARMUP_3D_FRACTION of the run's training steps."""
    if args.warmup_3d_steps is not None:
        return args.warmup_3d_steps
    return round(options.WARMUP_3D_FRACTION * total_steps)


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

    config: a ``model_config.ModelConfig`` to train instead of --config / --fusion (ablations)."""
    from train import training  # before the data index: a run that would clobber another stops at once
    training.prepare_run_folders(args.checkpoint_dir, args.log_dir, args.resume, args.overwrite)
    sequences, val_sequences, cameras, val_text = splits.load_training_splits(args)

    import keras  # TensorFlow loads only once the data is known to be there
    import data_loader
    import model_config
    from common import devices
    from common import distribution
    from common import weights_files
    from train import losses
    from train import tensorboard_logging

    devices.configure(args)  # the dtype policy of --precision, before the model is built
    config = config or model_config.get_config(args.config, args.fusion)
    train_augmentation, val_augmentation = augmentations(args, config)
    strategy = distribution.make_strategy(args.strategy, args.cpu_replicas, args.worker_start_timeout)
    chief = distribution.is_chief_process(strategy)
    checkpoint_dir, log_dir = args.checkpoint_dir, args.log_dir
    keras.utils.set_random_seed(args.seed)

    def train_data(batches_run: int = 0):
        """The training stream after ``batches_run`` global batches (a resumed run continues it)."""
        def make(batch, context):
            samples = batches_run * args.batch_size // (context.num_input_pipelines if context else 1)
            return dataset(args, sequences, cameras, config, batch, training=True, stride=args.train_stride,
                           augmentation=train_augmentation, seed=args.seed, input_context=context,
                           start_sample=samples)
        return distribution.distributed_dataset(strategy, make, args.batch_size)
    train_data()  # builds the crop cache now: the steps below count the frames it holds
    # Counted once the cache is built: it holds fewer frames than the index where a video ends early.
    steps_per_epoch = args.steps_per_epoch or data_loader.steps_per_epoch(  # steps of the effective batch
        sequences, args.batch_size * args.accumulate_steps, args.train_stride, cache_dir=args.cache_dir)
    print(f"Training {config.name} on {len(sequences)} sequences (frame stride {args.train_stride}) with "
          f"--loss {args.loss}: {args.epochs} epochs x {steps_per_epoch} steps, global batch "
          f"{args.batch_size} on {strategy.num_replicas_in_sync} replica(s).\nTraining crops: "
          f"{train_augmentation.describe()}.\n{val_text}")
    validation = val_steps = preview = None
    if val_sequences:
        # Several replicas: full batches only, or Keras' per-output validation losses come out wrong.
        full_batches = strategy.num_replicas_in_sync > 1
        validation = dataset(args, val_sequences, cameras, config, args.batch_size, training=False,
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
        from rig import weights_origin
        weights_origin.record([os.path.join(checkpoint_dir, name) for name in ("best.weights.h5", "last.weights.h5")],
                              weights_origin.training_data(args.data_dir, args.train_subjects, args.train_stride))
        print(f"Weights to test and publish: {chosen} "
              f"({'lowest ' + monitor + ' on the validation data' if monitor else 'the last epoch'}).")
    return chosen
