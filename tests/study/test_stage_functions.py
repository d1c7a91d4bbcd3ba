"""The stage functions analyze_volume composes, each on its own (issue 12 point 2):
layers.segment_volume, matrix.grade_profile, matrix.read_dej."""

from __future__ import annotations

import types

import _study_fakes as fakes
import numpy as np
import pytest

from skinoct.errors import InputError
from skinoct.io import Image


@pytest.fixture
def fakes_in(monkeypatch):
    import skinoct.layers
    import skinoct.matrix

    monkeypatch.setattr(skinoct.layers, "segment_sections", fakes.fake_segment_sections)
    monkeypatch.setattr(skinoct.matrix, "predict_tiles", fakes.uniformity_grader)
    return types.SimpleNamespace(classes=(1, 2, 3, 4))


def test_segment_volume_finds_the_analytic_dej_section_by_section(fakes_in):
    from skinoct.layers import segment_volume

    volume = fakes.layered_volume()
    released = []
    seg = segment_volume(
        volume, fakes_in, spacing_um=(1, 1, 1), section_step=5, crop_margin_um=20.0,
        batch_size=4, n_overlays=2, after_batch=lambda: released.append(1),
    )  # fmt: skip
    ny, nx = volume.shape[1:]
    assert seg.rows.tolist() == sorted({*range(0, ny, 5), ny - 1})
    assert seg.bounds["dej"].shape == (seg.rows.size, nx)
    # raw boundaries half way between label rows: within ±0.5 µm of the analytic DEJ
    np.testing.assert_allclose(seg.bounds["dej"][0], fakes.true_dej(nx), atol=0.5 + 1e-9)
    assert seg.segmented_depth_um < volume.shape[0]  # the pilot pass cropped the rest
    assert len(seg.overlays) == 2 and released
    with pytest.raises(InputError, match="needs a \\(z, y, x\\) volume"):
        segment_volume(volume[0], fakes_in, spacing_um=(1, 1, 1))


def test_grade_profile_aggregates_per_depth_and_leaves_out_straddling_tiles(fakes_in):
    from skinoct.matrix import grade_profile

    volume = fakes.layered_volume()
    image = Image(volume, spacing_um=(1.0, 1.0, 1.0), axes="zyx")
    dej = np.broadcast_to(fakes.true_dej(volume.shape[2]), volume.shape[1:])
    p = grade_profile(image, dej, fakes_in, tile_size_um=40.0, depth_stop_um=20.0)
    assert p.depth_um.tolist() == [float(d) for d in range(20)]
    assert p.n_tiles.tolist() == [0, 0, 0] + [3] * 17 and p.start_um == 3.0
    assert p.straddling.tolist() == [True] * 3 + [False] * 17
    assert np.isnan(p.score[:3]).all() and (p.score[3:] == 4.0).all()
    assert p.volume_score == 4.0 and p.dropped == 0
    every = grade_profile(image, dej, fakes_in, tile_size_um=40.0, depth_stop_um=20.0,
                          dej_margin_um=-1.0)  # fmt: skip
    assert every.n_tiles.tolist() == [3] * 20 and every.start_um == 0.0
    d = p.to_dict()
    assert set(d) == {"depth_um", "score", "sd", "n_tiles", *(f"p_grade_{g}" for g in range(1, 5))}
    with pytest.raises(InputError, match="dej_margin_um"):
        grade_profile(image, dej, fakes_in, tile_size_um=40.0, dej_margin_um=float("nan"))


def test_read_dej_one_reader_for_numbers_arrays_and_files(tmp_path):
    from skinoct.matrix import read_dej

    assert read_dej(62.5) == 62.5 and read_dej("62.5") == 62.5
    surface = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(read_dej(surface, shape_yx=(3, 4)), surface)
    np.save(tmp_path / "d.npy", surface)
    np.testing.assert_array_equal(read_dej(tmp_path / "d.npy", shape_yx=(3, 4)), surface)
    with pytest.raises(InputError, match=r"shape \(3, 4\); the volume's en-face shape"):
        read_dej(tmp_path / "d.npy", shape_yx=(4, 4))
    with pytest.raises(InputError, match="no finite depth"):
        read_dej(np.full((2, 2), np.nan))
    with pytest.raises(InputError, match="dej must be a depth ≥ 0 µm"):
        read_dej(-1)
