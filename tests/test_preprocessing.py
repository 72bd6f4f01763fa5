"""course_lib.preprocessing against torchvision and scikit-learn, and the whitening properties."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA
from torchvision.transforms import Normalize

from course_lib._checks import NotFittedError
from course_lib.preprocessing import PCA, ChannelMean, ChannelStandardize, MeanImage, Whitening
from tests.helpers import assert_close


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    scale = torch.tensor([0.2, 0.5, 1.5])[None, :, None, None]
    return torch.rand(20, 3, 6, 5, generator=g) * scale + torch.tensor([0.1, -0.3, 2.0])[None, :, None, None]


@pytest.fixture
def correlated():
    g = torch.Generator().manual_seed(2)
    mixing = torch.randn(6, 6, generator=g, dtype=torch.float64)
    return torch.randn(400, 6, generator=g, dtype=torch.float64) @ mixing + 3.0


def test_mean_image_matches_numpy(images):
    mi = MeanImage().fit(images)
    assert_close(mi.mean_, images.numpy().mean(axis=0))
    assert_close(mi.transform(images).mean(0), torch.zeros(3, 6, 5), atol=1e-6, rtol=0)
    assert_close(mi.inverse_transform(mi.transform(images)), images)


def test_channel_mean_three_numbers(images):
    cm = ChannelMean().fit(images)
    assert cm.mean_.shape == (3,)
    assert_close(cm.mean_, images.numpy().mean(axis=(0, 2, 3)))
    assert_close(cm.transform(images).mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-6, rtol=0)


def test_channel_standardize_equals_torchvision_normalize(images):
    cs = ChannelStandardize().fit(images)
    expected_std = images.numpy().std(axis=(0, 2, 3))  # population std, ddof=0
    assert_close(cs.std_, expected_std)
    ref = Normalize(mean=cs.mean_.tolist(), std=cs.std_.tolist())(images)
    assert_close(cs.transform(images), ref)
    out = cs.transform(images)
    assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    assert_close(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-5, rtol=0)
    assert_close(cs.inverse_transform(out), images)


def test_from_stats_imagenet_matches_normalize():
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = torch.rand(2, 3, 4, 4)
    assert_close(ChannelStandardize.from_stats(mean, std).transform(x), Normalize(mean, std)(x))


def test_pca_matches_sklearn(correlated):
    ours = PCA(n_components=4).fit(correlated)
    ref = SkPCA(n_components=4).fit(correlated.numpy())
    assert_close(ours.explained_variance_, ref.explained_variance_, atol=1e-8, rtol=1e-8)
    assert_close(ours.explained_variance_ratio_, ref.explained_variance_ratio_, atol=1e-8, rtol=1e-8)
    # eigenvectors are defined up to sign: compare |projections| component by component
    z, zr = ours.transform(correlated), torch.from_numpy(ref.transform(correlated.numpy()))
    signs = torch.sign((z * zr).sum(0))
    assert_close(z * signs, zr, atol=1e-8, rtol=1e-8)


def test_pca_whiten_matches_sklearn(correlated):
    z = PCA(whiten=True).fit_transform(correlated)
    zr = torch.from_numpy(SkPCA(whiten=True).fit_transform(correlated.numpy()))
    signs = torch.sign((z * zr).sum(0))
    assert_close(z * signs, zr, atol=1e-8, rtol=1e-8)


def test_pca_decorrelates(correlated):
    pca = PCA().fit(correlated)
    cov = torch.cov(pca.transform(correlated).T)
    assert_close(cov, torch.diag(pca.explained_variance_), atol=1e-8, rtol=1e-8)
    assert bool((pca.explained_variance_[:-1] >= pca.explained_variance_[1:]).all())


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_whitened_covariance_is_identity(correlated, method):
    w = Whitening(method).fit(correlated)
    z = w.transform(correlated)
    assert_close(torch.cov(z.T), torch.eye(6, dtype=torch.float64), atol=1e-4, rtol=0)
    assert_close(w.inverse_transform(z), correlated, atol=1e-8, rtol=1e-8)


def test_zca_is_symmetric_and_closest_to_the_data(correlated):
    pca, zca = Whitening("pca").fit(correlated), Whitening("zca").fit(correlated)
    w = zca.whitening_matrix_
    assert_close(w, w.T, atol=1e-10, rtol=0)
    assert_close(w @ w, torch.linalg.inv(torch.cov(correlated.T)), atol=1e-8, rtol=1e-6)  # W² = Σ⁻¹
    xc = correlated - correlated.mean(0)
    dist_zca = (zca.transform(correlated) - xc).norm()
    dist_pca = (pca.transform(correlated) - xc).norm()
    assert dist_zca < dist_pca  # ZCA: the whitening that changes the data least


def test_whitening_with_eps_shrinks_small_eigenvalues(correlated):
    eps = 1.0
    w = Whitening("zca", eps=eps).fit(correlated)
    lam = torch.linalg.eigvalsh(torch.cov(correlated.T))
    got = torch.linalg.eigvalsh(torch.cov(w.transform(correlated).T))
    assert_close(got, lam / (lam + eps), atol=1e-8, rtol=1e-6)


def test_float32_input_stays_float32(correlated):
    z = Whitening("zca").fit(correlated.float()).transform(correlated.float())
    assert z.dtype == torch.float32
    assert_close(torch.cov(z.double().T), torch.eye(6, dtype=torch.float64), atol=1e-4, rtol=0)


def test_numpy_input_accepted(images):
    cm = ChannelMean().fit(images.numpy())
    assert_close(cm.mean_, images.mean(dim=(0, 2, 3)))


@pytest.mark.parametrize("cls", [MeanImage, ChannelMean, ChannelStandardize, PCA, Whitening])
def test_used_before_fit(cls):
    x = torch.rand(4, 3, 2, 2) if cls in (MeanImage, ChannelMean, ChannelStandardize) else torch.rand(4, 3)
    with pytest.raises(NotFittedError, match="not fitted"):
        cls().transform(x)
    assert issubclass(NotFittedError, ValueError)


@pytest.mark.parametrize("cls", [MeanImage, ChannelMean, ChannelStandardize])
def test_image_transforms_reject_bad_input(cls, images):
    with pytest.raises(ValueError, match="x must be 4-D"):
        cls().fit(images[0])
    with pytest.raises(TypeError, match="floating-point"):
        cls().fit((images * 255).to(torch.uint8))
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cls().fit(bad)
    fitted = cls().fit(images)
    with pytest.raises(ValueError, match="channels"):
        fitted.transform(torch.rand(2, 4, 6, 5))
    with pytest.raises(ValueError, match="must not be empty"):
        cls().fit(images[:0])


@pytest.mark.parametrize("cls", [PCA, Whitening])
def test_vector_transforms_reject_bad_input(cls, correlated):
    with pytest.raises(ValueError, match="2-D"):
        cls().fit(correlated[None])
    with pytest.raises(ValueError, match="at least 2 samples"):
        cls().fit(correlated[:1])
    with pytest.raises(ValueError, match="features"):
        cls().fit(correlated).transform(correlated[:, :3])
    bad = correlated.clone()
    bad[3, 2] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        cls().fit(bad)


def test_whitening_singular_covariance_needs_eps():
    x = torch.randn(3, 5, dtype=torch.float64)  # fewer samples than features: rank 2
    with pytest.raises(ValueError, match="singular"):
        Whitening("zca").fit(x)
    Whitening("zca", eps=1e-3).fit(x)  # regularized: fine


def test_bad_arguments():
    with pytest.raises(ValueError, match="method must be one of"):
        Whitening("svd")
    with pytest.raises(ValueError, match="eps must be >= 0"):
        Whitening(eps=-1.0)
    with pytest.raises(ValueError, match="n_components"):
        PCA(n_components=10).fit(torch.randn(20, 3))
    with pytest.raises(ValueError, match="constant channel"):
        ChannelStandardize().fit(torch.zeros(4, 3, 2, 2))
    with pytest.raises(ValueError, match="mean image"):
        MeanImage().fit(torch.rand(4, 3, 8, 8)).transform(torch.rand(4, 3, 4, 4))


@pytest.mark.cuda
@pytest.mark.parametrize("cls", [MeanImage, ChannelMean, ChannelStandardize])
def test_cpu_cuda_parity_images(cls, images):
    cpu = cls().fit(images).transform(images)
    gpu = cls().fit(images.cuda()).transform(images.cuda())
    assert gpu.is_cuda
    assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["pca", "zca"])
def test_cpu_cuda_parity_whitening(correlated, method):
    cpu = Whitening(method).fit(correlated).transform(correlated)
    gpu = Whitening(method).fit(correlated.cuda()).transform(correlated.cuda())
    assert gpu.is_cuda
    assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=1e-6)
    assert np.isfinite(gpu.cpu().numpy()).all()
