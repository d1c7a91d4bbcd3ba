"""Training targets: one-hot class probabilities, blended across indeterminate bands.

A training mask may mark pixels :data:`~skinoct.io.INDETERMINATE` (255) where the
boundary between two layers cannot be placed — a disrupted DEJ, a stretch an
annotator could not decide. Forcing a hard label there teaches the network to be
confident where the image is not, which silences the entropy that should flag such
places (seed 000; docs/layers.md). Instead the target of such a pixel blends
linearly, along its column, from the class of the nearest annotated pixel above to
that of the nearest one below: a soft label (label smoothing localised to ambiguous
boundaries, as in learning from annotator disagreement, e.g. Jensen et al.,
"Improving uncertainty estimation in convolutional neural networks using inter-rater
agreement", MICCAI 2019). Ordinary pixels keep their one-hot target, so a mask
without 255 trains exactly as before.
"""

from __future__ import annotations

from skinoct.io import INDETERMINATE

__all__ = ["layer_loss", "soft_targets"]


def soft_targets(target, n_classes: int):
    """Class-probability targets ``(B, C, H, W)`` from class indices ``(B, 1, H, W)``.

    Parameters
    ----------
    target : torch.Tensor
        Integer class indices ``0 … n_classes-1`` along rows (depth) ``H``, or 255
        (indeterminate).
    n_classes : int
        Number of classes ``C``.

    Returns
    -------
    torch.Tensor
        float32; one-hot where the index is a class. In an indeterminate run of a
        column between class ``a`` above and ``b`` below (``n`` pixels), pixel ``k``
        (1-based from the top) gets ``(1 - w)·a + w·b`` with ``w = k / (n + 1)``; a run
        that touches the top (bottom) edge takes the class below (above) it; a column
        with no annotated pixel gets the uniform distribution.
    """
    import torch

    t = target[:, 0].long()
    known = t != INDETERMINATE
    if bool(known.all()):
        return torch.nn.functional.one_hot(t, n_classes).permute(0, 3, 1, 2).float()
    h = t.shape[1]
    rows = torch.arange(h, device=t.device).view(1, h, 1).expand_as(t)
    none = torch.full_like(rows, -1)
    # Nearest annotated row at or above / at or below each pixel (running max trick).
    above = torch.cummax(torch.where(known, rows, none), dim=1).values
    below_flipped = torch.cummax(torch.where(known.flip(1), rows, none), dim=1).values
    below = torch.where(below_flipped >= 0, h - 1 - below_flipped, torch.full_like(rows, h)).flip(1)
    cls_above = torch.gather(torch.where(known, t, 0), 1, above.clamp(0, h - 1))
    cls_below = torch.gather(torch.where(known, t, 0), 1, below.clamp(0, h - 1))
    has_above, has_below = above >= 0, below < h
    span = (below - above).clamp(min=1).float()
    fraction = (rows - above).float() / span  # 0 at the class above, 1 at the one below
    w = torch.where(has_above & has_below, fraction, has_above.logical_not().float())
    eye = torch.eye(n_classes, device=t.device)
    soft = (1 - w)[..., None] * eye[cls_above] + w[..., None] * eye[cls_below]
    orphan = ~(has_above | has_below)
    soft[orphan] = 1.0 / n_classes
    return soft.permute(0, 3, 1, 2).contiguous()


def layer_loss():
    """The segmentation loss: MONAI ``DiceCELoss`` on :func:`soft_targets`.

    Returns a callable ``loss(logits, target)`` with ``target`` the class indices
    ``(B, 1, H, W)`` (255 = indeterminate). On one-hot targets it equals
    ``DiceCELoss(to_onehot_y=True, softmax=True, batch=True)``.
    """
    from monai.losses import DiceCELoss

    dice_ce = DiceCELoss(to_onehot_y=False, softmax=True, batch=True)

    def loss(logits, target):
        return dice_ce(logits, soft_targets(target, logits.shape[1]))

    return loss
