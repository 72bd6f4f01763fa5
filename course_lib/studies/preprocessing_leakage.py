r"""Chapter 1's leakage study: what fitting preprocessing statistics before the split does to a reported score.

Every split of every experiment keeps three disjoint sets: the training split (the classifier is fitted on it),
the test split (the score a pipeline *reports*) and new data that neither pipeline ever sees (what the score
is supposed to predict). The *honest* pipeline fits its preprocessing on the training split only; the *leaky*
one on the training and test splits together. Per split we store the four accuracies (honest / leaky, on the
test split / on new data), so that paired intervals can be recomputed from the file.

Three experiments:

* ``statistics`` — the leak the course text warns about: mean and standard deviation computed on all the data
  before splitting. scikit-learn's 8×8 handwritten digits (values in :math:`[0, 1]`), a logistic regression,
  two granularities of the statistics — one mean and std for the whole image (the per-channel recipe of
  ResNet on a one-channel image) and one per pixel, :math:`\hat x_d = (x_d-\mu_d)/(\sigma_d+\epsilon)` — and
  several training-set sizes, because the leak can only matter where the training split is small.
* ``label_aware`` — a contrast, not a normalization: keep the :math:`k` pixels most correlated with the
  label, :math:`\lvert\operatorname{corr}(x_d, y)\rvert`, on pure noise with coin-flip labels.
* ``whitening`` — ZCA whitening fitted on the training and test digits together.

About 1 minute on two CPU cores (``python -m course_lib.studies run preprocessing_leakage``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..preprocessing import Whitening
from . import Study

SETTINGS = {
    "statistics": {"n_train": [30, 100, 300], "n_test": 300, "granularity": ["image", "pixel"], "eps": 0.01,
                   "splits": 50},
    "label_aware": {"n_train": 100, "n_test": 100, "n_new": 1000, "pixels": 64 * 64, "k": 20, "splits": 50},
    "whitening": {"n_train": 60, "n_test": 200, "eps": 1e-3, "splits": 50},
    "classifier": "sklearn LogisticRegression(max_iter=2000), default C=1",
}
QUICK = {**SETTINGS,
         "statistics": {**SETTINGS["statistics"], "splits": 2},
         "label_aware": {**SETTINGS["label_aware"], "splits": 2},
         "whitening": {**SETTINGS["whitening"], "splits": 2}}


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 handwritten digits as ``(N, 64)`` float64 in ``[0, 1]``, and their labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x, dtype=torch.float64) / 16, torch.tensor(y)


class Standardize:
    r"""Per-feature or whole-image standardization, :math:`(x-\mu)/(\sigma+\epsilon)`, fitted on ``fit``'s data.

    ``granularity="image"`` fits one mean and one std over every pixel of every image (the per-channel
    recipe on a one-channel image); ``"pixel"`` one per pixel (the mean-image recipe plus a per-pixel std).
    """

    def __init__(self, granularity: str, eps: float):
        self.granularity, self.eps = granularity, eps

    def fit(self, x: torch.Tensor, y=None) -> Standardize:
        dims = None if self.granularity == "image" else 0
        self.mean_ = x.mean() if dims is None else x.mean(0)
        self.std_ = x.std(unbiased=False) if dims is None else x.std(0, unbiased=False)
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean_) / (self.std_ + self.eps)


class KeepCorrelated:
    r"""Label-aware selection: keep the ``k`` features with the largest :math:`\lvert\operatorname{corr}(x_d, y)\rvert`."""

    def __init__(self, k: int):
        self.k = k

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> KeepCorrelated:
        xc, yc = x - x.mean(0), y.double() - y.double().mean()
        corr = (xc * yc[:, None]).sum(0) / (xc.norm(dim=0) * yc.norm() + 1e-12)
        self.keep_ = corr.abs().topk(self.k).indices
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.keep_]


def pipeline_scores(transform, fit_on: tuple, train: tuple, evaluate: list[tuple]) -> list[float]:
    """Fit ``transform`` on ``fit_on = (x, y)``, a logistic regression on the transformed ``train``; the
    accuracy on each ``(x, y)`` of ``evaluate``."""
    from sklearn.linear_model import LogisticRegression

    t = transform.fit(*fit_on)
    clf = LogisticRegression(max_iter=2000).fit(t.transform(train[0]).numpy(), train[1].numpy())
    return [float(clf.score(t.transform(x).numpy(), y.numpy())) for x, y in evaluate]


def one_split(make_transform, x: torch.Tensor, y: torch.Tensor, n_train: int, n_test: int) -> dict:
    """Honest and leaky pipelines on one split (rows already shuffled): the first ``n_train`` rows train,
    the next ``n_test`` test, the rest are new data. Accuracies in ``[0, 1]``."""
    end = n_train + n_test
    tr, te, new = (x[:n_train], y[:n_train]), (x[n_train:end], y[n_train:end]), (x[end:], y[end:])
    both = (x[:end], y[:end])
    honest = pipeline_scores(make_transform(), tr, tr, [te, new])
    leaky = pipeline_scores(make_transform(), both, tr, [te, new])
    return {"honest_test": honest[0], "leaky_test": leaky[0], "honest_new": honest[1], "leaky_new": leaky[1]}


def _collect(rows: list[dict]) -> dict[str, list[float]]:
    return {key: [r[key] for r in rows] for key in rows[0]}


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    from tqdm.auto import tqdm

    x, y = digits()
    out: dict = {"statistics": {}}
    s = settings["statistics"]
    for granularity in s["granularity"]:
        for n in s["n_train"]:
            rows = []
            for split in tqdm(range(s["splits"]), desc=f"statistics {granularity} n={n}", disable=not progress):
                order = torch.from_numpy(np.random.default_rng(split).permutation(len(x)))
                rows.append(one_split(lambda g=granularity: Standardize(g, s["eps"]), x[order], y[order], n, s["n_test"]))
            out["statistics"][f"{granularity}/{n}"] = _collect(rows)

    s = settings["label_aware"]
    rows = []
    for split in tqdm(range(s["splits"]), desc="label-aware", disable=not progress):
        g = torch.Generator().manual_seed(split)
        n = s["n_train"] + s["n_test"] + s["n_new"]
        noise = torch.randn(n, s["pixels"], generator=g, dtype=torch.float64)
        coin = torch.randint(2, (n,), generator=g)
        rows.append(one_split(lambda: KeepCorrelated(s["k"]), noise, coin, s["n_train"], s["n_test"]))
    out["label_aware"] = _collect(rows)

    s = settings["whitening"]
    rows = []
    for split in tqdm(range(s["splits"]), desc="whitening", disable=not progress):
        order = torch.from_numpy(np.random.default_rng(split).permutation(len(x)))
        rows.append(one_split(lambda: Whitening("zca", eps=s["eps"]), x[order], y[order], s["n_train"], s["n_test"]))
    out["whitening"] = _collect(rows)
    return out


STUDY = Study(
    name="preprocessing_leakage",
    description="statistics fitted before the split vs on the training split; label-aware selection; whitening",
    chapter="01_preprocessing",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=1.5,
    atol=1e-12,  # accuracies are counts over a fixed test set: a rerun reproduces them exactly
    rtol=0.0,
)
