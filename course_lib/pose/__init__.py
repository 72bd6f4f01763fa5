r"""Human pose estimation as regression: DeepPose (Toshev & Szegedy, *DeepPose: Human Pose Estimation via
Deep Neural Networks*, CVPR 2014).

A pose is the vector of the image coordinates of :math:`k = 14` joints, in the order of the Leeds Sports Pose
dataset (Johnson & Everingham, BMVC 2010), :data:`JOINT_NAMES`. Joints are ``(..., 14, 2)`` tensors of
``(x, y)`` given as fractions of the image width and height (the same units as the course's boxes), so
``(0, 0)`` is the top-left corner of the image and ``(1, 1)`` its bottom-right corner.

* :func:`normalize_joints` / :func:`denormalize_joints` — joints relative to a box :math:`b`,
  :math:`N(y; b)` (DeepPose, eq. 1), and back.
* :func:`hflip_pose` — a horizontal flip of image *and* pose: mirror the x-coordinates **and** swap the left and
  right joints (:data:`FLIP_PAIRS`).
* :func:`pck`, :func:`pdj` — the fraction of joints closer to the truth than a fraction of the torso size.
* :func:`pose_loss` — the L2 loss :math:`\sum_i \lVert y_i - \psi_i(x;\theta) \rVert_2^2`.
* :class:`PoseRegressor` — a convolutional trunk and a regression head that outputs :math:`2k` numbers;
  :class:`RefinementStage` — one cascade stage that refines each joint from a crop around its estimate.
* :func:`crop_boxes`, :func:`augment_crops`, :func:`pose_loader` — crops, translation and flip augmentation.
* :func:`predict_joints` — crop, regress, map back to the image, optionally refine; :func:`draw_pose` draws it.
* :func:`load_lsp` — the real LSP where a network (or a local copy) exists.

The package holds one concern per module: :mod:`course_lib.joints` (the joint names, flip pairs and skeleton,
shared with :mod:`course_lib.data`), :mod:`.geometry` (normalization, flips, torso diameter), :mod:`.metrics`
(PCK, PDJ, the loss), :mod:`.crops` (crops, augmentation, the loader), :mod:`.models` (the networks and
:func:`predict_joints`), :mod:`.drawing`; :func:`square_boxes` lives in :mod:`course_lib.boxes` and
:func:`load_lsp` in :mod:`course_lib.data.online`. Every public name is importable from ``course_lib.pose``.
"""

from __future__ import annotations

from ..boxes import square_boxes
from ..data.online import load_lsp
from ..joints import FLIP_PAIRS, FLIP_PERMUTATION, JOINT_NAMES, LIMB_SIDES, NUM_JOINTS, SKELETON, TORSO_JOINTS
from .crops import augment_crops, crop_boxes, pose_loader
from .drawing import SIDE_COLOURS, draw_pose
from .geometry import (
    denormalize_joints,
    hflip_joints,
    hflip_pose,
    normalize_joints,
    swap_left_right,
    torso_diameter,
)
from .metrics import joint_distances, pck, pdj, pose_loss
from .models import PoseRegressor, RefinementStage, predict_joints

__all__ = [
    "JOINT_NAMES",
    "NUM_JOINTS",
    "FLIP_PAIRS",
    "FLIP_PERMUTATION",
    "SKELETON",
    "LIMB_SIDES",
    "SIDE_COLOURS",
    "TORSO_JOINTS",
    "normalize_joints",
    "denormalize_joints",
    "swap_left_right",
    "hflip_joints",
    "hflip_pose",
    "torso_diameter",
    "joint_distances",
    "pdj",
    "pck",
    "pose_loss",
    "square_boxes",
    "crop_boxes",
    "augment_crops",
    "pose_loader",
    "PoseRegressor",
    "RefinementStage",
    "predict_joints",
    "draw_pose",
    "load_lsp",
]
