"""The graph skinoct exports: the same function, in ops onnxruntime runs faster.

The exporters write a network as it is built for training. One of its ops has a
cheaper equivalent that computes the same numbers:

- ``torch.nn.PReLU`` with one slope ``a`` (MONAI's default activation) is
  ``LeakyReLU(negative_slope=a)``: both give ``x`` for ``x ≥ 0`` and ``a·x`` below.
  onnxruntime fuses ``LeakyRelu`` into the preceding convolution (its ``FusedConv``
  with the blocked NCHWc kernels) but runs ``PRelu`` as a separate pass over the
  activations: on the bundled layer U-Net that pass was 20 % of the network's time.

Only the exported copy changes; the training network and the torch engine are left as
they are. Tried and not kept: a stride-2 transposed convolution as a sub-pixel
convolution plus ``DepthToSpace`` (Shi et al., CVPR 2016). It is the same function,
but onnxruntime's ``DepthToSpace`` cost more than the ``ConvTranspose`` it replaced.
"""

from __future__ import annotations

import copy

__all__ = ["EXPORT_GRAPH_VERSION", "export_graph"]

#: Bumped whenever :func:`export_graph` writes a different graph: cached exports made by
#: an earlier version are exported again (:class:`skinoct.models.ExportedEngines`).
EXPORT_GRAPH_VERSION = 2


def export_graph(module):
    """A copy of ``module`` (eval mode) with every one-slope ``PReLU`` as ``LeakyReLU``.

    Parameters
    ----------
    module : torch.nn.Module
        Left unchanged.

    Returns
    -------
    torch.nn.Module
        Computes what ``module`` computes in eval mode (bit for bit on the CPU for the
        replaced activations: ``x`` or ``a·x`` either way).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.PReLU())
    >>> type(export_graph(net)[1]).__name__
    'LeakyReLU'
    >>> type(net[1]).__name__
    'PReLU'
    """
    import torch

    out = copy.deepcopy(module).eval()
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.PReLU) and child.weight.numel() == 1:
                slope = float(child.weight.detach().reshape(()))
                setattr(parent, name, torch.nn.LeakyReLU(negative_slope=slope))
    return out
