"""Which per-column DEJ-uncertainty statistic separates disrupted from clean sections?

    python scripts/dej_flag_variants.py                       # bundled model, ~2 min
    python scripts/dej_flag_variants.py --model OLD_BUNDLED   # another model
    python scripts/dej_flag_variants.py --mc-dropout 6        # + MC-dropout mutual information
    python scripts/dej_flag_variants.py --image --tta         # + image contrast, TTA, ~5 min

The sections are those of ``scripts/evaluate_uncertainty.py`` (its first 40 clean calibration
sections, seeds 7000+; 30 clean and 30 disrupted test sections, seeds 8000+). Each is
segmented once (``segment_section``, ordered decoding); then, for every variant, a
per-column statistic of the uncertainty map near the decoded DEJ is smoothed over a
lateral window, its section median subtracted, and the section's score is its maximum.
The threshold is the 0.9 quantile of the calibration scores (as
``calibrate_uncertainty``). Reported per variant: per-section sensitivity (a flagged
stretch overlaps the true disrupted span), false-flag rate on the clean test sections,
and the AUC of the section scores (disrupted vs clean).

Variants: the map (softmax entropy; the epidermis/dermis confusion
``min(p_e, p_d) / (p_e + p_d)``; with ``--mc-dropout``, the mutual information), the
band around the DEJ (±5–20 µm; for the entropy also its integral in µm), the lateral
window (20–80 µm). ``--image`` adds the image's own junction contrast (the mean vertical
gradient of the laterally smoothed image within ±4 µm of the decoded DEJ, negated: a
blurred junction scores high) alone and added to the confusion statistic (each divided
by the spread of its calibration curves). ``--tta`` segments five more views of each
section (lateral flip, gamma 0.7 and 1.4, a Gaussian blur, added noise) and adds the
per-column standard deviation of the decoded DEJ across the six views (Wang et al.,
"Aleatoric uncertainty estimation with test-time augmentation", Neurocomputing 2019)
and the confusion map of the views' mean probabilities. This is an exploration of the
flag's design space on phantoms, not a clinical figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_uncertainty import confusion_map, render

GROUPS = (("cal", range(7000, 7040), False), ("clean", range(8000, 8030), False),
          ("dis", range(8000, 8030), True))  # fmt: skip
BANDS_UM = (5.0, 10.0, 20.0)
WINDOWS_UM = (20.0, 40.0, 80.0)


def _views(image: np.ndarray, seed: int) -> list[tuple[np.ndarray, bool]]:
    """Five perturbed copies of the section, each with "flipped laterally"."""
    from scipy.ndimage import gaussian_filter

    from skinoct.io import normalize_intensity

    img = image.astype(np.float32)
    unit = normalize_intensity(img, lower_percentile=1.0, upper_percentile=99.5, clip=True)
    noise = np.random.default_rng(seed).normal(0, 0.15 * img.std(), img.shape)
    return [(np.ascontiguousarray(img[:, ::-1]), True), (unit**0.7, False), (unit**1.4, False),
            (gaussian_filter(img, (1.0, 2.0)), False),
            ((img + noise).astype(np.float32), False)]  # fmt: skip


def _dej_rows(labels: np.ndarray) -> np.ndarray:
    """Per column, the number of rows above the dermis (the decoded DEJ, in rows)."""
    return (labels < 3).sum(axis=0)


def _junction_gradient(image: np.ndarray, labels: np.ndarray, spacing) -> np.ndarray:
    """Minus the mean |d/dz| of the smoothed image within ±4 µm of the decoded DEJ."""
    from scipy.ndimage import gaussian_filter1d, uniform_filter1d

    dz, dx = spacing
    smooth = uniform_filter1d(image.astype(np.float32), max(1, round(10 / dx)), axis=1)
    grad = np.abs(np.gradient(gaussian_filter1d(smooth, 1.5 / dz, axis=0), axis=0))
    dej = _dej_rows(labels)
    rows = np.arange(labels.shape[0])[:, None]
    inside = np.abs(rows - dej) <= max(1, round(4 / dz))
    values = -(grad * inside).sum(axis=0) / np.maximum(inside.sum(axis=0), 1)
    return np.where((dej > 0) & (dej < labels.shape[0]), values, np.nan)


def collect(model_dir, *, mc_dropout: int, image: bool = False, tta: bool = False) -> list[dict]:
    """Segment every section once; keep labels, uncertainty maps and the true span."""
    from skinoct.layers import load_layers_model, segment_section

    model = load_layers_model(model_dir)
    engine = "torch" if mc_dropout else "onnx"
    out = []
    for group, seeds, disrupted in GROUPS:
        for seed in seeds:
            sec = render(seed, disrupted=disrupted)
            r = segment_section(sec.image, model, spacing_um=sec.spacing_um, engine=engine,
                                mc_dropout=mc_dropout, threads=1)  # fmt: skip
            maps = {"entropy": r.entropy, "entropy-integral": r.entropy,
                    "epi/dermis confusion": confusion_map(r.probabilities)}  # fmt: skip
            if mc_dropout:
                maps["mutual information"] = r.mutual_information
            columns = {}  # per-column statistics that need no band
            if image:
                normalized = model.normalize(sec.image)
                columns["image junction gradient"] = _junction_gradient(
                    normalized, r.labels, sec.spacing_um
                )
            if tta:  # the pass above is the first of the six views
                dejs, probs = [_dej_rows(r.labels)], [r.probabilities]
                for view, flipped in _views(sec.image, seed):
                    v = segment_section(view, model, spacing_um=sec.spacing_um, engine="onnx",
                                        threads=1)  # fmt: skip
                    labels, p = (v.labels[:, ::-1], v.probabilities[:, :, ::-1]) if flipped else (
                        v.labels, v.probabilities)  # fmt: skip
                    dejs.append(_dej_rows(labels))
                    probs.append(p)
                dejs = np.array(dejs, float)
                nz = r.labels.shape[0]
                ok = ((dejs > 0) & (dejs < nz)).all(axis=0)
                columns["TTA DEJ s.d."] = np.where(ok, dejs.std(axis=0) * sec.spacing_um[0], np.nan)
                maps["TTA-mean confusion"] = confusion_map(np.mean(probs, axis=0))
            maps = {k: v.astype(np.float16) for k, v in maps.items()}  # 100 sections in memory
            out.append({"group": group, "labels": r.labels, "maps": maps, "columns": columns,
                        "spacing": sec.spacing_um, "span": sec.disruption_um})  # fmt: skip
    return out


def column_statistic(item: dict, name: str, band_um: float) -> np.ndarray:
    """Mean (or integral, µm) of a map within ±band of the decoded DEJ per column."""
    labels, (dz, _dx) = item["labels"], item["spacing"]
    nz = labels.shape[0]
    dej = _dej_rows(labels)
    rows = np.arange(nz)[:, None]
    b = max(1, round(band_um / dz))
    inside = (rows >= dej - b) & (rows < dej + b)
    values = (item["maps"][name].astype(np.float32) * inside).sum(axis=0)
    values = values * dz if name.endswith("integral") else values / np.maximum(inside.sum(0), 1)
    return np.where((dej > 0) & (dej < nz), values, np.nan)


def section_curve(item: dict, name: str, band_um: float, window_um: float) -> np.ndarray:
    """Excess over the section median, smoothed over ``window_um`` laterally."""
    from scipy.ndimage import uniform_filter1d

    if name in item["columns"]:
        v = item["columns"][name]
    else:
        v = column_statistic(item, name, band_um)
    if not np.isfinite(v).any():
        return np.full(v.shape, -np.inf)
    e = v - np.nanmedian(v)
    e = np.where(np.isfinite(e), e, np.nanmin(e))
    return uniform_filter1d(e, max(1, round(window_um / item["spacing"][1])), mode="nearest")


def combined_curves(items, parts, window_um: float) -> list[np.ndarray]:
    """Sum of the ``(name, band)`` curves, each divided by its calibration curves' s.d."""
    total = [np.zeros(it["labels"].shape[1]) for it in items]
    for name, band in parts:
        curves = [section_curve(it, name, band, window_um) for it in items]
        pool = np.concatenate([c[np.isfinite(c)] for c, it in zip(curves, items, strict=True)
                               if it["group"] == "cal"])  # fmt: skip
        scale = float(np.std(pool)) or 1.0
        total = [t + c / scale for t, c in zip(total, curves, strict=True)]
    return total


def evaluate(items: list[dict], name, band_um: float, window_um: float) -> dict:
    if isinstance(name, tuple):  # a combination of (name, band) parts
        curves = list(zip(items, combined_curves(items, name, window_um), strict=True))
    else:
        curves = [(it, section_curve(it, name, band_um, window_um)) for it in items]
    cal = np.array([c.max() for it, c in curves if it["group"] == "cal"])
    threshold = float(np.quantile(cal, 0.9))
    clean = np.array([c.max() for it, c in curves if it["group"] == "clean"])
    hits, dis = 0, []
    for it, c in curves:
        if it["group"] != "dis":
            continue
        dis.append(c.max())
        x = np.arange(c.size) * it["spacing"][1]
        x0, x1 = it["span"]
        hits += bool(((c > threshold) & (x >= x0) & (x <= x1)).any())
    dis = np.array(dis)
    return {"sensitivity": hits / dis.size, "false_flags": float((clean > threshold).mean()),
            "auc": float((dis[:, None] > clean[None, :]).mean())}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: bundled)")
    parser.add_argument("--mc-dropout", type=int, default=0)
    parser.add_argument("--image", action="store_true", help="+ the image's junction contrast")
    parser.add_argument("--tta", action="store_true", help="+ test-time-augmentation statistics")
    args = parser.parse_args(argv)
    items = collect(args.model, mc_dropout=args.mc_dropout, image=args.image, tta=args.tta)
    print("| map | band (µm) | window (µm) | sensitivity | false-flag rate | AUC |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = []
    for name in items[0]["maps"]:
        for band in BANDS_UM:
            for window in WINDOWS_UM:
                rows.append((name, band, window, evaluate(items, name, band, window)))
    for name in items[0]["columns"]:
        for window in WINDOWS_UM:
            rows.append((name, float("nan"), window, evaluate(items, name, 0.0, window)))
    confusion = ("epi/dermis confusion", 10.0)
    for extra in items[0]["columns"]:
        for window in WINDOWS_UM:
            parts = (confusion, (extra, 0.0))
            rows.append((" + ".join(n for n, _ in parts), 10.0, window,
                         evaluate(items, parts, 0.0, window)))  # fmt: skip
    for name, band, window, r in sorted(rows, key=lambda row: -row[3]["auc"]):
        shown = "–" if np.isnan(band) else f"±{band:g}"
        print(f"| {name} | {shown} | {window:g} | {r['sensitivity']:.2f} | "
              f"{r['false_flags']:.2f} | {r['auc']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
