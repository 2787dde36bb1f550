"""The crop cache: every kept frame of a split, streamed ONCE from the videos into sharded TFRecords.

Why: decoding full 1000 px H.264 frames costs more per sample than a GPU step can wait for,
and a stream that reads a few sequences forward at a time gives batches of neighbouring
frames of a few sequences. So the videos are read once, forward (``grab`` for every frame,
``retrieve`` for the kept ones, never a seek), and each kept frame's V views are stored as
JPEG crops cut generously around the root box (``crops.CropConfig.cache_size``), with the
crop matrix, the cameras and the 2D/3D labels beside them. Training then reads small JPEGs
in random order (``data_loader``).

Layout of one cache (a folder under the cache dir, named by its key's hash)::

    crops<S>-stride<k>-<n>seq-<hash>/manifest.json     the key, the shards, sizes, build time, what it found
    crops<S>-stride<k>-<n>seq-<hash>/shard-00000-of-00012.tfrecord ...

Samples are dealt to the shards by a seeded random permutation, and each shard holds its
samples in that random order, so every shard is a uniform sample of the whole split: reading
shards in any order gives i.i.d.-like batches, and shards are the unit of input sharding
across ``tf.distribute`` workers. The key holds everything that shapes the cache (sequence
files by size and a fingerprint of their content, cameras, frame stride, crop size, box size,
padding, JPEG quality, format version): a cache is reused only when its key matches, else a new
one is built. A build writes into a temporary folder that is renamed when complete (a partial cache
is never used), under a file lock (two processes never build the same cache twice).

Record format (``tf.train.Example``), V views, J = 17 joints, numbers as raw float64 bytes:
``sample_id`` int64, ``subject`` / ``action`` / ``sequence`` bytes, ``frame`` int64,
``images`` V JPEG strings (BGR-encoded by OpenCV, so they decode to RGB), ``cache_crop``
(V, 3, 3) frame -> cached-crop pixels, ``K`` (V, 3, 3), ``Rt`` (V, 3, 4), ``dist`` (V, 6),
``kp2d`` (V, J, 2) frame pixels (distorted, the D2 labels), ``kp3d`` (J, 3) world mm, ``rig``
(4, 4) world -> rig frame of the V cameras (``rig_frame``).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence as SequenceOf

import cv2
import numpy as np
import tensorflow as tf

from common import crops
import h36m_utils
from common import geometry
from common import skeleton
from common import rig_frame
from common.progress import ProgressBar
from common.video_io import VideoEndedEarly, stream_frames

FORMAT_VERSION = 3  # 3: the rig frame's yaw no longer depends on the camera order
MANIFEST_NAME = "manifest.json"
JPEG_QUALITY = 95
# Chroma at half resolution (4:2:0, as in the H.264 source videos): 4:4:4 would decode 25% slower
# in every training step for colour detail the videos do not hold.
JPEG_PARAMETERS = (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                   cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)
SAMPLES_PER_SHARD = 256
MIN_SHARDS = 8  # enough files to share between a few input pipelines even for a small split
CACHE_DIR_ENV = "CROP_CACHE_DIR"
FINGERPRINT_BYTES = 1 << 20  # read at each end of a source file for the cache key


@dataclasses.dataclass(frozen=True)
class CropCache:
    """A complete cache on disk: its folder, shard paths, sample and byte counts.

    build_seconds: how long building took (None when an existing cache was reused). report: lines
    on what the build found in the data (labelled joints outside the crop box, sequences trimmed
    where a video ends early). shard_samples: the samples of each shard, in the order of ``shards``.
    """

    folder: str
    shards: tuple[str, ...]
    num_samples: int
    num_bytes: int
    num_views: int
    build_seconds: float | None
    report: tuple[str, ...] = ()
    shard_samples: tuple[int, ...] = ()

    def describe(self) -> str:
        how = (f"built in {self.build_seconds:.0f} s" if self.build_seconds is not None else "reused")
        return (f"Crop cache {self.folder}: {self.num_samples} frames x {self.num_views} views, "
                f"{self.num_bytes / 1e9:.2f} GB in {len(self.shards)} shards ({how}).")


def default_cache_dir() -> str:
    """``$CROP_CACHE_DIR`` when set, else ``cache`` in the working directory."""
    return os.environ.get(CACHE_DIR_ENV) or "cache"


# --------------------------------------------------------------------------- reading the sources

def read_labels(path, num_frames: int, dims: int, joints: SequenceOf[int] | None = None) -> np.ndarray:
    """The first ``num_frames`` poses of a D2 (dims=2) or D3 (dims=3) CDF: (num_frames, J, dims) float64.

    ``joints`` picks joints of the 32 (all when None). The wrong kind of file, too few rows or
    non-finite values raise ``ValueError`` naming the file.
    """
    poses = h36m_utils.read_poses(str(path))
    if poses.shape[-1] != dims:
        raise ValueError(f"Labels {path} hold {poses.shape[-1]}D points where {dims}D ones are expected "
                         f"({'D2' if dims == 2 else 'D3'}_Positions); the file is in the wrong folder.")
    if len(poses) < num_frames:
        raise ValueError(f"Labels {path} hold {len(poses)} frames but the sequence index expects "
                         f"{num_frames}. Rebuild the index with find_sequences, or replace the file.")
    poses = poses[:num_frames] if joints is None else poses[:num_frames, list(joints)]
    if not np.isfinite(poses).all():
        raise ValueError(f"Labels {path} contain NaN or infinite values in their first {num_frames} "
                         "frames; replace the file.")
    return poses


def frame_indices(num_frames: int, stride: int) -> range:
    """The 0-based frames a split keeps of a sequence: ``0, stride, 2 stride, ... < num_frames``."""
    return range(0, num_frames, stride)


# --------------------------------------------------------------------------- the key

def _file_stamp(path: str) -> list:
    """[size, content fingerprint]: what a file holds, not where it lies or when it was written, so
    that re-extracted archives or a moved data folder keep their cache."""
    status = os.stat(path)
    return [status.st_size, _fingerprint(os.path.realpath(path), status.st_size, status.st_mtime_ns)]


@functools.lru_cache(maxsize=None)
def _fingerprint(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of the first and last ``FINGERPRINT_BYTES`` of a file (all of it when smaller): a
    video's header and its end, where another encoding or a cut shows; whole videos would take
    minutes to read at every run. Memoised, as a run computes keys several times; ``size`` and
    ``mtime_ns`` only key the memo, so a rewritten file is read again."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        handle.seek(max(size - FINGERPRINT_BYTES, handle.tell()))
        digest.update(handle.read())
    return digest.hexdigest()


def _camera_stamp(camera: geometry.Camera) -> list:
    return [camera.id, camera.width, camera.height,
            *(np.asarray(a, np.float64).ravel().tolist() for a in (camera.R, camera.t, camera.K, camera.dist))]


def _sequence_stamp(sequence, camera_ids) -> dict:
    files = (sequence.d3_path, *(sequence.videos[c] for c in camera_ids), *(sequence.d2_paths[c] for c in camera_ids))
    return {"subject": sequence.subject, "name": sequence.name, "action": sequence.action,
            "num_frames": sequence.num_frames, "files": [_file_stamp(path) for path in files]}


def cache_key(sequences, views, config: crops.CropConfig, stride: int) -> dict:
    """Everything that shapes a cache, as JSON-able data (``views[i]``: sequence i's cameras)."""
    return {
        "format": FORMAT_VERSION, "image_size": config.image_size, "cache_size": config.cache_size,
        "box_mm": config.box_mm, "margin": config.margin, "stride": stride, "jpeg": list(JPEG_PARAMETERS),
        "sequences": [_sequence_stamp(s, [c.id for c in cams]) for s, cams in zip(sequences, views)],
        "cameras": [[_camera_stamp(camera) for camera in cams] for cams in views],
    }


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def cache_folder(cache_dir: str, key: dict) -> str:
    """``<cache_dir>/crops<S>-stride<k>-<n>seq-<hash>``: readable, and unique per key."""
    name = f"crops{key['image_size']}-stride{key['stride']}-{len(key['sequences'])}seq-{_digest(key)[:16]}"
    return os.path.join(cache_dir, name)


# --------------------------------------------------------------------------- opening a cache

def frames_held(sequences, camera_ids, stride: int, cache_dir: str | None = None) -> int | None:
    """The frames that a complete cache of every ``stride``-th frame of ``sequences`` (views
    ``camera_ids``) in ``cache_dir`` holds, whatever its crop settings: which frames a build keeps
    depends on the files alone. None while no such cache is built."""
    cache_dir = cache_dir or default_cache_dir()
    wanted = [_sequence_stamp(sequence, camera_ids) for sequence in sequences]
    for name in sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else ():
        manifest_path = os.path.join(cache_dir, name, MANIFEST_NAME)
        if os.path.isfile(manifest_path):
            with open(manifest_path, encoding="utf-8") as handle:
                manifest = json.load(handle)
            if manifest["key"]["stride"] == stride and manifest["key"]["sequences"] == wanted:
                return manifest["num_samples"]
    return None


def open_cache(folder: str, key: dict | None = None) -> CropCache | None:
    """The complete cache in ``folder``; None when there is none (or its key differs from ``key``).

    A manifest whose shards are missing or of the wrong size (a partial copy, a disk that
    filled up) raises ``ValueError`` naming the shard.
    """
    manifest_path = os.path.join(folder, MANIFEST_NAME)
    if not os.path.isfile(manifest_path):
        return None
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    if key is not None and manifest.get("key") != key:
        return None
    shards = []
    for shard in manifest["shards"]:
        path = os.path.join(folder, shard["file"])
        size = os.path.getsize(path) if os.path.isfile(path) else None
        if size != shard["bytes"]:
            raise ValueError(
                f"Crop cache shard {path} is {'missing' if size is None else f'{size} bytes'} but the "
                f"manifest says {shard['bytes']} bytes: the cache is partial or damaged. Delete the "
                f"folder {folder} and it is rebuilt on the next run.")
        shards.append(path)
    return CropCache(folder, tuple(shards), manifest["num_samples"], sum(s["bytes"] for s in manifest["shards"]),
                     manifest["num_views"], None, _report_lines(manifest),
                     tuple(shard["samples"] for shard in manifest["shards"]))


def verify_shards(cache: CropCache) -> None:
    """Read every record of every shard; raise ``ValueError`` naming the first corrupt shard.

    TFRecord files carry a checksum per record, so a flipped byte is found here (and during
    training as a ``tf.errors.DataLossError``, which does not name the file: call this then).
    """
    counted = 0
    for path in cache.shards:
        try:
            counted += sum(1 for _ in tf.data.TFRecordDataset(path))
        except tf.errors.DataLossError as error:
            raise ValueError(f"Crop cache shard {path} is corrupt ({error.message.splitlines()[0]}). "
                             f"Delete the folder {cache.folder} and it is rebuilt on the next run.") from error
    if counted != cache.num_samples:
        raise ValueError(f"Crop cache {cache.folder} holds {counted} records but its manifest says "
                         f"{cache.num_samples}. Delete the folder and it is rebuilt on the next run.")


# --------------------------------------------------------------------------- records

def _float_bytes(array) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.asarray(array, "<f8").tobytes()]))


def _bytes(*values: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize_sample(sample_id: int, sequence, frame: int, jpegs: list[bytes], arrays: dict) -> bytes:
    """One record: ``arrays`` holds cache_crop, K, Rt, dist, kp2d, kp3d, rig (shapes in the module doc)."""
    feature = {"sample_id": _int(sample_id), "frame": _int(frame), "images": _bytes(*jpegs),
               "subject": _bytes(sequence.subject.encode()), "action": _bytes(sequence.action.encode()),
               "sequence": _bytes(sequence.name.encode()),
               **{name: _float_bytes(value) for name, value in arrays.items()}}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


NUMERIC_SHAPES = {"cache_crop": (3, 3), "K": (3, 3), "Rt": (3, 4), "dist": (geometry.DIST_SIZE,)}  # per view


def parse_record(record: tf.Tensor, num_views: int, num_joints: int = len(skeleton.J17)) -> dict:
    """A serialized record (scalar tf.string) -> dict of tensors (graph-friendly, for ``Dataset.map``).

    images: (V,) JPEG strings; cache_crop, K: (V, 3, 3) float64; Rt: (V, 3, 4); dist: (V, 6);
    kp2d: (V, J, 2) frame pixels; kp3d: (J, 3) world mm; rig: (4, 4) world -> rig frame;
    sample_id, frame: int64 scalars;
    subject, action, sequence: string scalars.
    """
    raw = tf.io.FixedLenFeature([], tf.string)
    spec = {"images": tf.io.FixedLenFeature([num_views], tf.string), "sample_id": tf.io.FixedLenFeature([], tf.int64),
            "frame": tf.io.FixedLenFeature([], tf.int64), "subject": raw, "action": raw, "sequence": raw,
            "kp2d": raw, "kp3d": raw, "rig": raw, **{name: raw for name in NUMERIC_SHAPES}}
    fields = tf.io.parse_single_example(record, spec)
    shapes = {**{name: (num_views, *shape) for name, shape in NUMERIC_SHAPES.items()},
              "kp2d": (num_views, num_joints, 2), "kp3d": (num_joints, 3), "rig": (4, 4)}
    for name, shape in shapes.items():
        fields[name] = tf.reshape(tf.io.decode_raw(fields[name], tf.float64), shape)
    return fields


def _sample_id_of(record: bytes) -> int:
    return tf.train.Example.FromString(record).features.feature["sample_id"].int64_list.value[0]


# --------------------------------------------------------------------------- building

class _Buckets:
    """One temporary TFRecord file per shard; records are dealt to them by a seeded permutation."""

    def __init__(self, folder: str, num_samples: int, num_shards: int, seed: int):
        self.rank = np.empty(num_samples, np.int64)
        self.rank[np.random.default_rng(seed).permutation(num_samples)] = np.arange(num_samples)
        self.paths = [os.path.join(folder, f"bucket-{k:05d}.tmp") for k in range(num_shards)]
        self.writers = [tf.io.TFRecordWriter(path) for path in self.paths]
        self.locks = [threading.Lock() for _ in self.paths]

    def write(self, sample_id: int, record: bytes) -> None:
        shard = int(self.rank[sample_id]) % len(self.writers)
        with self.locks[shard]:
            self.writers[shard].write(record)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.tfrecord"


def _finish_shards(buckets: _Buckets, folder: str) -> list[dict]:
    """Rewrite every bucket as a shard whose records follow the permutation (a random order)."""
    shards = []
    for index, bucket in enumerate(buckets.paths):
        records = [record.numpy() for record in tf.data.TFRecordDataset(bucket)]
        records.sort(key=lambda record: buckets.rank[_sample_id_of(record)])
        name = _shard_name(index, len(buckets.paths))
        with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
            for record in records:
                writer.write(record)
        os.remove(bucket)
        shards.append({"file": name, "samples": len(records), "bytes": os.path.getsize(os.path.join(folder, name))})
    return shards


@dataclasses.dataclass
class _Tally:
    """What a build (or one sequence of it) kept, for its manifest and report."""

    samples: int = 0
    trimmed: list = dataclasses.field(default_factory=list)  # a line per sequence cut where a video ends
    # Per joint, the views whose labelled joint lies outside the box (what soft-argmax cannot reach).
    outside: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(skeleton.J17), np.int64))

    def add(self, other: "_Tally") -> None:
        self.samples += other.samples
        self.trimmed += other.trimmed
        self.outside += other.outside


def _trim_note(sequence, ended: VideoEndedEarly, kept: int, planned: int) -> str:
    return (f"{sequence.subject} {sequence.name}: kept {kept} of {planned} frames, those before frame {ended.frames}: "
            f"video {ended.path} decodes {ended.frames} of the {ended.claimed} frames its container lists")


def _outside_box(points: np.ndarray, center: np.ndarray, side: float) -> np.ndarray:
    """(J,) 1 where a (J, 2) labelled point lies outside the square box (frame pixels), else 0."""
    return (np.abs(points - center).max(axis=-1) > side / 2).astype(np.int64)


def _outside_box_summary(tally: _Tally, num_views: int, box_mm: float) -> dict:
    return {"box_mm": box_mm, "labelled_views": tally.samples * num_views,
            "by_joint": dict(zip(skeleton.JOINT_NAMES_17, tally.outside.tolist()))}


def _outside_box_line(summary: dict) -> str:
    """'labelled joints outside the 2000 mm box ...: 0.42% (torso 0.00%, head 0.10%, ...)'."""
    views, by_joint = max(summary["labelled_views"], 1), summary["by_joint"]
    groups = ", ".join(f"{group} {100 * sum(by_joint[n] for n in names) / (views * len(names)):.2f}%"
                       for group, names in skeleton.JOINT_GROUPS_17.items())
    return (f"labelled joints outside the {summary['box_mm']:.0f} mm box (soft-argmax cannot reach them): "
            f"{100 * sum(by_joint.values()) / (views * len(by_joint)):.2f}% ({groups})")


def _report_lines(manifest: dict) -> tuple[str, ...]:
    """The manifest's findings as lines to print (none in a manifest of an older build)."""
    outside = [_outside_box_line(manifest["joints_outside_box"])] if "joints_outside_box" in manifest else []
    return tuple(outside + [f"trimmed (a video ends before its container says): {note}"
                            for note in manifest.get("trimmed", ())])


def _cache_sequence(sequence, cameras, frames: range, first_id: int, config: crops.CropConfig,
                    buckets: _Buckets, progress: ProgressBar, stop: threading.Event) -> _Tally:
    """Stream one sequence's V videos forward and write a record per kept frame (ids from ``first_id``).

    A video that ends before its container says ends the sequence there: the frames before it are
    kept, and the tally says so (the index counts frames from the containers; decoding them all to
    count would cost as much as this build).
    """
    tally = _Tally()
    if not len(frames):
        return tally
    count, size = frames[-1] + 1, config.cache_size
    pelvis = read_labels(sequence.d3_path, count, 3, (skeleton.PELVIS,))[:, 0]
    kp3d = read_labels(sequence.d3_path, count, 3, skeleton.J17)
    kp2d = np.stack([read_labels(sequence.d2_paths[c.id], count, 2, skeleton.J17) for c in cameras], axis=1)
    fixed = {"K": np.stack([c.K for c in cameras]), "dist": np.stack([c.dist for c in cameras]),
             "Rt": np.stack([np.concatenate([c.R, c.t[:, None]], axis=1) for c in cameras]),
             "rig": rig_frame.rig_frame(cameras).matrix()}
    paths = [sequence.videos[camera.id] for camera in cameras]
    streams = [stream_frames(path, frames) for path in paths]
    patch = np.empty((size, size, 3), np.uint8)
    try:
        for offset, (index, views) in enumerate(zip(frames, zip(*streams))):
            if stop.is_set():
                return tally
            jpegs, cache_crops = [], []
            for view, (frame, camera) in enumerate(zip(views, cameras)):  # frames of any size, as decoded
                center, side = crops.root_box(pelvis[index], camera, config.box_mm)
                tally.outside += _outside_box(kp2d[index, view], center, side)
                crop = crops.cache_crop_matrix(center, side, config)
                crops.crop_frame(frame, crop, size, out=patch)
                jpegs.append(cv2.imencode(".jpg", patch, JPEG_PARAMETERS)[1].tobytes())
                cache_crops.append(crop)
            arrays = {"cache_crop": np.stack(cache_crops), **fixed, "kp2d": kp2d[index], "kp3d": kp3d[index]}
            buckets.write(first_id + offset, serialize_sample(first_id + offset, sequence, index, jpegs, arrays))
            tally.samples += 1
            progress.advance()
    except VideoEndedEarly as ended:
        tally.trimmed.append(_trim_note(sequence, ended, tally.samples, len(frames)))
    finally:
        for stream in streams:
            stream.close()
    return tally


@contextlib.contextmanager
def _single_threaded_opencv():
    """OpenCV's own worker threads would fight the build's threads for the cores."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _build(folder: str, sequences, views, config: crops.CropConfig, stride: int, key: dict, workers: int,
           verbose: bool) -> dict:
    """Write a complete cache (shards + manifest) into ``folder``; returns the manifest."""
    started = time.perf_counter()
    frames = [frame_indices(s.num_frames, stride) for s in sequences]
    first_ids = np.concatenate([[0], np.cumsum([len(f) for f in frames])]).tolist()
    planned = first_ids[-1]  # ids are planned from the index; a trimmed sequence leaves its last ones unused
    num_shards = min(planned, max(MIN_SHARDS, -(-planned // SAMPLES_PER_SHARD)))
    buckets = _Buckets(folder, planned, num_shards, seed=int(_digest(key)[:15], 16))
    progress, stop, tally = ProgressBar(planned, "caching frames", verbose), threading.Event(), _Tally()
    try:
        with _single_threaded_opencv(), concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(_cache_sequence, sequence, cams, f, first, config, buckets, progress, stop)
                       for sequence, cams, f, first in zip(sequences, views, frames, first_ids)]
            try:
                for future in concurrent.futures.as_completed(futures):
                    tally.add(future.result())  # the first error (naming its file) stops the build
            finally:
                stop.set()
                for future in futures:
                    future.cancel()
    finally:
        progress.finish()
        buckets.close()
    shards = _finish_shards(buckets, folder)
    manifest = {"key": key, "num_samples": tally.samples, "num_views": len(views[0]), "shards": shards,
                "build_seconds": time.perf_counter() - started, "trimmed": sorted(tally.trimmed),
                "joints_outside_box": _outside_box_summary(tally, len(views[0]), config.box_mm)}
    with open(os.path.join(folder, MANIFEST_NAME), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    return manifest


@contextlib.contextmanager
def _locked(path: str):
    """An exclusive lock on ``path`` (a file beside the cache), waiting with a message if held."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"Waiting for another process that is building the crop cache ({path}) ...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_cache(sequences, views, config: crops.CropConfig, stride: int = 1, cache_dir: str | None = None,
                 workers: int | None = None, verbose: bool = True) -> CropCache:
    """The cache of every ``stride``-th frame of ``sequences``: reused when its key matches, else built.

    views: for each sequence, its V ``geometry.Camera`` in the views' order. cache_dir:
    where caches live (``default_cache_dir()`` when None). workers: sequences cached at once
    (default: the CPU count). Prints what it did (frames, GB, seconds) unless ``verbose`` is False.
    Errors in the sources (a corrupt video, short labels) raise ``ValueError`` naming the file,
    and leave no cache behind.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    key = cache_key(sequences, views, config, stride)
    folder = cache_folder(cache_dir, key)
    with _locked(folder + ".lock"):
        cache = open_cache(folder, key)
        if cache is None:
            if verbose:
                frames = sum(len(frame_indices(s.num_frames, stride)) for s in sequences)
                print(f"Building the crop cache {folder} (once): {frames} frames of {len(sequences)} "
                      f"sequences, frame stride {stride}, {config.cache_size} px JPEG crops ...", flush=True)
            cache = _build_atomically(folder, sequences, views, config, stride, key,
                                      workers or os.cpu_count() or 1, verbose)
    if verbose:
        print(cache.describe() + _other_caches_note(cache_dir, folder), *cache.report, sep="\n  ", flush=True)
    return cache


def _build_atomically(folder, sequences, views, config, stride, key, workers, verbose) -> CropCache:
    partial = f"{folder}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed build (we hold the lock)
    shutil.rmtree(folder, ignore_errors=True)  # a cache of another key under this name: stale
    os.makedirs(partial)
    try:
        manifest = _build(partial, sequences, views, config, stride, key, workers, verbose)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dataclasses.replace(open_cache(folder, key), build_seconds=manifest["build_seconds"])


def _other_caches_note(cache_dir: str, keep: str) -> str:
    """A note on the other caches in ``cache_dir`` (old settings or data) and their size."""
    others = [os.path.join(cache_dir, name) for name in os.listdir(cache_dir)
              if name.startswith("crops") and os.path.isdir(os.path.join(cache_dir, name))
              and os.path.join(cache_dir, name) != keep and not name.endswith(".partial")]
    if not others:
        return ""
    size = sum(os.path.getsize(os.path.join(folder, name)) for folder in others for name in os.listdir(folder))
    return (f" {cache_dir} also holds {len(others)} other crop cache(s), {size / 1e9:.2f} GB, of other "
            "settings or data: delete the ones you no longer use.")


def explain_data_loss(cache_dir: str | None, error: Exception) -> str:
    """A message for a ``tf.errors.DataLossError`` met while reading: which shard of which cache
    under ``cache_dir`` is corrupt (every cache is read back to find it), and what to do."""
    cache_dir = cache_dir or default_cache_dir()
    folders = sorted(os.path.join(cache_dir, name) for name in os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []
    for folder in folders:
        if not os.path.isdir(folder) or folder.endswith(".partial"):
            continue
        try:
            cache = open_cache(folder)
            if cache is not None:
                verify_shards(cache)
        except ValueError as found:
            return str(found)
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    return (f"A data file could not be read ({first_line}), but every crop cache in {cache_dir} reads back "
            "whole; check the disk, then delete the cache folder to rebuild it.")
