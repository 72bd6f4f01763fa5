r"""How close a reconstruction is to its image: PSNR and SSIM (chapter 8's decoders and Perception Visualization)."""

from __future__ import annotations

import numpy as np
import torch

from ..._checks import check_tensor

__all__ = ["psnr", "ssim"]


def _pair(reconstructions, images) -> tuple[torch.Tensor, torch.Tensor]:
    reconstructions = check_tensor(reconstructions, "reconstructions", ndim=4)
    images = check_tensor(images, "images", ndim=4)
    if reconstructions.shape != images.shape:
        raise ValueError(f"reconstructions must have the images' shape {tuple(images.shape)}, got shape "
                         f"{tuple(reconstructions.shape)}")
    return reconstructions, images


def psnr(reconstructions: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    r"""Per-image peak signal-to-noise ratio in dB of ``(N, C, H, W)`` images in :math:`[0, 1]`,

    .. math::

        \mathrm{PSNR} = 10 \log_{10} \frac{1}{\mathrm{MSE}}, \qquad
        \mathrm{MSE} = \frac{1}{CHW} \sum_{c,u,v} (\hat x_{cuv} - x_{cuv})^2

    (the MSE is clamped at 1e-12, so identical images give 120 dB, not infinity).

    Example:
        >>> psnr(torch.full((1, 1, 2, 2), 0.1), torch.zeros(1, 1, 2, 2))  # MSE 0.01: 20 dB
        tensor([20.])
    """
    reconstructions, images = _pair(reconstructions, images)
    mse = (reconstructions - images).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim(reconstructions: torch.Tensor, images: torch.Tensor) -> np.ndarray:
    r"""Per-image structural similarity (Wang, Bovik, Sheikh and Simoncelli, IEEE TIP 2004) of ``(N, C, H, W)``
    images in :math:`[0, 1]`: scikit-image's ``structural_similarity`` with data range 1, averaged over colour
    channels,

    .. math::

        \mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
                                   {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}

    over 7×7 windows, averaged over the image.

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> float(ssim(x, x)[0])
        1.0
    """
    from skimage.metrics import structural_similarity

    reconstructions, images = _pair(reconstructions, images)
    a = reconstructions.detach().float().cpu().numpy()
    b = images.detach().float().cpu().numpy()
    return np.array([structural_similarity(x, y, data_range=1.0, channel_axis=0) for x, y in zip(a, b, strict=True)])
