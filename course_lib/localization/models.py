r"""The two-head localizers: one shared convolutional trunk read by a class head and a box head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import check_choice, check_images, check_int
from ..models import NORMS, conv_backbone

__all__ = ["Localizer", "QuickLocalizer"]


class _TwoHeadModel(nn.Module):
    """A shared convolutional trunk read by two heads.

    * ``features`` — :func:`course_lib.models.conv_backbone`, the trunk of :class:`course_lib.models.SmallCNN`.
    * ``classifier`` — global average pooling and one linear layer (*what*: position does not matter).
    * ``regressor`` — average pooling to a coarse ``grid × grid`` map, one hidden layer and a linear output of
      4 numbers (*where*: global pooling would throw the position away).

    Subclasses choose the number of class outputs and how :meth:`predict` reads the outputs; this class owns
    the input check and the layers, so that both variants differ only in their outputs and losses.
    """

    def __init__(
        self, class_outputs: int, width: int, norm: str, grid: int, hidden: int, blocks: Sequence[int] | None
    ) -> None:
        super().__init__()
        check_choice(norm, "norm", NORMS)
        self.width, self.norm = check_int(width, "width", minimum=2), norm
        self.grid = check_int(grid, "grid", minimum=1)
        self.hidden = check_int(hidden, "hidden", minimum=1)
        channels = 2 * self.width
        self.features = conv_backbone(self.width, norm) if blocks is None else conv_backbone(
            self.width, norm, blocks=tuple(blocks)
        )
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, class_outputs))
        self.regressor = nn.Sequential(
            nn.AdaptiveAvgPool2d(self.grid),
            nn.Flatten(),
            nn.Linear(channels * self.grid**2, self.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(self.hidden, 4),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(x, "x")
        a = self.features(x)
        return self.classifier(a), self.regressor(a)

    def extra_repr(self) -> str:
        return f"width={self.width}, norm={self.norm!r}, grid={self.grid}, hidden={self.hidden}"


class Localizer(_TwoHeadModel):
    r"""Classification + localization: a shared trunk and two heads.

    .. math::

        A = \mathrm{features}(x), \qquad z = W_c \, \mathrm{GAP}(A) + b_c \in \mathbb{R}^C, \qquad
        \hat b = W_2 \, \mathrm{ReLU}\big(W_1 \, \mathrm{vec}(\mathrm{pool}_{g \times g}(A)) + b_1\big) + b_2
        \in \mathbb{R}^4 .

    The class head is read through a softmax (:func:`multitask_loss`'s cross-entropy), the box head is linear
    (any real value, so boxes partly outside the image remain expressible). ``features`` has the layout of
    :class:`course_lib.models.SmallCNN`'s, so a trained classifier's trunk loads into it
    (``localizer.features.load_state_dict(classifier.features.state_dict())``).

    Args:
        num_classes: number of classes :math:`C`.
        width: base channel count of :func:`course_lib.models.conv_backbone`.
        norm: its normalization layer.
        grid: the last feature map is average-pooled to ``grid × grid`` (a coarse map of *where*).
        hidden: size of the box head's hidden layer.
        blocks: convolutions per stage of the trunk (``None``: :func:`~course_lib.models.conv_backbone`'s
            default, the layout of :class:`~course_lib.models.SmallCNN`).

    Example:
        >>> logits, boxes = Localizer(num_classes=5)(torch.rand(2, 3, 64, 64))
        >>> logits.shape, boxes.shape
        (torch.Size([2, 5]), torch.Size([2, 4]))
    """

    def __init__(
        self,
        num_classes: int = 5,
        width: int = 32,
        norm: str = "batch",
        grid: int = 4,
        hidden: int = 64,
        blocks: Sequence[int] | None = None,
    ) -> None:
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        super().__init__(self.num_classes, width, norm, grid, hidden, blocks)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(classes (N,), boxes (N, 4))``: the arg-max class and the regressed box (in the current mode)."""
        logits, boxes = self(x)
        return logits.argmax(1), boxes


class QuickLocalizer(_TwoHeadModel):
    r"""The "quick and dirty" localizer: one sigmoid class output and four sigmoid box outputs.

    .. math::

        p = \sigma(s) \in (0, 1), \qquad \hat b = \sigma(t) \in (0, 1)^4,

    where :math:`s \in \mathbb{R}` and :math:`t \in \mathbb{R}^4` are the outputs of the same two heads as in
    :class:`Localizer` (the class head has one output instead of :math:`C`), trained with :func:`quick_loss`. ``forward`` returns the *logits* ``(N,)`` and ``(N, 4)`` (the loss applies
    the sigmoids in a numerically stable way); :meth:`predict` returns probabilities and boxes.

    Example:
        >>> p, boxes = QuickLocalizer().eval().predict(torch.rand(2, 3, 64, 64))
        >>> bool(((boxes > 0) & (boxes < 1)).all())
        True
    """

    def __init__(
        self, width: int = 32, norm: str = "batch", grid: int = 4, hidden: int = 64, blocks: Sequence[int] | None = None
    ) -> None:
        super().__init__(1, width, norm, grid, hidden, blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit, box_logits = super().forward(x)
        return logit[:, 0], box_logits

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p (N,), boxes (N, 4))``: probability of the positive class and the box, both through a sigmoid."""
        logit, box_logits = self(x)
        return torch.sigmoid(logit), torch.sigmoid(box_logits)
