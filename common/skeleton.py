"""The skeleton: Human3.6M's 32 joints, the standard 17 (pelvis first), their bones and sides."""

# The 32 joints of the CDF files. "site" joints are end effectors; several joints coincide
# in the recorded data (e.g. 0 and 11), which is why only 17 are used.
JOINT_NAMES_32 = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "right_toe", "right_toe_site",
    "left_hip", "left_knee", "left_ankle", "left_toe", "left_toe_site",
    "spine_base", "spine", "thorax", "neck", "head",
    "left_clavicle", "left_shoulder", "left_elbow", "left_wrist", "left_thumb",
    "left_thumb_site", "left_hand", "left_hand_site",
    "right_clavicle", "right_shoulder", "right_elbow", "right_wrist", "right_thumb",
    "right_thumb_site", "right_hand", "right_hand_site",
)
PARENTS_32 = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14,
              12, 16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30)

J17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
JOINT_NAMES_17 = tuple(JOINT_NAMES_32[i] for i in J17)
# Parent of each of the 17 joints, as an index into the 17 (pelvis is the root).
PARENTS_17 = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
EDGES_17 = tuple((parent, child) for child, parent in enumerate(PARENTS_17) if parent >= 0)
# (left, right) index pairs in the 17-joint order, for flips and per-side colours.
LEFT_RIGHT_17 = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))
LEFT_JOINTS_17 = tuple(left for left, _ in LEFT_RIGHT_17)
RIGHT_JOINTS_17 = tuple(right for _, right in LEFT_RIGHT_17)
PELVIS = 0
# The 17 joints in groups, for reports (e.g. which joints fall outside a crop).
JOINT_GROUPS_17 = {
    "torso": ("pelvis", "right_hip", "left_hip", "spine", "thorax", "left_shoulder", "right_shoulder"),
    "head": ("neck", "head"),
    "elbows": ("left_elbow", "right_elbow"),
    "wrists": ("left_wrist", "right_wrist"),
    "knees": ("left_knee", "right_knee"),
    "ankles": ("left_ankle", "right_ankle"),
}
