"""crop_cache: built once, reused, rebuilt when a source changes, atomic, random shards, damage named."""
import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import tensorflow as tf

from pipeline import crop_cache
from common import crops
import h36m_utils
from common import geometry
from common import skeleton
from common import video_io
from media_files import break_frame, cut_after_header, with_video, write_frames, write_pose_cdf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

CONFIG = crops.CropConfig(32)


@pytest.fixture(scope="module")
def index(synthetic_dataset):
    """(sequences, views) of the synthetic set: every sequence with its 4 cameras."""
    sequences, _ = h36m_utils.find_sequences(str(synthetic_dataset.data_dir), str(synthetic_dataset.labels_dir),
                                             synthetic_dataset.subjects)
    cameras = h36m_utils.load_cameras(str(synthetic_dataset.cameras_path))
    return sequences, [[cameras[s.subject][c] for c in h36m_utils.CAMERA_IDS] for s in sequences]


def build(index, cache_dir, stride=4, count=4, **kwargs):
    sequences, views = index
    return crop_cache.ensure_cache(sequences[:count], views[:count], CONFIG, stride, str(cache_dir), **kwargs)


def records_of(path):
    return [crop_cache.parse_record(record, 4) for record in tf.data.TFRecordDataset(path)]


def test_built_once_reused_then_rebuilt_when_a_source_changes(index, tmp_path, capsys):
    first = build(index, tmp_path)
    assert first.build_seconds is not None and first.num_samples == sum(
        len(range(0, s.num_frames, 4)) for s in index[0][:4])
    assert "Building the crop cache" in capsys.readouterr().out
    again = build(index, tmp_path)
    assert again.build_seconds is None and again.folder == first.folder and again.shards == first.shards
    assert "reused" in capsys.readouterr().out
    assert build(index, tmp_path, stride=5).folder != first.folder  # another stride: another cache
    assert "other crop cache(s)" in capsys.readouterr().out  # the other ones are pointed out


def test_the_key_follows_file_contents_not_paths_or_times(index, tmp_path):
    sequences, views = index
    first = build(index, tmp_path, count=2, verbose=False)
    # Re-extracted archives, a moved data folder: the same bytes at another path and time keep the cache.
    video = tmp_path / "elsewhere" / "video.mp4"
    video.parent.mkdir()
    shutil.copyfile(sequences[0].videos["55011271"], video)
    os.utime(video, ns=(1, 1))
    moved = crop_cache.ensure_cache([with_video(sequences[0], "55011271", video), sequences[1]], views[:2],
                                    CONFIG, 4, str(tmp_path), verbose=False)
    assert moved.folder == first.folder and moved.build_seconds is None
    # A file larger than the two ends the key reads: what changes the key, and what does not.
    size, sampled = 3 * crop_cache.FINGERPRINT_BYTES, crop_cache.FINGERPRINT_BYTES
    original = np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes()

    def key_with(name, content):
        (tmp_path / name).write_bytes(content)
        os.utime(tmp_path / name, ns=(2, 2))
        changed = [with_video(sequences[0], "55011271", tmp_path / name), sequences[1]]
        return crop_cache.cache_folder(str(tmp_path), crop_cache.cache_key(changed, views[:2], CONFIG, 4))

    def flipped(offset):
        return original[:offset] + bytes([original[offset] ^ 1]) + original[offset + 1:]

    reference = key_with("original.bin", original)
    assert key_with("copy.bin", original) == reference
    assert key_with("head.bin", flipped(sampled // 2)) != reference  # a byte in the middle of the first MiB
    assert key_with("tail.bin", flipped(size - sampled // 2)) != reference  # ... of the last MiB
    assert key_with("longer.bin", original + b"\0") != reference
    assert key_with("middle.bin", flipped(size // 2)) == reference  # the key's price: the middle is not read


def test_a_video_cut_short_trims_its_sequence_and_says_so(index, tmp_path, capsys):
    sequences, views = index
    video = tmp_path / "cut.mp4"
    shutil.copyfile(sequences[0].videos["58860488"], video)
    cut_after_header(video, keep_frames=13)  # its container still lists every frame
    trimmed = [with_video(sequences[0], "58860488", video), sequences[1]]
    cache = crop_cache.ensure_cache(trimmed, views[:2], CONFIG, 4, str(tmp_path / "cache"))
    kept = sorted((r["sequence"].numpy().decode(), int(r["frame"])) for shard in cache.shards for r in records_of(shard))
    assert kept == sorted([(sequences[0].name, f) for f in (0, 4, 8, 12)]
                          + [(sequences[1].name, f) for f in range(0, sequences[1].num_frames, 4)])
    assert cache.num_samples == len(kept)
    crop_cache.verify_shards(cache)  # the manifest counts what the shards hold
    planned = len(range(0, sequences[0].num_frames, 4))
    note = (f"{sequences[0].subject} {sequences[0].name}: kept 4 of {planned} frames, those before frame 13: "
            f"video {video} decodes 13 of the {video_io.video_frame_count(str(video))} frames its container lists")
    assert note in capsys.readouterr().out
    manifest = json.loads(open(os.path.join(cache.folder, crop_cache.MANIFEST_NAME)).read())
    assert manifest["trimmed"] == [note]
    reused = crop_cache.ensure_cache(trimmed, views[:2], CONFIG, 4, str(tmp_path / "cache"))
    assert reused.build_seconds is None and note in capsys.readouterr().out  # said again on every use
    # A frame that does not decode before others that do is damage, not an end: an error naming it.
    break_frame(video, 6)
    with pytest.raises(ValueError, match=re.escape(f"Video {video}: frame 6 does not decode, but later frames do")):
        crop_cache.ensure_cache(trimmed[:1], views[:1], CONFIG, 4, str(tmp_path / "cache"), verbose=False)


def test_the_report_counts_labelled_joints_outside_the_box(index, tmp_path, capsys):
    """Counted against an independent reading of the records: the box is the centre S x S window of
    each cached crop, whose outer pixel edges are at pad - 1/2 and pad + S - 1/2."""
    sequences, views = index
    config = crops.CropConfig(32, box_mm=1200)  # a small box: many joints fall outside
    cache = crop_cache.ensure_cache(sequences[:3], views[:3], config, 4, str(tmp_path))
    records = [record for shard in cache.shards for record in records_of(shard)]
    cut = np.stack([np.stack([geometry.apply_affine(points, crop) for points, crop in
                              zip(r["kp2d"].numpy(), r["cache_crop"].numpy())]) for r in records])  # (N, V, J, 2)
    lower, upper = config.pad - 0.5, config.pad + config.image_size - 0.5
    outside = ((cut < lower) | (cut > upper)).any(axis=-1).sum(axis=(0, 1))
    manifest = json.loads(open(os.path.join(cache.folder, crop_cache.MANIFEST_NAME)).read())
    assert manifest["joints_outside_box"] == {"box_mm": 1200, "labelled_views": 4 * len(records),
                                              "by_joint": dict(zip(skeleton.JOINT_NAMES_17, outside.tolist()))}

    def percent(names):
        joints = [skeleton.JOINT_NAMES_17.index(name) for name in names]
        return 100 * outside[joints].sum() / (len(joints) * 4 * len(records))

    assert 0 < percent(skeleton.JOINT_NAMES_17) < 100 and outside[0] == 0  # the pelvis is the box centre
    printed = capsys.readouterr().out
    assert (f"labelled joints outside the 1200 mm box (soft-argmax cannot reach them): "
            f"{percent(skeleton.JOINT_NAMES_17):.2f}% (") in printed
    for group, names in skeleton.JOINT_GROUPS_17.items():
        assert f"{group} {percent(names):.2f}%" in printed


def real_pose_world(sample_dir) -> np.ndarray:
    """(32, 3) world mm: the 17 labelled joints of the real sample's S1 frame at their places among
    the 32 (the others at the pelvis)."""
    annotation = json.loads((sample_dir / "h36m_coco.json").read_text())["annotations"][0]
    pose = np.repeat(np.array(annotation["keypoints_3d"]).reshape(17, 4)[:1, :3] * 1000, 32, axis=0)
    pose[list(skeleton.J17)] = np.array(annotation["keypoints_3d"]).reshape(17, 4)[:, :3] * 1000
    return pose


def test_videos_of_another_size_than_the_rule_are_cut_where_their_labels_are(tmp_path, h36m_sample_dir):
    """The size rule says 1000 x 1002 for S1's cameras 54138969 and 60457274; videos of 1000 x 1000
    there are cached all the same, and a white disc drawn on the right wrist's label lies in the
    cached crop where the crop matrix puts that label."""
    cameras = h36m_utils.load_cameras(str(h36m_sample_dir / "camera-parameters.json"))["S1"]
    assert h36m_utils.image_size("S1", "54138969") == (1000, 1002) == (cameras["54138969"].width,
                                                                         cameras["54138969"].height)
    world, frames, wrist = real_pose_world(h36m_sample_dir), 3, skeleton.JOINT_NAMES_17.index("right_wrist")
    labels = tmp_path / "Labels" / "S1" / "MyPoseFeatures"
    write_pose_cdf(labels / "D3_Positions" / "Directions 1.cdf", np.tile(world.reshape(1, 1, 96), (1, frames, 1)))
    for camera_id, camera in cameras.items():
        pixels = geometry.project(world, camera)
        write_pose_cdf(labels / "D2_Positions" / f"Directions 1.{camera_id}.cdf",
                       np.tile(pixels.reshape(1, 1, 64), (1, frames, 1)))
        image = np.zeros((1000, 1000, 3), np.uint8)
        centre = tuple(int(round(v * 16)) for v in pixels[skeleton.J17[wrist]])
        cv2.circle(image, centre, 12 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
        write_frames(tmp_path / "Data" / "S1" / "Videos" / f"Directions 1.{camera_id}.mp4", [image] * frames)
    sequences, _ = h36m_utils.find_sequences(str(tmp_path / "Data"), str(tmp_path / "Labels"), ["S1"])
    views = [[cameras[c] for c in h36m_utils.CAMERA_IDS]]
    cache = crop_cache.ensure_cache(sequences, views, crops.CropConfig(128), 1, str(tmp_path / "cache"),
                                    verbose=False)
    assert cache.num_samples == frames
    for record in [record for shard in cache.shards for record in records_of(shard)]:
        for view in range(4):
            jpeg = np.frombuffer(record["images"][view].numpy(), np.uint8)
            patch = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE).astype(float)
            ys, xs = np.nonzero(patch > 40)
            seen = np.average(np.stack([xs, ys], axis=1), axis=0, weights=patch[ys, xs])
            label = geometry.apply_affine(record["kp2d"][view, wrist].numpy(), record["cache_crop"][view].numpy())
            assert np.abs(seen - label).max() < 0.5, (view, seen, label)


def test_identical_sources_give_byte_identical_shards(index, tmp_path):
    one, two = build(index, tmp_path / "one", verbose=False), build(index, tmp_path / "two", verbose=False)
    assert [os.path.basename(p) for p in one.shards] == [os.path.basename(p) for p in two.shards]
    for a, b in zip(one.shards, two.shards):
        assert open(a, "rb").read() == open(b, "rb").read()


def test_every_shard_is_a_random_sample_in_random_order(index, tmp_path):
    cache = build(index, tmp_path, stride=1, count=8, verbose=False)
    ids = [[int(r["sample_id"]) for r in records_of(path)] for path in cache.shards]
    assert sorted(i for shard in ids for i in shard) == list(range(cache.num_samples))  # each sample once
    sequence_of = np.repeat(np.arange(8), [s.num_frames for s in index[0][:8]])
    for shard in ids:
        assert len(set(sequence_of[shard])) >= 6  # drawn from (nearly) every sequence
        assert abs(np.corrcoef(np.arange(len(shard)), shard)[0, 1]) < 0.7  # not in stream order (which gives 1)


def test_damaged_shards_are_errors_naming_the_file(index, tmp_path):
    cache = build(index, tmp_path, verbose=False)
    victim = cache.shards[1]
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    open(victim, "wb").write(bytes(data))
    assert crop_cache.open_cache(cache.folder) is not None  # the sizes still agree ...
    with pytest.raises(ValueError, match=f"shard {victim} is corrupt"):  # ... the checksums do not
        crop_cache.verify_shards(cache)
    with pytest.raises(tf.errors.DataLossError):
        for _ in tf.data.TFRecordDataset(victim):
            pass
    open(victim, "wb").write(bytes(data[:-100]))  # cut short, as by a full disk or a partial copy
    with pytest.raises(ValueError, match=f"shard {victim} is {len(data) - 100} bytes but the manifest says"):
        build(index, tmp_path)


def test_a_failed_build_leaves_nothing_and_a_killed_one_is_cleaned_up(index, tmp_path):
    sequences, views = index
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"not a video at all" * 100)
    broken = dataclasses.replace(sequences[2], videos={**sequences[2].videos, "55011271": str(bad_video)})
    with pytest.raises(ValueError, match=f"Cannot open video {bad_video}"):
        crop_cache.ensure_cache([*sequences[:2], broken], views[:3], CONFIG, 4, str(tmp_path / "cache"))
    assert [name for name in os.listdir(tmp_path / "cache") if not name.endswith(".lock")] == []
    # A build killed outright leaves its .partial folder; the next build removes it.
    key = crop_cache.cache_key(sequences[:4], views[:4], CONFIG, 4)
    leftover = crop_cache.cache_folder(str(tmp_path / "cache"), key) + ".partial"
    os.makedirs(leftover)
    open(os.path.join(leftover, "bucket-00000.tmp"), "w").write("junk")
    build(index, tmp_path / "cache", verbose=False)
    assert not os.path.exists(leftover)


def test_two_processes_build_the_cache_once(synthetic_dataset, tmp_path):
    script = textwrap.dedent(f"""
        from pipeline import crop_cache
        from common import crops
        import h36m_utils
        sequences, _ = h36m_utils.find_sequences({str(synthetic_dataset.data_dir)!r},
                                                 {str(synthetic_dataset.labels_dir)!r}, ["S1"])
        cameras = h36m_utils.load_cameras({str(synthetic_dataset.cameras_path)!r})
        views = [[cameras[s.subject][c] for c in h36m_utils.CAMERA_IDS] for s in sequences]
        crop_cache.ensure_cache(sequences[:6], views[:6], crops.CropConfig(32), 2, {str(tmp_path)!r})
    """)
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, cwd=REPO_ROOT) for _ in range(2)]
    try:
        outputs = [process.communicate(timeout=240)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sum("built in" in output for output in outputs) == 1, outputs
    assert sum("(reused)" in output for output in outputs) == 1, outputs
