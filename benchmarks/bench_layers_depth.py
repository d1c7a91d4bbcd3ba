"""What a deeper layer U-Net costs: one training step and one inference batch per depth.

Builds MONAI's ``UNet`` from :meth:`skinoct.layers.NetworkSpec.with_levels` (the bundled
widths, 8-16-32-64-128, the deepest repeated) at each ``--levels`` and times, on
``--threads`` torch threads, in ``--rounds`` alternating rounds (the first one dropped
as warm-up), the median of:

* a training step: forward, backward and an Adam step on 2 patches of 384 × 512 (the
  recipe's patch for phantom sections on the 2-core CPU);
* inference: 4 sections of 512 × 640 on the model grid (divisible by every depth's
  grid divisor up to 7 levels), without gradients.

    PYTHONPATH=src python benchmarks/bench_layers_depth.py --levels 5 7

Random weights: the time does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[5, 7])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch
    from monai.networks.nets import UNet

    from skinoct.layers import NetworkSpec

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = {n: UNet(**NetworkSpec().with_levels(n).unet_args(4)) for n in args.levels}
    optims = {n: torch.optim.Adam(net.parameters()) for n, net in nets.items()}
    patches, sections = torch.randn(2, 1, 384, 512), torch.randn(4, 1, 512, 640)
    step = {n: [] for n in nets}
    infer = {n: [] for n in nets}
    for _ in range(args.rounds):
        for n, net in nets.items():
            net.train()
            t = time.perf_counter()
            net(patches).mean().backward()
            optims[n].step()
            optims[n].zero_grad()
            step[n].append(time.perf_counter() - t)
            net.eval()
            with torch.no_grad():
                t = time.perf_counter()
                net(sections)
                infer[n].append(time.perf_counter() - t)
    base = args.levels[0]
    print(f"| levels | parameters | training step (s) | vs {base} | inference (s) | vs {base} |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    med = {n: (statistics.median(step[n][1:]), statistics.median(infer[n][1:])) for n in nets}
    for n, net in nets.items():
        params = sum(p.numel() for p in net.parameters())
        print(f"| {n} | {params:,} | {med[n][0]:.3f} | {med[n][0] / med[base][0]:.2f}x "
              f"| {med[n][1]:.3f} | {med[n][1] / med[base][1]:.2f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
