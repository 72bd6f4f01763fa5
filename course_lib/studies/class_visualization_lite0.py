r"""Chapter 3's class visualizations of EfficientNet-Lite0: no prior vs the classic priors vs the recipe of
Olah et al. (*Feature Visualization*, Distill 2017); channel visualizations; and the class purity of the small
network's channels at every layer.

**Classes** (a rule fixed before any image was made): the top-1 class the network gives each of the eight
course photos at 224×224 (:data:`course_lib.data.PHOTO_NAMES`), computed in :func:`run` and stored.

**Arms** (:func:`course_lib.visualization.feature_visualization`, Adam, 224×224, the class logit before the
softmax, the same number of steps, three seeds each):

* ``none`` — ascent on the pixels, no prior;
* ``priors`` — ascent on the pixels with :math:`\lambda_2 = 10^{-3}`, :math:`\lambda_{TV} = 5\cdot 10^{-3}` and a
  random circular jitter of up to 8 pixels (Simonyan et al. 2014; Mahendran & Vedaldi 2015; Mordvintsev et
  al. 2015);
* ``robust_fourier`` — decorrelated Fourier parameterization and, at every step, a random shift (±16 px),
  scaling (0.9–1.1) and rotation (±10°).

After ``checkpoints`` steps each image is measured: the class logit and probability on the image itself; the
mean probability over ``n_eval_transforms`` fixed random transformations drawn from a separate generator
(shift ±16 px, scale 0.9–1.1, rotation ±10°: does the evidence survive a small change of view?); the total
variation per pixel; and the share of the image's spectral energy (per channel, mean removed) above half the
Nyquist frequency (``hf_share``), next to the same numbers for the course photos. For the seeds in
``image_seeds`` the final images are stored as 112×112 PNGs (base64).

**Channels**: for ``blocks.4`` and ``blocks.7`` the ``n_channels`` channels with the strongest response on the
course photos at 224 (the chapter's rule for its patch figure), visualized with ``robust_fourier`` (seed 0),
stored as PNGs with the channel mean reached.

**Purity**: for every convolution (after its ReLU) of ``shapes_gap`` and every channel, the share of its
top-8 held-out images that belong to the most frequent class, for three independent sets of 600 held-out
images (seeds 2024–2026: new images, the same trained network), and the chance level of random sets of eight.

One CPU thread per run (independent runs in three worker processes): about 11 CPU-minutes, so ~10 minutes
on a quiet two-core machine (it took over an hour of wall time on one shared by five users). The quick slice:
the first class, seed 0, 16 steps, no images, no channels, the first image set.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import torch

from . import Study, torch_threads

ARMS = {
    "none": {"param": "pixel", "robust": False, "l2": 0.0, "tv": 0.0, "jitter": 0},
    "priors": {"param": "pixel", "robust": False, "l2": 1e-3, "tv": 5e-3, "jitter": 8},
    "robust_fourier": {"param": "fourier", "robust": True, "l2": 0.0, "tv": 0.0, "jitter": 0},
}

SETTINGS = {
    "model": "efficientnet_lite0", "image_size": 224, "lr": 0.05, "steps": 128, "checkpoints": [16, 64, 128],
    "arms": ARMS, "n_classes": 8, "seeds": [0, 1, 2], "n_eval_transforms": 6, "eval_seed": 12345,
    "image_seeds": [0], "image_side": 112,
    "channel_layers": ["blocks.4", "blocks.7"], "n_channels": 2,
    "purity": {"model": "shapes_gap", "n_images": 600, "data_seeds": [2024, 2025, 2026], "k": 8,
               "n_chance": 2000},
}
QUICK = {**SETTINGS, "steps": 16, "checkpoints": [16], "n_classes": 1, "seeds": [0], "image_seeds": [],
         "channel_layers": [], "purity": {**SETTINGS["purity"], "data_seeds": [2024]}}


def png_b64(image: torch.Tensor, side: int) -> str:
    """A ``(3, H, W)`` image in [0, 1] as a ``side``×``side`` PNG, base64-encoded."""
    from PIL import Image

    small = torch.nn.functional.interpolate(image[None].float().cpu(), size=side, mode="bilinear",
                                            antialias=True, align_corners=False)[0]
    arr = (small.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_png(text: str) -> torch.Tensor:
    """The ``(3, H, W)`` float image in [0, 1] that :func:`png_b64` stored."""
    from PIL import Image

    arr = np.array(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 255


def hf_share(images: torch.Tensor) -> torch.Tensor:
    """Per image: the share of the spectral energy (per channel, mean removed) at frequencies above half the
    Nyquist frequency (|f| > 0.25 cycles per pixel)."""
    x = images.float() - images.float().mean((2, 3), keepdim=True)
    power = torch.fft.rfft2(x).abs().pow(2).sum(1)
    h, w = images.shape[-2:]
    f = (torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2).sqrt()
    return (power[:, f > 0.25].sum(1) / power.flatten(1).sum(1)).cpu()


def eval_transforms(n: int, seed: int) -> list[torch.Tensor]:
    """``n`` fixed random transformation draws (the generator states :func:`robust_transform` consumes)."""
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def measure(net, images: torch.Tensor, targets: torch.Tensor, n_eval: int, eval_seed: int) -> dict:
    """The numbers stored for each image (module doc)."""
    from ..visualization import total_variation
    from ..visualization.feature_vis import robust_transform

    rows = torch.arange(len(targets))
    with torch.no_grad():
        logits = net(images)
        p = logits.softmax(1)[rows, targets]
        moved = torch.stack([net(robust_transform(images, g)).softmax(1)[rows, targets]
                             for g in eval_transforms(n_eval, eval_seed)]).mean(0)
    n_px = images.shape[-1] * images.shape[-2]
    return {"logit": logits[rows, targets].tolist(), "p": p.tolist(), "p_transformed": moved.tolist(),
            "tv_per_pixel": (total_variation(images) / n_px).tolist(), "hf_share": hf_share(images).tolist()}


def photo_classes(net, size: int) -> list[int]:
    from ..data import PHOTO_NAMES, load_photo

    with torch.no_grad():
        return net(torch.stack([load_photo(n, size=size) for n in PHOTO_NAMES])).argmax(1).tolist()


def strongest_channels(net, layer: str, n: int, size: int) -> list[int]:
    """The chapter's rule: the ``n`` channels whose strongest response on the course photos is largest."""
    from ..data import PHOTO_NAMES, load_photo
    from ..visualization import top_activating_patches

    photos = torch.stack([load_photo(name, size=size) for name in PHOTO_NAMES])
    n_ch = net.get_submodule(layer).project[0].out_channels
    probe = top_activating_patches(net, layer, range(n_ch), photos, k=1, per_image=False)
    return [t.channel for t in sorted(probe, key=lambda t: -float(t.values[0]))[:n]]


def purity_table(p: dict) -> dict:
    """Mean class purity of every channel's top-k images, per layer of ``shapes_gap`` and image set."""
    from torch import nn

    from .. import zoo
    from ..data import SHAPE_CLASSES, ShapesDataset
    from ..visualization import top_activating_patches

    model = zoo.load(p["model"], device="cpu")
    relus = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.ReLU)]
    n_out = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    out: dict = {"layers": [f"conv{i + 1}" for i in range(len(relus))], "sets": {}}
    for seed in p["data_seeds"]:
        data = ShapesDataset(p["n_images"], seed=seed)
        labels = data.labels

        def purity(idx, labels=labels):
            return float(torch.bincount(labels[idx], minlength=len(SHAPE_CLASSES)).max()) / len(idx)

        per_layer = {}
        for i, (name, n_ch) in enumerate(zip(relus, n_out, strict=True)):
            tops = top_activating_patches(model, name, range(n_ch), data.images, k=p["k"])
            per_layer[f"conv{i + 1}"] = [purity(t.indices.cpu()) for t in tops]
        g = torch.Generator().manual_seed(seed)
        chance = float(np.mean([purity(torch.randperm(len(labels), generator=g)[: p["k"]])
                                for _ in range(p["n_chance"])]))
        out["sets"][str(seed)] = {"per_channel": per_layer, "chance": chance}
    return out


#: independent runs go to this many worker processes (one thread each: the same numbers as one process)
WORKERS = 3
_NET: dict = {}


def _one_run(job):
    """One (arm, class, seed) ascent and its measurements, on one thread."""
    from ..pretrained import efficientnet_lite0
    from ..visualization.feature_vis import feature_visualization

    s, arm, c, seed, device = job
    with torch_threads(1):
        if device not in _NET:
            _NET[device] = efficientnet_lite0(device)
        net = _NET[device]
        r = feature_visualization(net, c, steps=s["steps"], lr=s["lr"], image_size=s["image_size"], seed=seed,
                                  checkpoints=s["checkpoints"], keep_checkpoint_images=True, **s["arms"][arm])
        per_step = {}
        for step, img in r.checkpoint_images.items():
            m = measure(net, img, torch.tensor([c]), s["n_eval_transforms"], s["eval_seed"])
            per_step[str(step)] = {k: v[0] for k, v in m.items()}
        png = png_b64(r.images[0], s["image_side"]) if seed in s["image_seeds"] else None
        return (arm, c, seed), per_step, png


def _report(out, categories) -> None:
    (arm, c, seed), per_step, _ = out
    last = per_step[max(per_step, key=int)]
    print(f"{arm:15s} {categories[c]:15s} seed {seed}: logit {last['logit']:.1f} p {last['p']:.3f} "
          f"p_transformed {last['p_transformed']:.3f} hf {last['hf_share']:.3f}", flush=True)


def run(settings: dict, progress: bool = False, device: str = "cpu") -> dict:
    """The class and channel visualizations and the purity table (module doc), on one CPU thread."""
    with torch_threads(1):
        return _run(settings, progress, device)


def _run(s: dict, progress: bool, device: str) -> dict:
    from ..data import PHOTO_NAMES, load_photo
    from ..pretrained import IMAGENET_CATEGORIES, efficientnet_lite0
    from ..visualization.feature_vis import feature_visualization

    net = efficientnet_lite0(device)
    size = s["image_size"]
    classes = photo_classes(net, size)[: s["n_classes"]]
    result: dict = {"classes": {str(c): IMAGENET_CATEGORIES[c] for c in classes},
                    "photo_of_class": {str(c): PHOTO_NAMES[i] for i, c in enumerate(classes)}}
    photos = torch.stack([load_photo(n, size=size) for n in PHOTO_NAMES])
    ref = measure(net, photos, torch.tensor(photo_classes(net, size)), s["n_eval_transforms"], s["eval_seed"])
    result["photos"] = {k: v[: s["n_classes"]] for k, v in ref.items()}
    jobs = [(arm, c, seed) for arm in s["arms"] for c in classes for seed in s["seeds"]]
    args = [(s, arm, c, seed, device) for arm, c, seed in jobs]
    if len(jobs) > WORKERS and device == "cpu":
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
            outs = []
            for out in pool.imap(_one_run, args):
                outs.append(out)
                if progress:
                    _report(out, IMAGENET_CATEGORIES)
    else:
        outs = []
        for a in args:
            outs.append(_one_run(a))
            if progress:
                _report(outs[-1], IMAGENET_CATEGORIES)
    runs: dict = {arm: {str(c): {} for c in classes} for arm in s["arms"]}
    images: dict = {}
    for (arm, c, seed), (_, per_step, png) in zip(jobs, outs, strict=True):
        runs[arm][str(c)][str(seed)] = per_step
        if png is not None:
            images.setdefault(arm, {})[str(c)] = png
    result["runs"] = runs
    result["images"] = images
    channels: dict = {}
    for layer in s["channel_layers"]:
        chans = strongest_channels(net, layer, s["n_channels"], size)
        r = feature_visualization(net, chans, steps=s["steps"], lr=s["lr"], image_size=size, seed=0,
                                  target_layer=layer,
                                  **s["arms"]["robust_fourier"])
        channels[layer] = {str(c): {"mean": float(v), "image": png_b64(img, s["image_side"])}
                           for c, v, img in zip(chans, r.score, r.images, strict=True)}
        if progress:
            print(layer, chans, r.score.tolist(), flush=True)
    result["channels"] = channels
    result["purity"] = purity_table(s["purity"])
    return result


STUDY = Study(
    name="class_visualization_lite0",
    description="EfficientNet-Lite0 class visualizations: no prior vs L2/TV/jitter vs robust Fourier (8 classes, 3 "
                "seeds); channel visualizations; shapes_gap class purity per layer",
    chapter="03_cnn_visualization",
    settings=SETTINGS,
    quick=QUICK,
    run=run,
    minutes=15,
    atol=1e-3,
    rtol=1e-3,
)

__all__ = ["STUDY", "SETTINGS", "QUICK", "ARMS", "decode_png", "png_b64", "hf_share", "measure"]
