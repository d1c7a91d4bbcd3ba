"""The CLI only translates (issue 12 point 4): warnings in one line, library messages that
name arguments, ``study stats --out`` writing what the report writes."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import typer

from skinoct.cli import _common
from skinoct.errors import InputError


class _FileWarning(UserWarning):
    pass


def _app_that_warns() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def go(debug: bool = typer.Option(False, "--debug")) -> int:
        image = "scan 01.ome.tif"  # noqa: F841  (a source line the user must not see)
        warnings.warn("scan 01.ome.tif: no spacing;\n using 1 µm", _FileWarning)  # noqa: B028
        return 0

    @app.command()
    def other() -> int:
        return 0

    return app


def test_warnings_print_one_line_without_source(capsys):
    code = _common.run_app(_app_that_warns(), ["go"])
    err = capsys.readouterr().err
    assert code == 0
    assert err.strip().splitlines() == ["warning: scan 01.ome.tif: no spacing; using 1 µm"]
    assert "_FileWarning" not in err and "warnings.warn" not in err and ".py" not in err


def test_debug_shows_the_full_warning(capsys):
    code = _common.run_app(_app_that_warns(), ["go", "--debug"])
    err = capsys.readouterr().err
    assert code == 0
    assert "_FileWarning" in err and "test_cli_translates.py" in err


def test_the_formatter_is_only_active_during_a_command():
    before = warnings.showwarning
    _common.run_app(_app_that_warns(), ["other"])
    assert warnings.showwarning is before


def test_warning_text_is_not_rich_markup(capsys):
    _common.show_warning(UserWarning("a[red]b[/red].tif: odd [/] name"), UserWarning, "x.py", 1)
    assert capsys.readouterr().err.strip() == "warning: a[red]b[/red].tif: odd [/] name"


@pytest.mark.parametrize(
    ("value", "match"),
    [(-3.0, "dej must be a depth ≥ 0 µm"), ("nan", "dej must be a depth ≥ 0 µm")],
)
def test_library_messages_name_arguments_not_flags(value, match):
    from skinoct.matrix import read_dej

    with pytest.raises(InputError, match=match) as info:
        read_dej(value)
    assert "--" not in str(info.value)


def test_read_predictions_names_the_argument(tmp_path):
    from skinoct.matrix import read_predictions

    pd.DataFrame({"true": [1], "pred": [1]}).to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame({"tile_id": ["a"], "grade": [1]}).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(InputError, match="labels needs a 'tile_id' column") as info:
        read_predictions(tmp_path / "p.csv", labels=tmp_path / "l.csv")
    assert "--labels" not in str(info.value)


def test_stats_out_writes_what_the_report_writes(run_cli, tmp_path):
    from skinoct.study.stats import group_statistics, read_scores
    from skinoct.study.stats_tables import write_statistics

    rng = np.random.default_rng(0)
    rows = [
        {"subject": f"{g}{i}", "group": g, "score": mu + rng.normal(0, 0.2)}
        for g, mu in (("young", 3.0), ("old", 2.5), ("older", 2.0))
        for i in range(5)
    ]
    path = tmp_path / "scores.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    code, _, err = run_cli("study", "stats", path, "--out", tmp_path / "cli")
    assert code == 0, err
    write_statistics(tmp_path / "lib", group_statistics(read_scores(path)))
    lib = sorted(p.name for p in (tmp_path / "lib").iterdir())
    cli = {p.name for p in (tmp_path / "cli").iterdir()}
    assert "stats.json" in lib and any(n.startswith("stats_") for n in lib)
    assert set(lib) <= cli
    for name in lib:
        if name.endswith((".csv", ".json")):
            assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()
    assert json.loads((tmp_path / "cli" / "stats.json").read_text())["alpha"] == 0.05
