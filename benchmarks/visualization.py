"""Timing of course_lib.visualization (prints figures and ratios; never asserts).

* receptive_field (analytic, architecture only) vs measuring the field empirically (one backward pass of a
  central unit to the input) on torchvision's ResNet-18 and VGG16;
* top_activating_patches: several channels in one pass vs one call per channel;
* activation_maximization: milliseconds per ascent step on the course's SmallCNN.

Run: ``.venv/bin/python benchmarks/visualization.py``
"""

from __future__ import annotations

import torch
import torchvision
from _timing import timed  # benchmarks/_timing.py, beside this script

from course_lib.device import get_device
from course_lib.models import SmallCNN
from course_lib.visualization import activation_maximization, receptive_field, top_activating_patches


def _best_of(fn, repeat: int = 3) -> float:
    """The fastest of ``repeat`` calls (no warm-up)."""
    return timed(fn, "cuda" if torch.cuda.is_available() else None, warmup=0, min_time=0, min_repeats=repeat,
                 max_repeats=repeat, summary=min)


def _empirical(model: torch.nn.Module, layer: str, size: int, device: torch.device) -> None:
    module = dict(model.named_modules())[layer]
    out = {}
    handle = module.register_forward_hook(lambda m, i, o: out.setdefault("y", o))
    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    try:
        model(x)
    finally:
        handle.remove()
    y = out["y"]
    torch.autograd.grad(y[0, 0, y.shape[2] // 2, y.shape[3] // 2], x)


def main() -> None:
    device = get_device()
    print(f"device: {device}")
    for name, layer, size in (("resnet18", "layer4", 224), ("vgg16", "features", 224)):
        model = getattr(torchvision.models, name)(weights=None).to(device).eval()
        t_analytic = _best_of(lambda m=model, n=layer, s=size: receptive_field(m, n, input_size=s), repeat=5)
        t_empirical = _best_of(lambda m=model, n=layer, s=size: _empirical(m, n, s, device), repeat=2)
        print(f"receptive field of {name}.{layer}: analytic {t_analytic * 1e3:.2f} ms, empirical "
              f"{t_empirical * 1e3:.1f} ms, ratio empirical/analytic {t_empirical / t_analytic:.0f}x")

    model = SmallCNN().to(device).eval()
    images = torch.rand(512, 3, 64, 64, device=device)
    channels = list(range(8))
    t_one = _best_of(lambda: top_activating_patches(model, "features", channels, images, k=8), repeat=2)
    t_many = _best_of(lambda: [top_activating_patches(model, "features", c, images, k=8) for c in channels], repeat=2)
    print(f"top patches, 8 channels x 512 images: one pass {t_one:.2f} s, one call per channel {t_many:.2f} s, "
          f"ratio {t_many / t_one:.1f}x")

    steps = 50
    for batch in (1, 5):
        t = _best_of(lambda b=batch: activation_maximization(model, list(range(b)), steps=steps, tv=0.01, jitter=2,
                                                             progress=False), repeat=2)  # fmt: skip
        print(f"activation maximization, SmallCNN 64x64, {batch} target(s): {t / steps * 1e3:.1f} ms per step")


if __name__ == "__main__":
    main()
