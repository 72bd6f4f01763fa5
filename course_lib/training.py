r"""A small, device-agnostic training loop shared by every chapter and every zoo recipe.

:func:`fit` minimizes the mean loss over mini-batches with Adam or SGD,

.. math::

    \theta \leftarrow \theta - \eta \, \mathrm{step}\Big(\nabla_\theta \tfrac{1}{B}\textstyle\sum_{i=1}^{B}
    \ell\big(f_\theta(x_i), y_i\big)\Big),

and records, per epoch, the training loss and metrics (averaged over the epoch's samples, measured in train
mode as the model learns) and the same on held-out data (measured in eval mode after the epoch). Targets
may be class indices, tensors, tuples or dicts of tensors: with a custom ``loss_fn(output, target)`` and
``metrics={"name": fn(output, target)}`` the same loop trains the localization and pose models.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from ._checks import (
    check_choice,
    check_int,
    check_module,
    check_nonnegative,
    check_positive,
    check_seed,
    check_tensor,
    generator,
    module_device,
)
from ._state import model_mode
from .device import get_device

__all__ = ["accuracy", "fit", "predict", "evaluate", "evaluate_accuracy"]

Metric = Callable[[object, object], "float | torch.Tensor"]


def accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Fraction of rows whose arg-max score is the target class: :math:`\frac1N\sum_i [\arg\max_c z_{ic} = y_i]`.

    Example:
        >>> accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0])).item()
        0.5
    """
    return (output.argmax(dim=1) == target).float().mean()


def _to_device(obj, device: torch.device):
    """Move a tensor, or the tensors inside nested tuples/lists/dicts, to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _make_loader(data, batch_size: int, shuffle: bool = False, seed: int = 0) -> Iterable:
    """A ``DataLoader`` over ``data``: a ``Dataset``, an ``(inputs, targets)`` pair of tensors, or a
    ``DataLoader`` (returned unchanged). Shuffling uses its own generator seeded with ``seed``."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"data: inputs and targets differ in length: {x.shape[0]} vs {y.shape[0]}")
        data = TensorDataset(x, y)
    if not isinstance(data, Dataset):
        raise TypeError(
            f"data must be a Dataset, a DataLoader or an (inputs, targets) pair of tensors, got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError("data must not be empty")
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator(seed) if shuffle else None)


def _batch_size(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.shape[0]
    if isinstance(x, Mapping):
        return _batch_size(next(iter(x.values())))
    return _batch_size(x[0])


def _make_optimizer(name: str, params, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data,
    loss_fn: Callable | None = None,
    metrics: Mapping[str, Metric] | None = None,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    train_mode: bool = False,
) -> dict[str, float]:
    """Mean loss and metrics of ``model`` over ``data`` (sample-weighted over batches).

    The model is put in eval mode (or train mode with ``train_mode=True``, the forgotten-``eval()`` bug of
    chapter 2) and its mode is restored afterwards. In train mode BatchNorm's running statistics are
    restored too, so that measuring does not change the model.

    Returns:
        ``{"loss": ..., NAME: ...}`` with ``loss_fn`` defaulting to cross-entropy and ``metrics`` to
        ``{"acc": accuracy}``.
    """
    loss_fn, metrics = _defaults(loss_fn, metrics)
    device = torch.device(device) if device is not None else module_device(model)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    loader = _make_loader(data, batch_size)
    saved = {k: v.clone() for k, v in model.state_dict().items()} if train_mode else None
    totals: dict[str, float] = {"loss": 0.0, **{k: 0.0 for k in metrics}}
    n = 0
    try:
        with model_mode(model, train_mode):
            for x, y in loader:
                x, y = _to_device(x, device), _to_device(y, device)
                out = model(x)
                b = _batch_size(x)
                totals["loss"] += float(loss_fn(out, y)) * b
                for k, fn in metrics.items():
                    totals[k] += float(fn(out, y)) * b
                n += b
    finally:
        if saved is not None:
            model.load_state_dict(saved)
    return {k: v / n for k, v in totals.items()}


def evaluate_accuracy(
    model: nn.Module, data, device: torch.device | str | None = None, batch_size: int = 256, train_mode: bool = False
) -> float:
    """Classification accuracy of ``model`` on ``data`` (eval mode unless ``train_mode``).

    Example:
        >>> from course_lib.models import SmallCNN
        >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(5, (8,))
        >>> 0.0 <= evaluate_accuracy(SmallCNN(width=8), (x, y)) <= 1.0
        True
    """
    return evaluate(model, data, metrics={"acc": accuracy}, device=device, batch_size=batch_size,
                    train_mode=train_mode)["acc"]


@torch.no_grad()
def predict(
    model: nn.Module, data, device: torch.device | str | None = None, batch_size: int = 256
) -> torch.Tensor:
    """Concatenated outputs of ``model`` (eval mode) on ``data``: a tensor of inputs ``(N, ...)``, a
    ``Dataset``/``DataLoader`` yielding ``(input, target)`` or an ``(inputs, targets)`` pair. The result
    is on the model's device."""
    device = torch.device(device) if device is not None else module_device(model)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if isinstance(data, torch.Tensor):
        check_tensor(data, "data", finite=False)
        batches: Iterable = (data[i : i + batch_size] for i in range(0, data.shape[0], batch_size))
    else:
        batches = (x for x, _ in _make_loader(data, batch_size))
    with model_mode(model):
        outs = [model(_to_device(x, device)) for x in batches]
    if isinstance(outs[0], torch.Tensor):
        return torch.cat(outs)
    return type(outs[0])(torch.cat(parts) for parts in zip(*outs, strict=True))


def _defaults(loss_fn, metrics):
    if loss_fn is None:
        loss_fn = nn.functional.cross_entropy
        metrics = {"acc": accuracy} if metrics is None else metrics
    elif not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (output, target) -> loss, got {type(loss_fn).__name__}")
    metrics = dict(metrics or {})
    for k, fn in metrics.items():
        if not callable(fn):
            raise TypeError(f"metrics[{k!r}] must be callable (output, target) -> float, got {type(fn).__name__}")
    return loss_fn, metrics


def fit(
    model: nn.Module,
    train_data,
    val_data=None,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    schedule: str = "constant",
    loss_fn: Callable | None = None,
    metrics: Mapping[str, Metric] | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
    eval_batch_size: int = 256,
) -> dict[str, list[float]]:
    r"""Train ``model`` in place; return its history.

    Args:
        model: the network (moved to ``device``).
        train_data: a ``Dataset`` yielding ``(input, target)``, a ``DataLoader``, or an ``(inputs, targets)``
            pair of tensors. ``target`` may be a tensor, a tuple or a dict of tensors.
        val_data: the same kinds, evaluated (eval mode) after every epoch; optional.
        epochs: passes over ``train_data``.
        lr: the (initial) learning rate :math:`\eta`.
        batch_size: mini-batch size :math:`B` for training (``eval_batch_size`` for validation).
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (with ``momentum``).
        weight_decay: L2 weight decay passed to the optimizer.
        schedule: ``"constant"`` or ``"cosine"`` (learning rate annealed per step to 0,
            :math:`\eta_t = \tfrac{\eta}{2}(1 + \cos(\pi t / T))`).
        loss_fn: ``loss_fn(output, target) -> scalar``; cross-entropy by default.
        metrics: ``{name: fn(output, target) -> float}`` averaged like the loss; ``{"acc": accuracy}`` by
            default when ``loss_fn`` is the default, none otherwise.
        device: where to train; by default :func:`course_lib.device.get_device`.
        seed: seeds the shuffling (and dropout etc. through ``torch.manual_seed``); the same seed gives the
            same run on the CPU.
        progress: show a ``tqdm`` progress bar per epoch.

    Returns:
        ``{"epoch", "train_loss", "val_loss", "time", "lr", "step_loss"}`` plus ``train_NAME`` / ``val_NAME``
        for each metric: lists with one value per epoch (``step_loss``: one per mini-batch; ``time``:
        cumulative seconds; the ``val_`` lists only with ``val_data``). A non-finite training loss stops the
        run early (``history["diverged"]`` is then ``[True]``), as a too-large learning rate would.

    Example:
        >>> from course_lib.models import SmallCNN
        >>> x, y = torch.rand(16, 3, 32, 32), torch.randint(5, (16,))
        >>> h = fit(SmallCNN(width=8), (x, y), epochs=1, batch_size=8, progress=False, device="cpu")
        >>> sorted(h)[:4]
        ['diverged', 'epoch', 'lr', 'step_loss']
    """
    epochs, lr, batch_size, eval_batch_size, weight_decay, momentum, seed = _check_fit_args(
        model, epochs, lr, batch_size, eval_batch_size, weight_decay, momentum, seed, optimizer, schedule
    )
    loss_fn, metrics = _defaults(loss_fn, metrics)
    device = torch.device(device) if device is not None else get_device()

    torch.manual_seed(seed)
    model.to(device)
    loader = _make_loader(train_data, batch_size, shuffle=True, seed=seed)
    opt, sched = _optimizer_and_schedule(model, optimizer, schedule, lr, weight_decay, momentum,
                                         total_steps=epochs * len(loader))
    history = _new_history(metrics, with_val=val_data is not None)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        history["lr"].append(opt.param_groups[0]["lr"])
        bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
        train = _train_epoch(model, bar, loss_fn, metrics, opt, sched, device, history["step_loss"], progress)
        bar.close()
        diverged = train is None
        if diverged:  # a non-finite loss: the epoch's numbers are NaN and the run stops
            history["diverged"] = [True]
            train = {k: math.nan for k in ("loss", *metrics)}
        val = None
        if val_data is not None:
            val = (
                {k: math.nan for k in ("loss", *metrics)}
                if diverged
                else evaluate(model, val_data, loss_fn, metrics, device=device, batch_size=eval_batch_size)
            )
        _record_epoch(history, epoch, train, val, time.perf_counter() - start)
        if progress:
            tqdm.write(_epoch_summary(history, epoch, epochs, metrics, val is not None))
        if diverged:
            break
    model.eval()
    return history


def _check_fit_args(model, epochs, lr, batch_size, eval_batch_size, weight_decay, momentum, seed, optimizer,
                    schedule) -> tuple:
    """``fit``'s numeric arguments, checked and normalized (a ``ValueError``/``TypeError`` names the bad one)."""
    check_module(model)
    checked = (
        check_int(epochs, "epochs", minimum=1),
        check_positive(lr, "lr"),
        check_int(batch_size, "batch_size", minimum=1),
        check_int(eval_batch_size, "eval_batch_size", minimum=1),
        check_nonnegative(weight_decay, "weight_decay"),
        check_nonnegative(momentum, "momentum"),
        check_seed(seed),
    )
    check_choice(optimizer, "optimizer", ("adam", "adamw", "sgd"))
    check_choice(schedule, "schedule", ("constant", "cosine"))
    return checked


def _optimizer_and_schedule(model: nn.Module, optimizer: str, schedule: str, lr: float, weight_decay: float,
                            momentum: float, total_steps: int):
    r"""The optimizer over the trainable parameters, and the per-step cosine schedule
    :math:`\eta_t = \tfrac{\eta}{2}(1 + \cos(\pi t / T))` (``None`` for a constant rate)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (all have requires_grad=False)")
    opt = _make_optimizer(optimizer, params, lr, weight_decay, momentum)
    if schedule != "cosine":
        return opt, None
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / total_steps)))


def _new_history(metrics: Mapping[str, Metric], with_val: bool) -> dict[str, list]:
    """Empty per-epoch lists: ``epoch``, ``train_loss``, ``time``, ``lr``, ``step_loss``, ``diverged`` (``[False]``),
    ``train_NAME`` per metric, and ``val_loss``/``val_NAME`` when there is held-out data."""
    history: dict[str, list] = {"epoch": [], "train_loss": [], "time": [], "lr": [], "step_loss": [],
                                "diverged": [False]}
    for k in metrics:
        history[f"train_{k}"] = []
    if with_val:
        history["val_loss"] = []
        for k in metrics:
            history[f"val_{k}"] = []
    return history


def _train_epoch(model: nn.Module, batches, loss_fn, metrics, opt, sched, device, step_loss: list,
                 progress: bool) -> dict[str, float] | None:
    """One pass of optimizer steps over ``batches`` in train mode.

    Appends every step's loss to ``step_loss`` and returns the epoch's sample-weighted mean loss and metrics
    (measured on each batch as the model learns), or ``None`` if the loss became non-finite (the pass stops at
    that step, after appending it)."""
    model.train()
    sums = {"loss": 0.0, **{k: 0.0 for k in metrics}}
    n = 0
    for x, y in batches:
        x, y = _to_device(x, device), _to_device(y, device)
        out = model(x)
        loss = loss_fn(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        b = _batch_size(x)
        value = float(loss.detach())
        step_loss.append(value)
        if not math.isfinite(value):
            return None
        sums["loss"] += value * b
        with torch.no_grad():
            for k, fn in metrics.items():
                sums[k] += float(fn(out.detach() if isinstance(out, torch.Tensor) else out, y)) * b
        n += b
        if progress:
            batches.set_postfix(loss=f"{value:.3f}")
    return {k: float(v) / max(n, 1) for k, v in sums.items()}


def _record_epoch(history: dict[str, list], epoch: int, train: Mapping[str, float],
                  val: Mapping[str, float] | None, elapsed: float) -> None:
    """Append one epoch's numbers to ``history`` (``time`` is cumulative seconds)."""
    history["epoch"].append(epoch)
    for k, v in train.items():
        history[f"train_{k}"].append(v)
    for k, v in (val or {}).items():
        history[f"val_{k}"].append(v)
    history["time"].append(elapsed)


def _epoch_summary(history: dict[str, list], epoch: int, epochs: int, metrics, with_val: bool) -> str:
    msg = f"epoch {epoch}/{epochs}: train loss {history['train_loss'][-1]:.4f}"
    if with_val:
        msg += ", " + ", ".join(f"val {k} {history[f'val_{k}'][-1]:.4f}" for k in ("loss", *metrics))
    return msg
