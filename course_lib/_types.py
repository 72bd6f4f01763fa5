"""Type aliases for the arguments that recur across ``course_lib`` (for hints and docstrings; no runtime checks).

* :data:`Images` — a batch ``(N, C, H, W)`` of float images (a tensor; NumPy arrays are accepted where noted);
* :data:`Maps` — ``(N, H, W)`` saliency or heat maps;
* :data:`Boxes` — ``(N, 4)`` boxes (the format, ``xyxy`` or ``xyhw``, is stated by each function);
* :data:`Joints` — ``(N, J, 2)`` joint coordinates ``(x, y)``;
* :data:`Targets` — the classes to explain: ``None`` (each image's arg-max class), one ``int`` for every image,
  or an ``(N,)`` integer tensor or sequence;
* :data:`Layer` — a submodule of a model or its dotted name (``"features"``, ``"blocks.15"``);
* :data:`Size` — an int ``s`` (meaning ``(s, s)``) or an ``(H, W)`` pair;
* :data:`Seed` — an int seed or a ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["Images", "Maps", "Boxes", "Joints", "Targets", "Layer", "Size", "Seed"]

Images = torch.Tensor | np.ndarray
Maps = torch.Tensor
Boxes = torch.Tensor | np.ndarray | Sequence[Sequence[float]]
Joints = torch.Tensor | np.ndarray
Targets = int | None | torch.Tensor | Sequence[int]
Layer = nn.Module | str
Size = int | tuple[int, int]
Seed = int | torch.Generator
