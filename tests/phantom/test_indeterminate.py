"""Indeterminate DEJ bands in phantom training masks (skinoct.phantom.indeterminate_labels)."""

import numpy as np
import pytest

from skinoct.errors import InputError
from skinoct.io import INDETERMINATE, read_mask
from skinoct.phantom import (
    DISRUPTED_BAND_UM,
    SectionParams,
    indeterminate_labels,
    render_section,
    write_section_dataset,
)

PARAMS = dict(width_um=400.0, depth_um=200.0, spacing_um=(1.0, 2.0))


@pytest.fixture(scope="module")
def disrupted():
    return render_section(SectionParams(disruption=(100.0, 300.0), **PARAMS), seed=3)


def test_a_section_without_disruption_keeps_its_labels():
    sec = render_section(SectionParams(**PARAMS), seed=3)
    out = indeterminate_labels(sec)
    assert np.array_equal(out, sec.labels) and out is not sec.labels


def test_the_band_straddles_the_geometric_dej_inside_the_disruption_only(disrupted):
    out = indeterminate_labels(disrupted)
    band = out == INDETERMINATE
    x = disrupted.x_um
    cols = band.any(axis=0)
    assert cols.any()
    # the renderer's taper: nothing beyond half a ramp (7.5 µm) outside the span
    assert np.all((x[cols] >= 100.0 - 7.5) & (x[cols] <= 300.0 + 7.5))
    centre = np.argmin(np.abs(x - 200.0))
    depth = np.flatnonzero(band[:, centre]) * disrupted.spacing_um[0]
    dej = disrupted.boundaries_um["dej"][centre]
    assert depth.min() == pytest.approx(dej - DISRUPTED_BAND_UM, abs=1.0)
    assert depth.max() == pytest.approx(dej + DISRUPTED_BAND_UM, abs=1.0)
    # only epidermis and dermis are replaced; the rest is untouched
    changed = out != disrupted.labels
    assert np.array_equal(changed, band)
    assert set(np.unique(disrupted.labels[band])) <= {2, 3}


@pytest.mark.parametrize("half", [3.0, 22.0, 80.0])
def test_every_column_stays_ordered_with_the_band_between_epidermis_and_dermis(disrupted, half):
    out = indeterminate_labels(disrupted, half_width_um=half).astype(float)
    out[out == INDETERMINATE] = 2.5
    assert np.all(np.diff(out, axis=0) >= 0)


def test_half_width_zero_is_the_plain_mask(disrupted):
    assert np.array_equal(indeterminate_labels(disrupted, half_width_um=0.0), disrupted.labels)


def test_dataset_writer_marks_disrupted_sections_and_refuses_bad_widths(tmp_path):
    write_section_dataset(tmp_path / "d", 2, seed=1, disruption_fraction=1.0,
                          indeterminate_um=15.0, width_um=300.0, depth_um=300.0,
                          site="face")  # fmt: skip
    masks = sorted((tmp_path / "d" / "masks").iterdir())
    for path in masks:
        with pytest.raises(InputError, match="255"):
            read_mask(path)  # 255 is refused where a segmentation is expected
        assert INDETERMINATE in read_mask(path, allow_indeterminate=True).data
    with pytest.raises(InputError, match="indeterminate_um"):
        write_section_dataset(tmp_path / "e", 1, indeterminate_um=-1.0)
