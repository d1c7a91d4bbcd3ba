"""Column-wise boundary position errors (skinoct.layers._boundary_metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from skinoct.layers._boundary_metrics import boundary_depths, boundary_errors


def _mask(n_z, surface, sc, dej):
    """Ordered mask from per-column boundary rows (arrays of equal length)."""
    rows = np.arange(n_z)[:, None]
    m = np.zeros((n_z, len(surface)), np.uint8)
    m[rows >= np.asarray(surface)[None]] = 1
    m[rows >= np.asarray(sc)[None]] = 2
    m[rows >= np.asarray(dej)[None]] = 3
    return m


def test_depths_are_first_rows_times_dz():
    m = _mask(50, [5, 6], [10, 12], [30, 31])
    d = boundary_depths(m, dz_um=0.5)
    np.testing.assert_allclose(d["surface"], [2.5, 3.0])
    np.testing.assert_allclose(d["sc_junction"], [5.0, 6.0])
    np.testing.assert_allclose(d["dej"], [15.0, 15.5])


def test_errors_match_analytic_offsets():
    n = 40
    ref = _mask(100, [10] * n, [20] * n, [50] * n)
    dej = [50 + (4 if i % 2 else 0) for i in range(n)]  # half the columns 4 rows deep
    pred = _mask(100, [11] * n, [20] * n, dej)
    e = boundary_errors(pred, ref, spacing_um=(2.0, 1.0))
    assert e["surface"]["mae_um"] == pytest.approx(2.0)
    assert e["sc_junction"]["mae_um"] == pytest.approx(0.0)
    assert e["dej"]["mae_um"] == pytest.approx(4.0)  # mean of 0 and 8 µm
    assert e["dej"]["p95_um"] == pytest.approx(8.0)
    assert e["dej"]["n_columns"] == n and e["dej"]["missing_fraction"] == 0.0


def test_missing_boundary_counts_as_missing_not_as_error():
    ref = _mask(60, [5] * 4, [10] * 4, [30] * 4)
    pred = ref.copy()
    pred[:, 0][pred[:, 0] == 3] = 2  # no dermis in column 0
    e = boundary_errors(pred, ref, spacing_um=(1.0, 1.0))
    assert e["dej"]["missing_fraction"] == pytest.approx(0.25)
    assert e["dej"]["mae_um"] == 0.0 and e["dej"]["n_columns"] == 3


def test_label_set_without_sc_skips_the_sc_junction():
    ref = _mask(60, [5] * 4, [5] * 4, [30] * 4)
    e = boundary_errors(ref, ref, spacing_um=(1.0, 1.0), label_values=(0, 2, 3))
    assert set(e) == {"surface", "dej"}
    assert set(boundary_errors(ref, ref, spacing_um=(1, 1), label_values=(2, 3))) == {"dej"}


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        boundary_errors(np.zeros((3, 3)), np.zeros((3, 4)), spacing_um=(1, 1))
