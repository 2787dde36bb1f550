"""The ``tf.data`` pipeline: Human3.6M sequences -> synchronised multi-view crops + cameras + targets.

One element is one frame index of one sequence, seen by all V cameras at once::

    inputs  = {"images": uint8 (V, S, S, 3) RGB crops,
               "P": float32 (V, 3, 4) = crop @ K @ [R | t]   (pinhole, crop pixels, canonical mm),
               "K": float32 (V, 3, 3) = crop @ K,
               "dist": float32 (V, 6) [k1, k2, k3, p1, p2, tangential_factor]  (geometry.Camera.dist),
               "view_mask": float32 (V,) 1 for a view the model may see, 0 for one it may not}
    targets = {"kp2d": float32 (V, J, 2) crop pixels, DISTORTED (the D2 labels: what the image shows),
               "kp3d": float32 (J, 3) canonical mm (the D3 labels)}
    metadata = {"subject", "action", "sequence": tf.string, "frame": int32,
                "view": int32 (V,) which camera (index into the sequence's cameras) each view is,
                "crop": float64 (V, 3, 3) frame pixels -> crop pixels,
                "canonical": float64 (4, 4) world mm -> canonical mm}

and ``build_dataset`` batches them (a leading B axis on everything). J = the 17 joints
``skeleton.J17``. Label row ``i`` of every CDF belongs to video frame ``i`` (0-based).

The canonical frame is the rig frame of the V cameras (``rig_frame``: computed from the
cameras alone), so the model never depends on the calibration's world frame; training may
turn and move it further (``crop_augmentation``). MPJPE is the same in any rigid frame; map
predictions back to the world with ``metadata["canonical"]``.

Where the pixels come from: ``crop_cache`` streams the videos once into sharded TFRecords of
JPEG crops cut around the labelled pelvis with a margin (``crops.CropConfig.margin``). Here the
shards are read back and each crop is cut from its cached crop by an affine warp: without
augmentation the exact centre window (the box around the labelled pelvis, a pixel copy); with
it the box around the pelvis moved in 3D, scaled and turned (``crop_augmentation``). K, P and
the 2D targets go through the same matrix. Only TensorFlow ops run per sample (no Python
callback), so a process that stops reading mid-epoch still exits cleanly.

Training order: the cache's shards are each a random sample of the split in random order;
every epoch reads them in a new random order, several at once, through a shuffle buffer, so
a batch holds frames of many sequences at unrelated moments. Each sample's augmentation is
drawn from a stateless generator keyed by (seed, epoch, sample): the same sample gets the same
crop whatever the number of workers or the read order; a validation pass (``training=False``
with an augmentation) draws with epoch 0, the same crops every epoch.
"""
from __future__ import annotations

import secrets
from collections.abc import Sequence as SequenceOf

import tensorflow as tf

from pipeline import crop_augmentation
from pipeline import crop_cache
from common import crops
import h36m_utils
from common import geometry

# Shards read at once when training (each is a random sample of the split; more mixes more).
READ_SHARDS_AT_ONCE = 16
METADATA_KEYS = ("subject", "action", "sequence", "frame")


def count_frames(sequences, stride: int = 1, cache_dir: str | None = None,
                 camera_ids: SequenceOf[str] = h36m_utils.CAMERA_IDS) -> int:
    """Elements in one pass over every ``stride``-th frame of every sequence (= one training epoch).

    Once ``build_dataset`` has built their crop cache (in ``cache_dir``), the frames it holds: fewer
    than the index says where a video ends before its container says (the build keeps the frames
    that decode, and reports it). Before that, the index's count, which can only be larger.
    """
    held = crop_cache.frames_held(sequences, camera_ids, stride, cache_dir)
    if held is not None:
        return held
    return sum(len(crop_cache.frame_indices(sequence.num_frames, stride)) for sequence in sequences)


def steps_per_epoch(sequences, batch_size: int, stride: int = 1, cache_dir: str | None = None) -> int:
    """Training batches in one epoch: ``count_frames // batch_size`` (use it as Keras' steps_per_epoch)."""
    return max(count_frames(sequences, stride, cache_dir) // batch_size, 1)


def build_dataset(sequences, cameras, *, image_size: int, batch_size: int, training: bool, stride: int = 1,
                  box_mm: float = crops.CropConfig.box_mm, margin: float = crops.CropConfig.margin,
                  augmentation: crop_augmentation.Augmentation = crop_augmentation.NO_AUGMENTATION,
                  seed: int | None = None,
                  with_metadata: bool = False, camera_ids: SequenceOf[str] = h36m_utils.CAMERA_IDS,
                  shuffle_buffer: int = 1024, drop_remainder: bool | None = None,
                  input_context: tf.distribute.InputContext | None = None, cache_dir: str | None = None,
                  cache_workers: int | None = None, verbose: bool = True, start_sample: int = 0) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(inputs, targets)`` or ``(inputs, targets, metadata)``.

    sequences: ``h36m_utils.Sequence`` list (``find_sequences``); cameras: ``load_cameras`` output;
    image_size: crop side S; batch_size: the batch this data set yields (under
    ``distribute_datasets_from_function`` pass ``input_context.get_per_replica_batch_size(global)``).
    Shapes: images (B, V, S, S, 3) uint8; P (B, V, 3, 4); K (B, V, 3, 3); dist (B, V, 6);
    view_mask (B, V); kp2d (B, V, J, 2); kp3d (B, J, 3); metadata strings (B,), frame (B,) int32,
    view (B, V), crop (B, V, 3, 3), canonical (B, 4, 4); V = len(camera_ids).

    The crop cache of every ``stride``-th frame is built first if it is not there yet
    (``crop_cache.ensure_cache``, into ``cache_dir``).
    training=True: repeats forever (an epoch is ``steps_per_epoch(sequences, batch_size, stride)``
    batches); every epoch reads the shards in a new random order through a shuffle buffer of
    ``shuffle_buffer`` records (about V x 30 kB each at S = 256), full batches only.
    training=False: one pass over every cached frame in a fixed order, last batch kept.
    augmentation: the crops' random geometry (``crop_augmentation.Augmentation``; the default
    is the plain box around the labelled pelvis); seed: the orders and the augmentation (None:
    a fresh random seed); with a seed the stream is reproducible. start_sample (training): the
    stream begins after this many of its samples, as the stream from 0 would continue there (a
    resumed run); whole passes are not read, at most one pass's records are read and dropped.
    input_context: this input pipeline reads only its share of the shards
    (``distribute_datasets_from_function``); without it the data set is marked for
    ``AutoShardPolicy.DATA``, which ``experimental_distribute_dataset`` needs.
    """
    sequences, config = list(sequences), crops.CropConfig(image_size, box_mm, margin)
    if batch_size < 1 or stride < 1 or shuffle_buffer < 1:
        raise ValueError(f"batch_size, stride and shuffle_buffer must be >= 1; got {batch_size}, {stride}, "
                         f"{shuffle_buffer}")
    views = _cameras_per_sequence(sequences, cameras, camera_ids)
    cache = crop_cache.ensure_cache(sequences, views, config, stride, cache_dir, cache_workers, verbose)
    shards = list(cache.shards)
    if input_context is not None:
        shards = _shard(shards, input_context)
    seed = secrets.randbits(31) if seed is None else seed
    if training:
        samples = dict(zip(cache.shards, cache.shard_samples))
        first_pass, skipped = divmod(start_sample, sum(samples[shard] for shard in shards))
        records = tf.data.Dataset.counter(first_pass).flat_map(
            lambda epoch: _epoch_records(shards, epoch, seed, shuffle_buffer)).skip(skipped)
    else:
        records = tf.data.TFRecordDataset(shards).map(lambda record: (record, tf.constant(0, tf.int64)))
    dataset = records.map(lambda record, epoch: _sample(record, epoch, config, len(camera_ids), augmentation, seed),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=training if drop_remainder is None else drop_remainder)
    if not with_metadata:
        dataset = dataset.map(lambda inputs, targets, metadata: (inputs, targets))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if input_context is not None
        else tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def _epoch_records(shards: list[str], epoch: tf.Tensor, seed: int, shuffle_buffer: int) -> tf.data.Dataset:
    """(record, epoch) pairs of one pass: shards in a random order, interleaved, shuffled."""
    epoch_seed = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), epoch)
    order = tf.random.experimental.stateless_shuffle(tf.range(len(shards)), epoch_seed)
    files = tf.data.Dataset.from_tensor_slices(tf.gather(tf.constant(shards), order))
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(READ_SHARDS_AT_ONCE, len(shards)),
                               block_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # A Python seed (a tensor one breaks under a global seed); the records arrive in another order
    # every epoch, so the shuffle differs every epoch all the same.
    records = records.shuffle(shuffle_buffer, seed=seed)
    return records.map(lambda record: (record, epoch))


def _sample(record, epoch, config: crops.CropConfig, num_views: int, augmentation: crop_augmentation.Augmentation,
            seed: int):
    """One cached record -> (inputs, targets, metadata) with shapes of the module docstring."""
    fields = crop_cache.parse_record(record, num_views)
    cached = config.cache_size
    images = tf.stack([tf.io.decode_jpeg(fields["images"][view], channels=3) for view in range(num_views)])
    images = tf.ensure_shape(images, (num_views, cached, cached, 3))
    key = tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(tf.constant([seed, 1], tf.int64), epoch), fields["sample_id"])
    draws = crop_augmentation.draw(key, augmentation, num_views)
    rig, Rt, K_frame, dist = fields["rig"], fields["Rt"], fields["K"], fields["dist"]
    root = fields["kp3d"][0] + tf.linalg.matvec(rig[:3, :3], draws["root_offset"], transpose_a=True)
    crop = crop_augmentation.box_matrices(root, Rt, K_frame, dist, config.box_mm * draws["box_scale"],
                                          config.image_size, draws["roll"])  # (V, 3, 3) frame -> crop px
    images = crop_augmentation.warp_crops(images, crop @ tf.linalg.inv(fields["cache_crop"]), config.image_size)
    canonical = crop_augmentation.yaw_and_shift(draws["yaw"], draws["shift"]) @ rig  # world -> canonical
    K = crop @ K_frame
    P = K @ Rt @ tf.linalg.inv(canonical)
    kp2d = crop_augmentation.apply_affine(crop, fields["kp2d"])
    per_view = {name: tf.gather(value, draws["order"]) for name, value in
                {"images": images, "P": P, "K": K, "dist": dist, "kp2d": kp2d, "crop": crop}.items()}
    inputs = {"images": per_view["images"], "P": tf.cast(per_view["P"], tf.float32),
              "K": tf.cast(per_view["K"], tf.float32), "dist": tf.cast(per_view["dist"], tf.float32),
              "view_mask": tf.cast(tf.range(num_views) < draws["visible"], tf.float32)}
    targets = {"kp2d": tf.cast(per_view["kp2d"], tf.float32),
               "kp3d": tf.cast(crop_augmentation.transform_points(canonical, fields["kp3d"]), tf.float32)}
    metadata = {name: fields[name] for name in METADATA_KEYS}
    metadata.update(frame=tf.cast(metadata["frame"], tf.int32), view=draws["order"], crop=per_view["crop"],
                    canonical=canonical)
    return inputs, targets, metadata


def _cameras_per_sequence(sequences, cameras, camera_ids) -> list[list[geometry.Camera]]:
    """Check every sequence has its subject's cameras and files; return each one's V cameras."""
    if not sequences:
        raise ValueError("No sequences to load: the index found none. Print find_sequences' report "
                         "to see what was skipped, and check --data-dir / --labels-dir.")
    views = []
    for sequence in sequences:
        where = f"sequence {sequence.subject} '{sequence.name}'"
        if sequence.subject not in cameras:
            raise ValueError(f"The camera file has no subject {sequence.subject} ({where}); use the "
                             "camera file that covers every subject you load.")
        missing = [camera_id for camera_id in camera_ids if camera_id not in cameras[sequence.subject]
                   or camera_id not in sequence.videos or camera_id not in sequence.d2_paths]
        if missing:
            raise ValueError(f"{where} lacks camera(s) {missing} (camera file, video or D2 labels); "
                             "drop the sequence or pass camera_ids without them.")
        if sequence.num_frames < 1:
            raise ValueError(f"{where} has num_frames={sequence.num_frames}; nothing to read.")
        views.append([cameras[sequence.subject][camera_id] for camera_id in camera_ids])
    return views


def _shard(shards: list[str], context: tf.distribute.InputContext) -> list[str]:
    """This input pipeline's share of the cache's shard files."""
    if len(shards) < context.num_input_pipelines:
        raise ValueError(f"The crop cache has {len(shards)} shard files, fewer than the "
                         f"{context.num_input_pipelines} input pipelines that must share them; "
                         "load more data or use fewer workers.")
    return shards[context.input_pipeline_id::context.num_input_pipelines]
