"""Cost of the ordered decoding (``skinoct.layers.decode_ordered``) per 512 × 1200 section.

Rows (median and minimum of ``--repeats`` calls after a warm-up, NumPy only, one thread
of work):

* ``bundled model output``: the probabilities the bundled model gives on a phantom
  section, with its argmax passed in (as ``segment_section`` does): the common case,
  where nearly every column is already ordered;
* ``every column out of order``: a map whose argmax is out of order in every column,
  so the dynamic programme runs on all 1200 columns (the worst case);
* ``segment_section, onnx``: the whole call with ``decoding='ordered'`` and ``'argmax'``
  side by side (``--threads`` onnxruntime threads), i.e. what the decode adds end to end.

Usage::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_decode.py --repeats 20
"""

from __future__ import annotations

import argparse

from _machine import cpu_name, median_time  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from skinoct.layers import decode_ordered, load_layers_model, segment_section
    from skinoct.phantom import render_section

    model = load_layers_model()
    section = render_section(seed=1)  # 512 × 1200 at 1 µm
    result = segment_section(section.image, model, spacing_um=(1.0, 1.0), engine="onnx",
                             threads=args.threads, decoding="argmax")  # fmt: skip
    probs = result.probabilities
    argmax = result.labels
    worst = probs.copy()
    worst[:, 0], worst[3, 0] = 0.0, 1.0  # dermis on the top row: every column out of order
    rows = [
        ("decode, bundled model output", median_time(lambda: decode_ordered(probs, argmax=argmax),
                                               args.repeats)),
        ("decode, every column out of order",
         median_time(lambda: decode_ordered(worst), args.repeats)),
    ]  # fmt: skip
    for decoding in ("argmax", "ordered"):
        rows.append((
            f"segment_section onnx ({args.threads} threads), decoding={decoding}",
            median_time(lambda d=decoding: segment_section(
                section.image, model, spacing_um=(1.0, 1.0), engine="onnx",
                threads=args.threads, decoding=d), args.repeats),
        ))  # fmt: skip
    print(f"CPU: {cpu_name()}; {args.repeats} repeats; 512 × 1200 phantom section")
    print("| what | median (ms) | min (ms) |")
    print("| --- | --- | --- |")
    for name, (median, low) in rows:
        print(f"| {name} | {1e3 * median:.1f} | {1e3 * low:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
