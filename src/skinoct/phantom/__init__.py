"""LC-OCT phantom simulator: synthetic skin images, volumes and cohorts with exact ground truth.

Renders vertical sections (z × x), en-face dermal-matrix stacks (3 × y × x) and
volumes (z × y × x) that look like line-field confocal OCT of skin, with label masks,
boundary curves, matrix-quality grades and per-subject quality profiles. All
renderers are pure functions of a parameter record and a seed; the same seed gives
the same arrays. See ``docs/phantom.md`` for the model and its literature values.
"""

from skinoct.phantom._appearance import TEXTURES, Appearance
from skinoct.phantom._cohort import (
    GROUPS,
    GroupModel,
    rater_grades,
    render_cohort,
    subject_q_profile,
)
from skinoct.phantom._datasets import (
    SITE_WEIGHTS,
    sample_section_params,
    write_enface_dataset,
    write_section_dataset,
    write_volume_dataset,
)
from skinoct.phantom._enface import PhantomEnface, grade_of, render_enface
from skinoct.phantom._families import FAMILIES, Family, sample_appearance
from skinoct.phantom._grading_tiles import grading_tiles
from skinoct.phantom._indeterminate import DISRUPTED_BAND_UM, indeterminate_labels
from skinoct.phantom._params import SITES, EnfaceParams, SectionParams, SiteDefaults, VolumeParams
from skinoct.phantom._section import PhantomSection, render_section
from skinoct.phantom._volume import PhantomVolume, render_volume

__all__ = [
    "DISRUPTED_BAND_UM",
    "FAMILIES",
    "GROUPS",
    "SITES",
    "SITE_WEIGHTS",
    "TEXTURES",
    "Appearance",
    "EnfaceParams",
    "Family",
    "GroupModel",
    "PhantomEnface",
    "PhantomSection",
    "PhantomVolume",
    "SectionParams",
    "SiteDefaults",
    "VolumeParams",
    "grade_of",
    "grading_tiles",
    "indeterminate_labels",
    "rater_grades",
    "render_cohort",
    "render_enface",
    "render_section",
    "render_volume",
    "sample_appearance",
    "sample_section_params",
    "subject_q_profile",
    "write_enface_dataset",
    "write_section_dataset",
    "write_volume_dataset",
]
