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

The package holds one concern per module: :mod:`course_lib.joints` (the joint names, flip pairs and skeleton,
shared with :mod:`course_lib.data`), :mod:`.geometry` (normalization, flips, torso diameter), :mod:`.metrics`
(PCK, PDJ, the loss), :mod:`.crops` (crops, augmentation, the loader), :mod:`.models` (the networks and
:func:`predict_joints`), :mod:`.drawing`. Each name has one home: the joint constants are imported from
:mod:`course_lib.joints` (only :data:`JOINT_NAMES` and :data:`FLIP_PAIRS` are re-exported here),
:func:`~course_lib.boxes.square_boxes` from :mod:`course_lib.boxes` and the real LSP loader
:func:`~course_lib.data.load_lsp` from :mod:`course_lib.data`.
"""

from __future__ import annotations

from ..joints import FLIP_PAIRS, JOINT_NAMES  # listed in DESIGN §3 under course_lib.pose
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
    "FLIP_PAIRS",
    "SIDE_COLOURS",
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
    "crop_boxes",
    "augment_crops",
    "pose_loader",
    "PoseRegressor",
    "RefinementStage",
    "predict_joints",
    "draw_pose",
]
