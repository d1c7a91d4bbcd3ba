"""Grading metrics (seed 002 §2.2.4, Table 2) and the confusion-matrix figure (Figure 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinoct.datasets import GRADES
from skinoct.errors import InputError

__all__ = [
    "GradingMetrics",
    "evaluate_predictions",
    "plot_confusion",
    "read_predictions",
]


@dataclass(frozen=True)
class GradingMetrics:
    """Agreement of predicted with reference grades.

    Attributes
    ----------
    n : int
        Number of tiles.
    accuracy : float
        Fraction predicted correctly.
    macro_precision, macro_recall, macro_f1 : float
        Unweighted means over the grades of the one-vs-rest scores (as the paper);
        a grade that is never predicted has an undefined precision (NaN), left out
        of the mean and counted in ``undefined``.
    quadratic_kappa : float
        Cohen's κ with quadratic weights: the grades are ordinal, so 1↔4 costs
        more than 1↔2.
    mean_absolute_error : float
        Mean |predicted − true| in grade units.
    per_class : dict
        ``"1"`` … ``"4"`` → ``precision``, ``recall``, ``f1``, ``support``.
    confusion_matrix : ndarray (k, k)
        Counts; row = true grade, column = predicted grade.
    classes : tuple of int
    """

    n: int
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    quadratic_kappa: float
    mean_absolute_error: float
    per_class: dict
    confusion_matrix: np.ndarray = field(repr=False)
    classes: tuple[int, ...] = GRADES
    undefined: tuple[str, ...] = ()

    @property
    def confusion_percent(self) -> np.ndarray:
        """Row percentages (each true grade sums to 100; NaN for an empty row)."""
        counts = self.confusion_matrix.astype(float)
        rows = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rows > 0, 100.0 * counts / rows, np.nan)

    def to_dict(self) -> dict:
        """Plain-JSON form (the ``--json`` output of ``skinoct matrix evaluate``)."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "quadratic_kappa": self.quadratic_kappa,
            "mean_absolute_error": self.mean_absolute_error,
            "per_class": self.per_class,
            "classes": list(self.classes),
            "confusion_matrix": self.confusion_matrix.tolist(),
            "confusion_matrix_row_percent": np.round(self.confusion_percent, 2).tolist(),
            "undefined": list(self.undefined),
        }


def _as_grades(values, name: str, classes) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {array.shape}")
    try:
        numeric = array.astype(float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must hold grades {list(classes)}") from None
    bad = ~np.isin(numeric, classes)
    if bad.any():
        raise InputError(
            f"{name} must hold grades {list(classes)}, found {np.unique(array[bad])[:5].tolist()}"
        )
    return numeric.astype(int)


def evaluate_predictions(true, pred, *, classes=GRADES) -> GradingMetrics:
    """Accuracy, confusion matrix, per-grade precision / recall / F1, κ.

    Computed with scikit-learn. Precision and recall are one-vs-rest per grade
    and averaged without weights, as in seed 002 §2.2.4 and Table 2.

    Parameters
    ----------
    true, pred : array_like of int
        Reference and predicted grades, same length.
    classes : sequence of int
        The grades (rows/columns of the confusion matrix, in this order).

    Returns
    -------
    GradingMetrics

    Raises
    ------
    InputError
        Empty or unequal inputs, or values that are not grades.

    Examples
    --------
    >>> m = evaluate_predictions([1, 2, 3, 4], [1, 2, 3, 3])
    >>> m.accuracy, m.confusion_matrix[3].tolist()
    (0.75, [0, 0, 1, 0])
    """
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    classes = tuple(int(c) for c in classes)
    y_true = _as_grades(true, "true grades", classes)
    y_pred = _as_grades(pred, "predicted grades", classes)
    if y_true.size == 0:
        raise InputError("no predictions to evaluate")
    if y_true.shape != y_pred.shape:
        raise InputError(f"{y_true.size} true grades but {y_pred.size} predictions")
    labels = list(classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=np.nan
    )
    undefined = []
    per_class = {}
    for i, c in enumerate(classes):
        per_class[str(c)] = {
            "precision": _clean(precision[i]),
            "recall": _clean(recall[i]),
            "f1": _clean(f1[i]),
            "support": int(support[i]),
        }
        if support[i] == 0:
            undefined.append(f"recall of grade {c} (no true tile)")
        if not np.isfinite(precision[i]):
            undefined.append(f"precision of grade {c} (never predicted)")
    if len(np.unique(np.concatenate([y_true, y_pred]))) < 2:
        kappa = float("nan")  # one grade only: chance agreement is 1, κ undefined
    else:
        kappa = float(cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic"))
    return GradingMetrics(
        n=int(y_true.size),
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_precision=_nanmean(precision),
        macro_recall=_nanmean(recall),
        macro_f1=_nanmean(f1),
        quadratic_kappa=kappa,
        mean_absolute_error=float(np.mean(np.abs(y_true - y_pred))),
        per_class=per_class,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels),
        classes=classes,
        undefined=tuple(undefined),
    )


def _clean(value) -> float:
    return float(value) if np.isfinite(value) else float("nan")


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else np.nan


def read_predictions(
    path: str | Path,
    *,
    true_column: str = "true",
    pred_column: str = "pred",
    labels: str | Path | None = None,
):
    """Read a predictions CSV and return ``(true, pred)`` integer arrays.

    Parameters
    ----------
    path : str or Path
        CSV with columns ``true`` and ``pred`` (names configurable). A CSV written
        by ``skinoct matrix predict`` (``tile_id``, ``grade``, …) works together with
        ``labels``: the reference grades are then looked up by ``tile_id``, and
        ``grade`` is used as the prediction when ``pred`` is absent.
    labels : str or Path, optional
        A ``labels.csv`` (see :func:`read_labels`).

    Raises
    ------
    InputError
        Unreadable file, missing columns, tiles without a label.
    """
    import pandas as pd

    from skinoct.datasets import read_labels

    path = Path(path)
    if not path.is_file():
        raise InputError("predictions file not found", path=path)
    try:
        table = pd.read_csv(path, dtype={"tile_id": str})
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read predictions CSV: {exc}", path=path) from exc
    if pred_column not in table.columns and "grade" in table.columns and labels is not None:
        pred_column = "grade"
    if labels is not None:
        if "tile_id" not in table.columns:
            raise InputError(
                "looking up labels needs a 'tile_id' column in the predictions", path=path
            )
        grades = read_labels(labels).grades
        missing = ~table["tile_id"].isin(grades.index)
        if missing.any():
            raise InputError(
                f"{int(missing.sum())} predicted tile(s) have no label in {labels}, "
                f"e.g. {table.loc[missing, 'tile_id'].iloc[0]!r}",
                path=path,
            )
        table[true_column] = grades.loc[table["tile_id"]].to_numpy()
    for column in (true_column, pred_column):
        if column not in table.columns:
            raise InputError(
                f"predictions need columns {true_column!r} and {pred_column!r}; "
                f"found {list(table.columns)}",
                path=path,
            )
    if table[[true_column, pred_column]].isna().any().any():
        raise InputError("predictions hold empty cells", path=path)
    try:
        return (
            _as_grades(table[true_column].to_numpy(), f"column {true_column!r}", GRADES),
            _as_grades(table[pred_column].to_numpy(), f"column {pred_column!r}", GRADES),
        )
    except InputError as exc:
        raise InputError(exc.reason, path=path) from exc


def plot_confusion(
    metrics: GradingMetrics,
    path: str | Path,
    *,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Confusion matrix in the style of seed 002 Figure 2, written atomically.

    Rows are the reference (expert) grades, columns the predicted grades; each cell
    shows the row percentage (and the count), shaded in blues by that percentage.
    """
    from matplotlib.figure import Figure

    from skinoct.io import atomic_path

    percent = metrics.confusion_percent
    counts = metrics.confusion_matrix
    k = len(metrics.classes)
    fig = Figure(figsize=(1.1 * k + 1.6, 1.1 * k + 1.0))  # no pyplot: nothing to close
    ax = fig.subplots()
    image = ax.imshow(np.nan_to_num(percent), cmap="Blues", vmin=0, vmax=100)
    for i in range(k):
        for j in range(k):
            value = percent[i, j]
            text = "–" if not np.isfinite(value) else f"{value:.0f}%\n({counts[i, j]})"
            dark = np.isfinite(value) and value > 55
            ax.text(
                j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black"
            )
    ticks = range(k)
    names = [str(c) for c in metrics.classes]
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("Predicted score")
    ax.set_ylabel("True score")
    ax.set_title(title or f"accuracy {metrics.accuracy:.2f} (n = {metrics.n})", fontsize=10)
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("% of the true score's tiles")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path
