r"""Data preprocessing: zero-centering, scaling, PCA and whitening.

Every transform follows scikit-learn's shape: ``fit(x)`` learns statistics from *training data only* and
returns ``self`` (a second argument ``y`` is accepted and ignored, as by scikit-learn's unsupervised
transforms, so that code passing labels to every transform works); ``transform`` and ``inverse_transform`` apply
them; fitted attributes end in ``_``.
Image statistics take ``(N, C, H, W)`` tensors; :class:`PCA` and :class:`Whitening` take ``(N, D)``.

Formulas (for data :math:`x_1,\dots,x_N`):

.. math::

    \mu = \frac{1}{N}\sum_{n=1}^{N} x_n,\qquad
    \sigma = \sqrt{\frac{1}{N}\sum_{n=1}^{N}(x_n-\mu)^2},\qquad
    \tilde x = \frac{x-\mu}{\sigma}.

With the covariance :math:`\Sigma = \frac{1}{N-1}\sum_n (x_n-\mu)(x_n-\mu)^\top = U\Lambda U^\top`,
PCA decorrelates with :math:`U^\top(x-\mu)`, PCA whitening uses :math:`W_{\text{PCA}}=\Lambda^{-1/2}U^\top`
and ZCA whitening :math:`W_{\text{ZCA}}=U\Lambda^{-1/2}U^\top`; both give :math:`W\Sigma W^\top = I`.
"""

from __future__ import annotations

import torch

from ._checks import check_choice, check_fitted, check_int, check_nonnegative, check_tensor

__all__ = ["MeanImage", "ChannelMean", "ChannelStandardize", "PCA", "Whitening"]


class _Transform:
    """Shared ``fit``/``transform`` plumbing: input checks and the fitted-state check."""

    _ndim = 4
    _fitted_attrs: tuple[str, ...] = ("mean_",)

    def _check(self, x, name: str = "x", min_batch: int = 1) -> torch.Tensor:
        x = check_tensor(x, name, ndim=self._ndim, min_batch=min_batch)
        ref = getattr(self, "mean_", None)
        if ref is not None:
            expected = ref.shape[0]
            if x.shape[1] != expected:
                what = "features" if self._ndim == 2 else "channels"
                raise ValueError(f"{name} has {x.shape[1]} {what} but the transform was fitted on {expected}")
            if self._ndim == 4 and ref.ndim == 3 and tuple(x.shape[2:]) != tuple(ref.shape[1:]):
                raise ValueError(
                    f"{name} has spatial size {tuple(x.shape[2:])} but the mean image is {tuple(ref.shape[1:])}"
                )
        return x

    def fit(self, x, y=None):  # pragma: no cover - overridden
        raise NotImplementedError

    def fit_transform(self, x, y=None) -> torch.Tensor:
        """``fit(x)`` then ``transform(x)`` (``y`` is ignored, as in scikit-learn's unsupervised transforms)."""
        return self.fit(x).transform(x)

    def _ready(self, x, name="x") -> torch.Tensor:
        check_fitted(self, *self._fitted_attrs)
        return self._check(x, name)

    def _stat(self, attr: str, like: torch.Tensor) -> torch.Tensor:
        return getattr(self, attr).to(device=like.device, dtype=like.dtype)

    def __repr__(self) -> str:
        fitted = all(getattr(self, a, None) is not None for a in self._fitted_attrs)
        return f"{type(self).__name__}({'fitted' if fitted else 'not fitted'})"


class MeanImage(_Transform):
    r"""Subtract the mean image (AlexNet): one value per channel *and* pixel, a ``(C, H, W)`` array.

    .. math:: \tilde x_{c,i,j} = x_{c,i,j} - \frac{1}{N}\sum_n x^{(n)}_{c,i,j}

    Example:
        >>> x = torch.rand(10, 3, 8, 8)
        >>> MeanImage().fit(x).mean_.shape
        torch.Size([3, 8, 8])
    """

    def __init__(self) -> None:
        self.mean_: torch.Tensor | None = None

    def fit(self, x, y=None) -> MeanImage:
        x = self._check(x)
        self.mean_ = x.mean(dim=0)
        return self

    def transform(self, x) -> torch.Tensor:
        x = self._ready(x)
        return x - self._stat("mean_", x)

    def inverse_transform(self, x) -> torch.Tensor:
        x = self._ready(x)
        return x + self._stat("mean_", x)


class ChannelMean(_Transform):
    r"""Subtract one mean per channel (VGG): three numbers for RGB.

    .. math:: \tilde x_{c,i,j} = x_{c,i,j} - \mu_c,\quad \mu_c = \frac{1}{NHW}\sum_{n,i,j} x^{(n)}_{c,i,j}
    """

    def __init__(self) -> None:
        self.mean_: torch.Tensor | None = None

    def fit(self, x, y=None) -> ChannelMean:
        x = self._check(x)
        self.mean_ = x.mean(dim=(0, 2, 3))
        return self

    def transform(self, x) -> torch.Tensor:
        x = self._ready(x)
        return x - self._stat("mean_", x)[:, None, None]

    def inverse_transform(self, x) -> torch.Tensor:
        x = self._ready(x)
        return x + self._stat("mean_", x)[:, None, None]


class ChannelStandardize(_Transform):
    r"""Per-channel mean and standard deviation (ResNet): six numbers for RGB.

    .. math:: \tilde x_{c,i,j} = \frac{x_{c,i,j} - \mu_c}{\sigma_c}

    :math:`\sigma_c` is the population standard deviation over all training pixels of channel ``c``.
    The same transform as ``torchvision.transforms.Normalize(mean_, std_)``.

    Args:
        eps: added to :math:`\sigma_c` so that a constant channel does not divide by zero.

    Example:
        >>> cs = ChannelStandardize.from_stats([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])  # ImageNet
        >>> cs.transform(torch.zeros(1, 3, 2, 2))[0, :, 0, 0]
        tensor([-2.1179, -2.0357, -1.8044])
    """

    _fitted_attrs = ("mean_", "std_")

    def __init__(self, eps: float = 0.0) -> None:
        self.eps = check_nonnegative(eps, "eps")
        self.mean_: torch.Tensor | None = None
        self.std_: torch.Tensor | None = None

    @classmethod
    def from_stats(cls, mean, std) -> ChannelStandardize:
        """A transform with known statistics (e.g. a pretrained model's), no fitting needed."""
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(f"mean and std must be 1-D of equal length, got {tuple(mean.shape)} and {tuple(std.shape)}")
        if bool((std <= 0).any()):
            raise ValueError(f"std must be > 0 for every channel, got {std.tolist()}")
        obj = cls()
        obj.mean_, obj.std_ = mean, std
        return obj

    def fit(self, x, y=None) -> ChannelStandardize:
        x = self._check(x, min_batch=1)
        if x.shape[0] * x.shape[2] * x.shape[3] < 2:
            raise ValueError(f"x needs at least 2 values per channel to estimate a std, got shape {tuple(x.shape)}")
        self.mean_ = x.mean(dim=(0, 2, 3))
        self.std_ = x.std(dim=(0, 2, 3), unbiased=False)
        if self.eps == 0 and bool((self.std_ == 0).any()):
            raise ValueError("x has a constant channel (std = 0): pass eps > 0 to standardize it")
        return self

    def transform(self, x) -> torch.Tensor:
        x = self._ready(x)
        mean, std = self._stat("mean_", x), self._stat("std_", x) + self.eps
        return (x - mean[:, None, None]) / std[:, None, None]

    def inverse_transform(self, x) -> torch.Tensor:
        x = self._ready(x)
        mean, std = self._stat("mean_", x), self._stat("std_", x) + self.eps
        return x * std[:, None, None] + mean[:, None, None]


class _Covariance(_Transform):
    """Mean and eigen-decomposition of the covariance of ``(N, D)`` data, computed in float64."""

    _ndim = 2
    _fitted_attrs = ("mean_", "components_", "explained_variance_")

    def _fit_eigen(self, x) -> torch.Tensor:
        x = self._check(x, min_batch=2)
        x64 = x.to(torch.float64)
        self.mean_ = x64.mean(dim=0)
        xc = x64 - self.mean_
        cov = xc.T @ xc / (x.shape[0] - 1)
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(evals, descending=True)
        evals, evecs = evals[order].clamp_min(0), evecs[:, order]
        # a deterministic sign: the largest-magnitude entry of every eigenvector is positive
        signs = torch.sign(evecs.gather(0, evecs.abs().argmax(dim=0, keepdim=True)))
        evecs = evecs * torch.where(signs == 0, torch.ones_like(signs), signs)
        self.components_ = evecs.T  # rows are principal directions
        self.explained_variance_ = evals
        self.covariance_ = cov
        return x

    def _center(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float64) - self.mean_.to(x.device)


class PCA(_Covariance):
    r"""Principal component analysis by eigen-decomposition of the covariance.

    .. math:: z = U_k^\top (x - \mu), \qquad \text{(whiten)}\; z = \Lambda_k^{-1/2} U_k^\top (x - \mu)

    :math:`U_k` holds the ``n_components`` leading eigenvectors of the covariance (rows of
    ``components_``), :math:`\Lambda_k` their eigenvalues (``explained_variance_``, computed with
    :math:`N-1` like scikit-learn). The decorrelated data have a diagonal covariance :math:`\Lambda_k`.

    Args:
        n_components: how many directions to keep (``None``: all ``D``).
        whiten: divide every component by its standard deviation.
        eps: added to the eigenvalues before whitening.

    Example:
        >>> x = torch.randn(200, 5, dtype=torch.float64)
        >>> z = PCA(whiten=True).fit_transform(x)
        >>> torch.allclose(torch.cov(z.T), torch.eye(5, dtype=torch.float64), atol=1e-8)
        True
    """

    def __init__(self, n_components: int | None = None, whiten: bool = False, eps: float = 0.0) -> None:
        self.n_components = None if n_components is None else check_int(n_components, "n_components", minimum=1)
        self.whiten = bool(whiten)
        self.eps = check_nonnegative(eps, "eps")
        self.mean_ = self.components_ = self.explained_variance_ = None

    def fit(self, x, y=None) -> PCA:
        x = self._fit_eigen(x)
        k = x.shape[1] if self.n_components is None else self.n_components
        if k > x.shape[1]:
            raise ValueError(f"n_components={k} exceeds the number of features ({x.shape[1]})")
        self.components_ = self.components_[:k]
        self.explained_variance_ = self.explained_variance_[:k]
        total = torch.linalg.eigvalsh(self.covariance_).clamp_min(0).sum()
        self.explained_variance_ratio_ = self.explained_variance_ / total
        return self

    def _scale(self) -> torch.Tensor:
        if not self.whiten:
            return torch.ones_like(self.explained_variance_)
        var = self.explained_variance_ + self.eps
        if bool((var <= 0).any()):
            raise ValueError("a component has zero variance: whitening divides by zero; pass eps > 0")
        return var.rsqrt()

    def transform(self, x) -> torch.Tensor:
        x = self._ready(x)
        dev = x.device
        z = self._center(x) @ self.components_.to(dev).T * self._scale().to(dev)
        return z.to(x.dtype)

    def inverse_transform(self, z) -> torch.Tensor:
        check_fitted(self, *self._fitted_attrs)
        z = check_tensor(z, "z", ndim=2, shape={1: self.components_.shape[0]})
        dev = z.device
        x = (z.to(torch.float64) / self._scale().to(dev)) @ self.components_.to(dev) + self.mean_.to(dev)
        return x.to(z.dtype)


class Whitening(_Covariance):
    r"""PCA or ZCA whitening: a linear map :math:`W` with :math:`W \Sigma W^\top = I`.

    .. math::

        W_{\text{PCA}} = (\Lambda + \epsilon I)^{-1/2} U^\top, \qquad
        W_{\text{ZCA}} = U (\Lambda + \epsilon I)^{-1/2} U^\top, \qquad \tilde x = W (x - \mu)

    PCA whitening expresses the data in the eigenbasis; ZCA rotates back, so that among all whitening
    maps it keeps the result closest to the original data (for images: whitened pixels still look like
    an image, with edges emphasized). ``eps`` regularizes tiny eigenvalues; with ``eps > 0`` the
    covariance of the result is :math:`\Lambda/(\Lambda+\epsilon)` instead of exactly the identity.

    Args:
        method: ``"pca"`` or ``"zca"``.
        eps: added to the eigenvalues (0 gives an exact whitening of full-rank data).

    Example:
        >>> x = torch.randn(500, 4, dtype=torch.float64) @ torch.randn(4, 4, dtype=torch.float64)
        >>> z = Whitening("zca").fit_transform(x)
        >>> torch.allclose(torch.cov(z.T), torch.eye(4, dtype=torch.float64), atol=1e-8)
        True
    """

    def __init__(self, method: str = "zca", eps: float = 0.0) -> None:
        check_choice(method, "method", ("pca", "zca"))
        self.method = method
        self.eps = check_nonnegative(eps, "eps")
        self.mean_ = self.components_ = self.explained_variance_ = None

    def fit(self, x, y=None) -> Whitening:
        self._fit_eigen(x)
        var = self.explained_variance_ + self.eps
        if bool((var <= 0).any()):
            raise ValueError(
                "the covariance is singular (a zero eigenvalue, e.g. fewer samples than features or a "
                "constant feature): pass eps > 0 to regularize the whitening"
            )
        u = self.components_.T
        inv_sqrt, sqrt = var.rsqrt(), var.sqrt()
        if self.method == "pca":
            self.whitening_matrix_ = inv_sqrt[:, None] * u.T
            self.coloring_matrix_ = u * sqrt
        else:
            self.whitening_matrix_ = (u * inv_sqrt) @ u.T
            self.coloring_matrix_ = (u * sqrt) @ u.T
        return self

    def transform(self, x) -> torch.Tensor:
        x = self._ready(x)
        return (self._center(x) @ self.whitening_matrix_.to(x.device).T).to(x.dtype)

    def inverse_transform(self, z) -> torch.Tensor:
        z = self._ready(z, "z")
        dev = z.device
        return (z.to(torch.float64) @ self.coloring_matrix_.to(dev).T + self.mean_.to(dev)).to(z.dtype)
