"""The public API of DESIGN.md §3: outside tests import these names, so none may disappear or move."""

import importlib

import pytest

CONTRACT = {
    "course_lib.device": ["get_device", "seed_everything"],
    "course_lib.data": ["ShapesDataset", "PoseFiguresDataset", "load_photo", "PHOTO_NAMES"],
    "course_lib.pretrained": ["efficientnet_lite0", "IMAGENET_CATEGORIES", "top_k", "imagenet_preprocess",
                              "load_torchvision"],
    "course_lib.preprocessing": ["MeanImage", "ChannelMean", "ChannelStandardize", "PCA", "Whitening"],
    "course_lib.batchnorm": ["batch_norm", "batch_norm_backward", "BatchNorm2d", "fold_batchnorm"],
    "course_lib.training": ["fit"],
    "course_lib.zoo": ["names", "load", "evaluate"],
    "course_lib.visualization": ["receptive_field", "top_activating_patches", "activation_maximization",
                                 "feature_visualization"],
    "course_lib.studies": ["names", "load"],
    "course_lib.localization": ["box_iou"],
    "course_lib.boxes": ["box_iou", "paired_box_iou", "xyhw_to_xyxy", "xyxy_to_xyhw", "mask_to_box"],
    "course_lib.joints": ["JOINT_NAMES", "FLIP_PAIRS", "NUM_JOINTS"],
    "course_lib.pose": ["normalize_joints", "denormalize_joints", "hflip_pose", "pck", "JOINT_NAMES", "FLIP_PAIRS"],
    "course_lib.saliency": ["CAM", "GradCAM", "GradCAMPlusPlus", "SmoothGradCAMPlusPlus", "AugmentedGradCAM", "RISE",
                            "PerceptionVisualization", "LayerCAM", "ScoreCAM", "GuidedBackprop", "GuidedGradCAM"],
    "course_lib.saliency.metrics": ["deletion_auc", "insertion_auc", "road", "pointing_game", "average_drop",
                                    "increase_in_confidence", "saliency_to_box", "corloc"],
    "course_lib.plotting": ["overlay"],
    # added with issue 27 (DESIGN §3 says "add freely"): the result object, the map post-processing, the
    # temporary-mode helper DESIGN lists under models, and class grading's settings
    "course_lib.models": ["model_mode"],
    "course_lib.grading": ["grade_class", "GradingSettings"],
}
CONTRACT["course_lib.saliency"] = [*CONTRACT["course_lib.saliency"], "Explanation", "normalize_maps", "upsample_maps"]


@pytest.mark.parametrize("module", sorted(CONTRACT))
def test_contract_names_exist(module):
    mod = importlib.import_module(module)
    missing = [name for name in CONTRACT[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lacks {missing} (DESIGN.md §3)"
    exported = getattr(mod, "__all__", None)
    if exported is not None:
        assert not [n for n in CONTRACT[module] if n not in exported], f"{module}.__all__ must list the contract names"
