"""Camera names as the field's tools vary them: ``cam01``, ``cam_01``, ``Cam1``, ``cam-01``,
``trial3.cam_01``, ``cam01_json`` all name camera ``cam_01``.

A name is reduced to its tokens (runs of letters, runs of digits), lower case, numbers without
leading zeros; a file or folder belongs to a camera when the camera's tokens appear, in order and
next to each other, among the file's (``trial3.cam_01`` -> trial 3 cam 1 holds cam 1; ``cam10``
does not hold ``cam1``, since 10 is not 1).
"""
from __future__ import annotations

import re


def name_tokens(name: str) -> tuple:
    """``"Trial3.Cam_01"`` -> ``("trial", "3", "cam", "1")``."""
    parts = re.findall(r"[a-z]+|\d+", str(name).lower())
    return tuple(part.lstrip("0") or "0" if part.isdigit() else part for part in parts)


def names_camera(text: str, camera: str) -> bool:
    """Whether the file or folder name ``text`` names ``camera`` (its tokens run inside text's)."""
    wanted, tokens = name_tokens(camera), name_tokens(text)
    return bool(wanted) and any(tokens[start:start + len(wanted)] == wanted
                                for start in range(len(tokens) - len(wanted) + 1))


def pair_by_name(items: dict, cameras, what: str, suffixes=(), partial: bool = False) -> tuple[dict, tuple]:
    """({camera: item}, notes) for ``items`` {file or folder name: item} and the camera names.

    Two items naming one camera, or one item naming two, are errors naming them. When names do not
    pair every camera but there are exactly as many items as cameras and the sorted pairing agrees
    with every name that did match, items and cameras pair in sorted order (pose2sim's rule) and
    the note says so with the pairing. Otherwise a camera without an item or an item without a
    camera is a ValueError naming them. ``what`` (e.g. "--videos DIR") starts every message; a name
    ending in one of ``suffixes`` (lower case, e.g. ".mp4") is matched without it (``01.mp4`` is not
    camera ``04``). partial: when every item names a camera and at least 2 cameras are named, the
    cameras without an item are left out of the result (the caller says what that means).
    """
    found, unmatched = {}, []
    for name in sorted(items):
        stem = name[:name.rfind(".")] if name.lower().endswith(tuple(suffixes)) else name
        matching = [camera for camera in cameras if names_camera(stem, camera)]
        if len(matching) > 1:
            raise ValueError(f"{what}: {name} names several cameras ({', '.join(matching)}). Rename it after one "
                             "of them.")
        if not matching:
            unmatched.append(name)
        elif matching[0] in found:
            raise ValueError(f"{what}: two for camera {matching[0]}: {found[matching[0]]} and {name}. Keep one "
                             "(move the other out of the folder).")
        else:
            found[matching[0]] = name
    missing = [camera for camera in cameras if camera not in found]
    if not unmatched and (not missing or (partial and len(found) >= 2)):
        return {camera: items[found[camera]] for camera in cameras if camera in found}, ()
    sorted_pairs = dict(zip(sorted(cameras), sorted(items)))
    if len(items) == len(cameras) and all(sorted_pairs[camera] == name for camera, name in found.items()):
        return {camera: items[sorted_pairs[camera]] for camera in cameras}, (
            f"{what}: the names do not all match the camera names, so they are paired with the cameras in sorted "
            "order, as pose2sim does: " + ", ".join(f"{camera} <- {sorted_pairs[camera]}" for camera in sorted(cameras))
            + ". Check this pairing, or name each after its camera.",)
    raise ValueError(
        f"{what} and the calibration do not match: " + "; ".join(part for part in (
            f"nothing for camera(s) {', '.join(missing)}" if missing else "",
            f"no camera for {', '.join(unmatched)}" if unmatched else "") if part)
        + f" ({len(items)} for {len(cameras)} cameras, so they cannot be paired in sorted order either). Name each "
          "after its camera (case, separators and leading zeros do not matter, a prefix like trial3. neither); the "
          f"cameras are {', '.join(cameras)}.")
