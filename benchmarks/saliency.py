"""Time the saliency explainers of ``course_lib.saliency`` on torchvision's ResNet-18 (random weights), 224×224.

Prints, for batch sizes 1 and 16 on the available device:

* the time per image of CAM, Grad-CAM, Grad-CAM++, LayerCAM, Smooth Grad-CAM++, RISE and Score-CAM;
* each method's time as a ratio to ONE bare forward pass of the same batch (``torch.no_grad``), the two
  measured in alternation (:func:`timed_against`) so that drifting machine speed cancels out: targets
  Grad-CAM and Grad-CAM++ <= 1.2x, since gradients are needed only from the score down to ``layer4``;
* RISE's and Score-CAM's times as ratios to their bare masked forward passes (the same number of forward passes
  of ``batch_size`` images, without making or applying masks): target <= 1.1x;
* where the benchmark-only peers are installed (``pip install -e .[bench]``: ``grad-cam`` a.k.a.
  pytorch-grad-cam, and ``torchcam``), their Grad-CAM / Grad-CAM++ timed in the same run, the ratio
  ours / theirs, and the largest absolute difference between their maps and ours.

Then the same on the real ImageNet network ``course_lib.pretrained.efficientnet_lite0`` (pretrained weights,
a course photo at 224×224, target layer ``head``, 1280×7×7):

* CAM, Grad-CAM, Grad-CAM++ and LayerCAM as ratios to its bare forward pass (goal <= 1.2x);
* Score-CAM and RISE as ratios to its bare masked forward passes (goal <= 1.1x);
* Augmented Grad-CAM (the library's defaults): the solver's share of its time (goal <= 25 %), from the
  ``timing`` of each call's ``explain`` result (both parts inside one call, so drift cancels).

Usage: ``python benchmarks/saliency.py [--device cpu|cuda] [--quick] [--only resnet|lite0]`` (``--quick``: batch
1 only, fewer masks).
No timing is asserted anywhere; this script only prints.
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
import torchvision
from _timing import seconds, timed, timed_against  # benchmarks/_timing.py, beside this script

from course_lib.device import get_device
from course_lib.saliency import (
    CAM,
    RISE,
    AugmentedGradCAM,
    GradCAM,
    GradCAMPlusPlus,
    LayerCAM,
    ScoreCAM,
    SmoothGradCAMPlusPlus,
    normalize_maps,
)
from course_lib.saliency.cam import gradcam_plus_plus_weights


def peers():
    found = {}
    try:
        import pytorch_grad_cam  # noqa: F401

        found["pytorch-grad-cam"] = True
    except ImportError as err:
        print(f"pytorch-grad-cam is missing ({err}); install the bench extra: pip install -e '.[bench]'")
    try:
        import torchcam  # noqa: F401

        found["torchcam"] = True
    except ImportError as err:
        print(f"torchcam is missing ({err}); install the bench extra: pip install -e '.[bench]'")
    return found


def pgc_runner(model, method: str, x, targets):
    from pytorch_grad_cam import GradCAM as PGradCAM
    from pytorch_grad_cam import GradCAMPlusPlus as PGradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = PGradCAM if method == "gradcam" else PGradCAMPlusPlus
    wanted = [ClassifierOutputTarget(int(c)) for c in targets]

    def run():
        with cls(model=model, target_layers=[model.layer4[-1]]) as cam:
            out = cam(input_tensor=x, targets=wanted)
        model.zero_grad(set_to_none=True)  # it fills the weights' .grad: leave the model as we found it
        return torch.from_numpy(out)

    return run


def torchcam_runner(model, method: str, x, targets):
    from torchcam.methods import GradCAM as TGradCAM
    from torchcam.methods import GradCAMpp as TGradCAMpp

    cls = TGradCAM if method == "gradcam" else TGradCAMpp
    idx = [int(c) for c in targets]

    def run():
        with cls(model, "layer4") as extractor:
            scores = model(x)
            (maps,) = extractor(class_idx=idx, scores=scores)
        return maps.detach()

    return run


class _GradCAMPlusPlusWithEps(GradCAMPlusPlus):
    """Grad-CAM++ with ``eps`` added to the denominator of alpha, as pytorch-grad-cam does (the extension point
    of the CAM family's base class: only the weights differ)."""

    eps = 1e-7

    def _weights(self, activations, gradients, targets, images):
        return gradcam_plus_plus_weights(activations, gradients, eps=self.eps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--quick", action="store_true", help="batch 1 only and fewer RISE masks")
    parser.add_argument("--only", choices=["resnet", "lite0"], default=None, help="run one of the two networks")
    args = parser.parse_args()
    device = get_device(args.device)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}, torchvision {torchvision.__version__}")
    if args.only != "lite0":
        have = peers()
        model = torchvision.models.resnet18(weights=None).eval().to(device)
        batches = [1] if args.quick else [1, 16]
        n_masks = 4000 if device.type == "cuda" else (64 if args.quick else 256)
        rise_batch = 200 if device.type == "cuda" else 32
        n_smooth = 8
        for b in batches:
            bench_batch(model, b, device, have, n_masks, rise_batch, n_smooth)
    if args.only != "resnet":
        bench_pretrained(device, args.quick)


def forward_baseline(model, x: torch.Tensor, device: torch.device):
    """The arg-max targets of ``x``, a bare no-grad forward pass of ``model`` on it, and that pass's time."""
    with torch.no_grad():
        targets = model(x).argmax(1)

    def forward():
        with torch.no_grad():
            model(x)

    return targets, forward, timed(forward, device)


def bench_pretrained(device: torch.device, quick: bool) -> None:
    """The ratios of the pretrained EfficientNet-Lite0 (see the module docstring), one course photo at 224×224."""
    from course_lib.data import load_photo
    from course_lib.pretrained import efficientnet_lite0, imagenet_preprocess

    net = efficientnet_lite0(device)
    x = imagenet_preprocess(load_photo("coffee")).to(device)
    targets, forward, t_fwd = forward_baseline(net, x, device)
    print(f"\n== pretrained EfficientNet-Lite0, one 224×224 photo: bare forward pass {1e3 * t_fwd:.2f} ms")
    print(f"{'method':<26}{'ms/image':>10}{'x forward':>11}   goal")
    for label, explainer in (("CAM", CAM(net, "head", fc="classifier")), ("Grad-CAM", GradCAM(net, "head")),
                             ("Grad-CAM++", GradCAMPlusPlus(net, "head")), ("LayerCAM", LayerCAM(net, "head"))):
        t, _, ratio = timed_against(lambda e=explainer: e(x, targets), forward, device)
        print(f"{label:<26}{1e3 * t:>10.2f}{ratio:>11.2f}   <= 1.2x")

    n_masks = 2000 if device.type == "cuda" else (64 if quick else 128)
    rise_batch = 200 if device.type == "cuda" else 32
    rise = RISE(net, n_masks=n_masks, batch_size=rise_batch, seed=0)
    masked = torch.rand(rise_batch, 3, 224, 224, device=device)
    n_passes = math.ceil(n_masks / rise_batch)

    def bare_passes():
        with torch.no_grad():
            for _ in range(n_passes):
                net(masked)

    t_rise, _, rise_ratio = timed_against(lambda: rise(x, targets), bare_passes, device, min_pairs=3, max_pairs=6)
    print(f"{f'RISE (N={n_masks})':<26}{1e3 * t_rise:>10.2f}{t_rise / t_fwd:>11.2f}   "
          f"{rise_ratio:.3f}x its {n_passes} bare masked forward passes of {rise_batch} images (goal <= 1.1x)")

    score_cam_line(net, "head", x, targets, device, t_fwd, 1)

    aug = AugmentedGradCAM(net, "head")
    aug(x, targets)  # warm-up
    shares, totals = [], []
    for _ in range(3 if quick else 5):
        timing = aug.explain(x, targets).timing
        shares.append(timing["solver_s"] / timing["total_s"])
        totals.append(timing["total_s"])
    print(f"{f'Augmented Grad-CAM (L={aug.n_augmentations})':<26}{1e3 * statistics.median(totals):>10.2f}"
          f"{statistics.median(totals) / t_fwd:>11.2f}   solver {100 * statistics.median(shares):.1f} % of its time "
          f"(goal <= 25 %; {aug.iterations} iterations)")


def score_cam_line(model, layer: str, x: torch.Tensor, targets, device: torch.device, t_fwd: float, b: int,
                   batch_size: int = 64) -> None:
    """Score-CAM, one call (it takes a forward pass per feature map), against as many bare forward passes of
    ``batch_size`` images as it makes (goal <= 1.1x: masks and weights cost little next to the passes)."""
    from course_lib._state import capture

    with capture(dict(model.named_modules())[layer]) as hooked, torch.no_grad():
        model(x)
    flat = hooked.last().flatten(2)
    n_masked = int(((flat.amax(2) - flat.amin(2)) > 0).sum())  # the non-constant maps: one masked input each
    score_cam = ScoreCAM(model, layer, batch_size=batch_size)
    masked = torch.rand(batch_size, *x.shape[1:], device=device)
    n_passes = math.ceil(n_masked / batch_size)

    def bare_passes():
        with torch.no_grad():
            for _ in range(n_passes):
                model(masked)

    score_cam(x, targets)  # warm-up
    t_score, t_bare = seconds(lambda: score_cam(x, targets), device), seconds(bare_passes, device)
    print(f"{f'Score-CAM ({n_masked} maps)':<26}{1e3 * t_score / b:>10.2f}{t_score / t_fwd:>11.2f}   "
          f"{t_score / t_bare:.3f}x its {n_passes} bare forward passes of {batch_size} images (goal <= 1.1x)")


def bench_batch(model, b: int, device: torch.device, have: dict, n_masks: int, rise_batch: int, n_smooth: int) -> None:
    """Time every method (and the peers) on one random batch of ``b`` images."""
    x = torch.rand(b, 3, 224, 224, device=device)
    targets, forward, t_fwd = forward_baseline(model, x, device)
    print(f"\n== batch {b}: one bare forward pass {1e3 * t_fwd:.2f} ms ({1e3 * t_fwd / b:.2f} ms/image)")
    print(f"{'method':<26}{'ms/image':>10}{'x forward':>11}   notes")
    ours = {
        "CAM": CAM(model, "layer4", fc="fc"),
        "Grad-CAM": GradCAM(model, "layer4"),
        "Grad-CAM++": GradCAMPlusPlus(model, "layer4"),
        "LayerCAM": LayerCAM(model, "layer4"),
        f"Smooth Grad-CAM++ (n={n_smooth})": SmoothGradCAMPlusPlus(model, "layer4", n_samples=n_smooth),
    }
    for label, explainer in ours.items():
        t, _, ratio = timed_against(lambda e=explainer: e(x, targets), forward, device)
        note = f"{ratio / n_smooth:.2f}x per noisy copy" if label.startswith("Smooth") else ""
        print(f"{label:<26}{1e3 * t / b:>10.2f}{ratio:>11.2f}   {note}")

    # RISE against its bare masked forward passes (the same number of batches, no masks made or applied)
    if device.type == "cuda" or b == 1:
        rise = RISE(model, n_masks=n_masks, batch_size=rise_batch, seed=0)
        masked = torch.rand(rise_batch, 3, 224, 224, device=device)
        n_passes = b * math.ceil(n_masks / rise_batch)

        def bare_passes():
            with torch.no_grad():
                for _ in range(n_passes):
                    model(masked)

        t_rise, _, rise_ratio = timed_against(lambda: rise(x, targets), bare_passes, device, min_pairs=2, max_pairs=5)
        print(
            f"{f'RISE (N={n_masks})':<26}{1e3 * t_rise / b:>10.2f}{t_rise / t_fwd:>11.2f}   "
            f"{rise_ratio:.3f}x its {n_passes} bare masked forward passes of {rise_batch} images"
        )
    else:
        print("RISE                      skipped at this batch size on the CPU (minutes); see batch 1")
    if device.type == "cuda" or b == 1:
        score_cam_line(model, "layer4", x, targets, device, t_fwd, b)

    # peers, timed in the same run, and the difference of their maps from ours
    for peer, make in (("pytorch-grad-cam", pgc_runner), ("torchcam", torchcam_runner)):
        if peer not in have:
            continue
        for method, label, cls in (("gradcam", "Grad-CAM", GradCAM), ("gradcam++", "Grad-CAM++", GradCAMPlusPlus)):
            run = make(model, method, x, targets)
            t_peer, _, peer_ratio = timed_against(run, forward, device)
            _, _, ours_over_theirs = timed_against(lambda c=cls: c(model, "layer4")(x, targets), run, device)
            theirs = run().float().to(device)
            raw = cls(model, "layer4")(x, targets, upsample=False, normalize=False)
            if peer == "pytorch-grad-cam":  # (N, 224, 224) maps in [0, 1]
                as_returned = (cls(model, "layer4")(x, targets) - theirs).abs().max()
                diff = f"max |ours - theirs| {as_returned:.2e}"
                if method == "gradcam++":  # they add eps = 1e-7 to the denominator of alpha
                    with_eps = _GradCAMPlusPlusWithEps(model, "layer4")(x, targets)
                    diff += f" ({(with_eps - theirs).abs().max():.2e} with their eps in alpha)"
            else:  # (N, 7, 7) normalized maps
                diff = f"max |ours - theirs| {(normalize_maps(raw) - theirs).abs().max():.2e} at 7x7"
            print(
                f"{peer + ' ' + label:<26}{1e3 * t_peer / b:>10.2f}{peer_ratio:>11.2f}   "
                f"ours/theirs {ours_over_theirs:.2f}; {diff}"
            )


if __name__ == "__main__":
    main()
