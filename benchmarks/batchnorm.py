"""Timing of course_lib.batchnorm against torch, on the same inputs in one run.

1. Forward + backward of ``course_lib.batchnorm.BatchNorm2d`` (plain tensor operations, autograd) vs
   ``torch.nn.BatchNorm2d`` (one fused kernel) in training mode: prints the ratio ours / torch.
2. Inference of the zoo's ``shapes_gap`` classifier with its BN layers vs with them folded into the
   convolutions (``course_lib.batchnorm.fold_model``): prints the speed-up.

Usage: ``python benchmarks/batchnorm.py [--device cpu|cuda] [--repeat N]``. Medians of ``--repeat`` runs after a
warm-up, the two networks timed alternately on the same batch; on the CPU with one thread, two, and all of them.
"""

from __future__ import annotations

import argparse

import torch
from _timing import timed, timed_against  # benchmarks/_timing.py, beside this script
from torch import nn

from course_lib import zoo
from course_lib.batchnorm import BatchNorm2d, fold_model
from course_lib.data import ShapesDataset
from course_lib.device import get_device


def bench_forward_backward(device: torch.device, repeat: int, shape=(64, 32, 32, 32)) -> tuple[float, float]:
    x = torch.randn(shape, device=device, requires_grad=True)
    grad = torch.randn(shape, device=device)
    ours, ref = BatchNorm2d(shape[1]).to(device), nn.BatchNorm2d(shape[1]).to(device)

    def step(layer):
        def run():
            x.grad = None
            layer.zero_grad(set_to_none=True)
            layer(x).backward(grad)
        return run

    return median_seconds(step(ours), device, repeat), median_seconds(step(ref), device, repeat)


def median_seconds(fn, device: torch.device, repeat: int, warmup: int = 3) -> float:
    """Median of ``repeat`` timed calls after ``warmup`` untimed ones."""
    return timed(fn, device, warmup=warmup, min_time=0, min_repeats=repeat, max_repeats=repeat)


def paired_median_seconds(f, g, device: torch.device, repeat: int) -> tuple[float, float]:
    """Medians of f() and g() timed alternately, so that both see the same machine load."""
    return timed_against(f, g, device, min_time=0, min_pairs=repeat, max_pairs=repeat)[:2]


def bench_folding(device: torch.device, repeat: int, batch: int = 64) -> dict[str, tuple[float, float]]:
    model = zoo.load("shapes_gap", device=device)
    folded = fold_model(model)
    x = ShapesDataset(batch, seed=3).images.to(device)
    out = {}
    with torch.inference_mode():
        out["max logit difference"] = (model(x) - folded(x)).abs().max().item()
        out["whole network"] = paired_median_seconds(lambda: model(x), lambda: folded(x), device, repeat)
        out["first block (conv 3->16 + BN)"] = paired_median_seconds(
            lambda: model.features[:2](x), lambda: folded.features[:2](x), device, repeat)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else get_device()
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    ours, ref = bench_forward_backward(device, args.repeat)
    print(f"BN forward+backward (64, 32, 32, 32), training mode: course_lib {ours * 1e3:.2f} ms, "
          f"torch {ref * 1e3:.2f} ms, ratio course_lib/torch = {ours / ref:.2f}")

    threads = torch.get_num_threads()
    for n in sorted({1, min(2, threads), threads}) if device.type == "cpu" else [threads]:
        torch.set_num_threads(n)
        res = bench_folding(device, args.repeat)
        print(f"shapes_gap inference on 64 images, {n} thread(s) "
              f"(max logit difference {res.pop('max logit difference'):.1e}):")
        for what, (t_bn, t_folded) in res.items():
            print(f"  {what}: with BN {t_bn * 1e3:.2f} ms, folded {t_folded * 1e3:.2f} ms, "
                  f"speed-up = {t_bn / t_folded:.2f}x")
    torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
