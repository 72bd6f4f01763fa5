r"""Looking inside a CNN: first-layer filters, receptive fields, maximally activating patches and
activation maximization by gradient ascent on the input, one module each: :mod:`.filters`,
:mod:`.receptive_field`, :mod:`.patches` and :mod:`.ascent`; :mod:`.probe` holds :class:`LayerProbe`, which runs a
model up to one layer (for the last two and the zoo's decoder recipe).

* :func:`filter_grid` — the kernels of a convolution with three input channels, each shown as a small RGB
  image, normalized per filter.
* :func:`receptive_field` — size, jump and start of the input region that one unit of a layer sees,
  computed analytically layer by layer (Araujo, Norris & Sim, *Computing Receptive Fields of Convolutional
  Neural Networks*, Distill 2019):

  .. math::

      r_l = r_{l-1} + (k_l^{\mathrm{eff}} - 1)\, j_{l-1}, \qquad
      j_l = s_l \, j_{l-1}, \qquad
      a_l = a_{l-1} - p_l \, j_{l-1},

  with :math:`k^{\mathrm{eff}} = d\,(k - 1) + 1` the dilated kernel size, :math:`s` the stride, :math:`p` the
  (top/left) padding and :math:`r_0 = j_0 = 1`, :math:`a_0 = 0`. Unit :math:`i` of layer :math:`l` sees the
  input pixels :math:`a_l + i\,j_l, \dots, a_l + i\,j_l + r_l - 1`.
* :func:`top_activating_patches` — the images and input patches that excite one channel most (Zeiler &
  Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014; Girshick et al., R-CNN, 2014).
* :func:`feature_visualization` — class and channel visualizations with transformation robustness and a
  decorrelated Fourier parameterization (Olah, Mordvintsev & Schubert, *Feature Visualization*, Distill 2017).
* :func:`activation_maximization` — an input that maximizes a unit, a channel or a class score, by gradient
  ascent with the regularizers of Simonyan, Vedaldi & Zisserman (*Deep Inside Convolutional Networks*, 2014),
  Mahendran & Vedaldi (*Understanding Deep Image Representations by Inverting Them*, CVPR 2015) and random
  jitter (Mordvintsev et al., *Inceptionism*, 2015):

  .. math::

      I^\ast = \arg\max_I \; S(I) - \lambda_2 \lVert I \rVert_2^2 - \lambda_{TV} R_{TV}(I), \qquad
      R_{TV}(I) = \sum_{c,i,j} \lvert I_{c,i+1,j} - I_{c,i,j} \rvert + \lvert I_{c,i,j+1} - I_{c,i,j} \rvert .
"""


from .ascent import AscentResult, activation_maximization, ascent_objective, total_variation
from .feature_vis import FeatureVisResult, FourierImage, feature_visualization, robust_transform
from .filters import filter_grid, first_conv, normalize_filters
from .patches import TopPatches, top_activating_patches
from .probe import LayerProbe
from .receptive_field import ReceptiveField, receptive_field

__all__ = [
    "first_conv",
    "normalize_filters",
    "filter_grid",
    "ReceptiveField",
    "receptive_field",
    "LayerProbe",
    "TopPatches",
    "top_activating_patches",
    "total_variation",
    "ascent_objective",
    "AscentResult",
    "activation_maximization",
    "feature_visualization",
    "FeatureVisResult",
    "FourierImage",
    "robust_transform",
]
