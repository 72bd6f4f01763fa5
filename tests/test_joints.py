"""course_lib.joints: the LSP joint order and the left/right pairs."""

from __future__ import annotations

import torch

from course_lib.joints import FLIP_PAIRS, FLIP_PERMUTATION, JOINT_NAMES

LSP_ORDER = ["right ankle", "right knee", "right hip", "left hip", "left knee", "left ankle", "right wrist",
             "right elbow", "right shoulder", "left shoulder", "left elbow", "left wrist", "neck", "head top"]


# ------------------------------------------------------------------------------------------ joint names
def test_joint_names_follow_lsp_order():
    assert [n.replace("_", " ") for n in JOINT_NAMES] == LSP_ORDER


def test_flip_pairs_join_the_same_part_on_both_sides():
    paired = set()
    for right, left in FLIP_PAIRS:
        assert JOINT_NAMES[right].startswith("right_") and JOINT_NAMES[left].startswith("left_")
        assert JOINT_NAMES[right][len("right_"):] == JOINT_NAMES[left][len("left_"):]
        paired |= {right, left}
    assert sorted(set(range(14)) - paired) == [JOINT_NAMES.index("neck"), JOINT_NAMES.index("head_top")]
    perm = torch.tensor(FLIP_PERMUTATION)
    assert torch.equal(perm[perm], torch.arange(14))  # an involution
