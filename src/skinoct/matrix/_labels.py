"""Rater labels moved to :mod:`skinoct.datasets` (a file format, no model code).

Kept so that the imports of ``matrix/_train.py`` and ``matrix/_model.py`` keep working;
new code imports :mod:`skinoct.datasets`.
"""

from skinoct.datasets import GRADES, TieRule, TileLabels, fleiss_kappa, majority_grade, read_labels

__all__ = ["GRADES", "TieRule", "TileLabels", "fleiss_kappa", "majority_grade", "read_labels"]
