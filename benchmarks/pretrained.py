"""Time the packaged ImageNet EfficientNet-Lite0 of ``course_lib.pretrained`` on the course photos, 224×224.

Prints, for batch sizes 1 and 16 on the available device:

* one bare forward pass (``torch.no_grad``), per batch and per image;
* Grad-CAM on ``head`` (the last convolutional stage, 1280×7×7) as a ratio to that forward pass, the two
  measured in alternation (``timed_against`` of ``benchmarks/saliency.py``) so that a drifting machine speed
  cancels out: goal <= 1.2x, as for ResNet-18 (the backward pass stops at ``head``, one 1×1 conv from the end).

Usage: ``python benchmarks/pretrained.py [--device cpu|cuda] [--quick]`` (``--quick``: batch 1 only).
No timing is asserted anywhere; this script only prints.
"""

from __future__ import annotations

import argparse

import torch
from _timing import timed, timed_against  # benchmarks/_timing.py, beside this script

from course_lib.device import get_device
from course_lib.pretrained import efficientnet_lite0, photo_batch, top_k
from course_lib.saliency import GradCAM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--quick", action="store_true", help="batch 1 only")
    args = parser.parse_args()
    device = get_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}")
    model = efficientnet_lite0(device)
    photos = photo_batch().to(device)  # the 8 course photos
    with torch.no_grad():
        print("top-1 per photo:", [top[0][0] for top in top_k(model(photos), k=1)])
    print(f"{'batch':>5}{'forward ms':>12}{'ms/image':>10}{'Grad-CAM ms':>13}{'x forward':>11}")
    for b in [1] if args.quick else [1, 16]:
        bench_batch(model, photos.repeat(2, 1, 1, 1)[:b], device)


def bench_batch(model, x: torch.Tensor, device: torch.device) -> None:
    """One row: the bare forward pass of batch ``x``, and Grad-CAM on ``head`` timed in alternation with it."""
    explainer = GradCAM(model, "head")

    def forward():
        with torch.no_grad():
            model(x)

    t_fwd = timed(forward, device)
    t_cam, t_base, ratio = timed_against(lambda: explainer(x), forward, device)
    b = x.shape[0]
    print(f"{b:>5}{1e3 * t_fwd:>12.2f}{1e3 * t_fwd / b:>10.2f}{1e3 * t_cam:>13.2f}{ratio:>11.2f}"
          f"   (forward {1e3 * t_base:.2f} ms beside Grad-CAM)")

if __name__ == "__main__":
    main()
