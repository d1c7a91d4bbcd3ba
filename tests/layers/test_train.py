import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from _layers_synthetic import TINY_CONFIG, synthetic_section, write_dataset

from skinoct.errors import InputError
from skinoct.layers import (
    NetworkSpec,
    TrainConfig,
    dice_per_layer,
    grouped_folds,
    load_layers_model,
    mean_dice,
    segment_section,
    train_layers,
)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"folds": -1}, "folds must be 0"),
        ({"sampling": "random"}, "sampling must be one of"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"patch": (30, 32)}, "multiples of 16"),
        ({"patch": (32,)}, "two positive sizes"),
        ({"lr": float("nan")}, "lr"),
        ({"model_spacing_um": (1.0, -2.0)}, "model_spacing_um"),
        ({"num_workers": -1}, "num_workers"),
        ({"levels": 1}, "levels must be an integer in 2-8"),
        ({"levels": True}, "levels must be an integer"),
        ({"levels": 6, "network": NetworkSpec()}, r"levels \(6\) and network \(5 levels\)"),
        ({"levels": 7, "patch": (32, 64)}, "multiples of 64"),
    ],
)
def test_config_is_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_grouped_folds_never_share_a_subject():
    subjects = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "e", "f"])
    folds = grouped_folds(subjects, 3)
    assert len(folds) == 3
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen) == list(range(len(subjects)))  # each section validated once
    for train, val in folds:
        assert not set(subjects[train]) & set(subjects[val])


def test_grouped_folds_need_enough_subjects():
    with pytest.raises(InputError, match="needs at least 5 subjects, the dataset has 2"):
        grouped_folds(["a", "b", "a"], 5)


def test_training_writes_a_loadable_artifact_and_cv_report(trained, dataset_dir):
    result, events = trained
    out = result.model_dir
    model = load_layers_model(out)
    assert model.label_values == (0, 1, 2, 3)
    report = json.loads((out / "cv_report.json").read_text())
    assert [f["fold"] for f in report["folds"]] == [0, 1]
    subjects = {}
    for fold in report["folds"]:
        assert set(fold["dice"]) == {"stratum_corneum", "epidermis", "dermis", "mean_dice"}
        assert 1 <= fold["best_epoch"] <= TINY_CONFIG.epochs
        for s in fold["val_subjects"]:
            assert s not in subjects  # a subject is validated in one fold only
            subjects[s] = fold["fold"]
        assert (out / "folds" / f"fold_{fold['fold']}" / "model.json").is_file()
    assert len(report["per_section"]) == 6
    assert set(report["summary"]) == {"stratum_corneum", "epidermis", "dermis", "mean_dice"}
    manifest = model.manifest
    assert manifest["scores"]["cv"] == report["summary"]
    assert manifest["training"]["folds"] == 2 and manifest["training"]["final_epochs"] >= 1
    assert manifest["training"]["dataset"]["n_subjects"] == 3
    kinds = [e["event"] for e in events]
    for kind in ("data", "fold_start", "step", "epoch", "fold_done", "final_start", "done"):
        assert kind in kinds
    # The artifact predicts.
    image, _ = synthetic_section(np.random.default_rng(5), (33, 41))
    assert segment_section(image, out, spacing_um=(1.0, 1.0), device="cpu").labels.shape == (33, 41)


def test_resume_skips_completed_folds(trained, tmp_path):
    result, _ = trained
    out = tmp_path / "model"
    shutil.copytree(result.model_dir, out)
    (out / "folds" / "fold_1.json").unlink()
    (out / "model.json").unlink()
    fold0 = (out / "folds" / "fold_0.json").read_text()
    events: list[dict] = []
    dataset = result.cv_report["dataset"]["path"]
    train_layers(dataset, out, TINY_CONFIG, callback=events.append)
    skipped = [e["fold"] for e in events if e["event"] == "fold_skipped"]
    started = [e["fold"] for e in events if e["event"] == "fold_start"]
    assert skipped == [0] and started == [1]
    assert (out / "folds" / "fold_0.json").read_text() == fold0
    assert (out / "folds" / "fold_1.json").is_file() and (out / "model.json").is_file()
    # Everything done: a rerun trains nothing.
    events.clear()
    train_layers(dataset, out, TINY_CONFIG, callback=events.append)
    kinds = {e["event"] for e in events}
    assert "fold_start" not in kinds and "final_start" not in kinds and "final_skipped" in kinds


def test_other_run_in_the_same_folder_is_refused_unless_restarted(trained, tmp_path):
    result, _ = trained
    out = tmp_path / "model"
    shutil.copytree(result.model_dir, out)
    dataset = result.cv_report["dataset"]["path"]
    other = replace(TINY_CONFIG, seed=1, epochs=1)
    with pytest.raises(InputError, match="different training run"):
        train_layers(dataset, out, other)
    events: list[dict] = []
    train_layers(dataset, out, other, restart=True, callback=events.append)
    assert [e["fold"] for e in events if e["event"] == "fold_start"] == [0, 1]


def _weights(model):
    return torch.cat([v.flatten().float() for v in model.state_dict().values()])


def test_training_is_reproducible_with_a_seed(dataset_dir, tmp_path):
    cfg = replace(TINY_CONFIG, folds=0, epochs=1)
    a = train_layers(dataset_dir, tmp_path / "a", cfg).model
    b = train_layers(dataset_dir, tmp_path / "b", cfg).model
    c = train_layers(dataset_dir, tmp_path / "c", replace(cfg, seed=1)).model
    torch.testing.assert_close(_weights(a), _weights(b), rtol=0, atol=0)
    assert not torch.allclose(_weights(a), _weights(c))
    assert not (tmp_path / "a" / "cv_report.json").exists()  # no CV, no report


def test_training_learns_the_layers(dataset_dir, tmp_path):
    """Enough steps of a small network separate the synthetic layers (untrained: ~0.3)."""
    cfg = replace(
        TINY_CONFIG,
        folds=0,
        epochs=15,
        patches_per_section=4,
        lr=3e-3,
        network=NetworkSpec(channels=(8, 16, 32), strides=(2, 2), num_res_units=1),
    )
    model = train_layers(dataset_dir, tmp_path / "m", cfg).model
    rng = np.random.default_rng(99)  # sections the model never saw
    scores = []
    for _ in range(3):
        image, labels = synthetic_section(rng, (64, 96))
        result = segment_section(image, model, spacing_um=(1.0, 1.0), device="cpu")
        scores.append(mean_dice(dice_per_layer(result.labels, labels)))
    assert np.mean(scores) > 0.8


def test_partial_label_set_trains_and_scores_only_annotated_layers(tmp_path):
    data = write_dataset(tmp_path / "partial", n=4, subjects=2, labels=[0, 2, 3])
    result = train_layers(data, tmp_path / "m", replace(TINY_CONFIG, epochs=1))
    assert result.model.label_values == (0, 2, 3)
    assert result.model.class_names == ("air", "epidermis", "dermis")
    assert result.cv_report["layers"] == ["epidermis", "dermis"]
    for fold in result.cv_report["folds"]:
        assert set(fold["dice"]) == {"epidermis", "dermis", "mean_dice"}
    image, _ = synthetic_section(np.random.default_rng(0), (40, 40))
    labels = segment_section(image, result.model, spacing_um=(1.0, 1.0), device="cpu").labels
    assert 1 not in labels


def test_a_declared_label_that_never_occurs_is_an_error(tmp_path):
    data = write_dataset(tmp_path / "noSC", n=2, labels=[0, 2, 3])
    (data / "dataset.json").unlink()  # masks hold no 1, yet all four labels are declared
    with pytest.raises(InputError, match=r"1=stratum_corneum never occur.*dataset\.json"):
        train_layers(data, tmp_path / "m", replace(TINY_CONFIG, folds=0, epochs=1))


def test_too_few_subjects_for_the_folds(dataset_dir, tmp_path):
    with pytest.raises(InputError, match="needs at least 5 subjects"):
        train_layers(dataset_dir, tmp_path / "m", replace(TINY_CONFIG, folds=5))


def test_fine_tuning_from_a_model_with_another_class_set(trained, tmp_path):
    result, _ = trained
    data = write_dataset(tmp_path / "partial", n=2, labels=[0, 2, 3])
    cfg = replace(TINY_CONFIG, folds=0, epochs=1, network=None)  # the initial model's
    with pytest.warns(UserWarning, match=r"class set changed \(\[0, 1, 2, 3\] -> \[0, 2, 3\]\)"):
        tuned = train_layers(data, tmp_path / "tuned", cfg, init=result.model_dir).model
    assert tuned.spec == result.model.spec and tuned.label_values == (0, 2, 3)
    init = tuned.manifest["training"]["init"]
    assert init["sha256"] == result.model.weights_sha256
    # Layers shared by both class sets start from the initial model's weights.
    base = result.model.state_dict()
    name = next(iter(base))
    assert tuned.state_dict()[name].shape == base[name].shape


def test_fine_tuning_into_a_deeper_network_warm_starts_its_upper_levels(trained, tmp_path):
    result, _ = trained
    base = result.model
    deeper = NetworkSpec(channels=(*base.spec.channels, 16), strides=(*base.spec.strides, 2),
                         num_res_units=base.spec.num_res_units,
                         dropout=base.spec.dropout)  # fmt: skip
    data = write_dataset(tmp_path / "data", n=2)
    cfg = replace(TINY_CONFIG, folds=0, epochs=1, lr=1e-12, network=deeper)
    with pytest.warns(UserWarning, match="another class set or architecture"):
        tuned = train_layers(data, tmp_path / "deep", cfg, init=result.model_dir).model
    assert tuned.spec == deeper and tuned.spacing_um == base.spacing_um
    recipe = tuned.manifest["training"]["recipe"]
    assert "network" in recipe["overridden"] and "channels" not in recipe["reasons"]
    assert recipe["chosen"]["network"]["channels"] == list(deeper.channels)
    # The top level's input convolution exists in both and starts from the initial
    # model's weights (a learning rate of 1e-12 leaves them where they started).
    old, new = base.state_dict(), tuned.state_dict()
    shared = [k for k in old if k in new and old[k].shape == new[k].shape
              and k.endswith(".conv.weight")]  # fmt: skip
    fresh = [k for k in new if k not in old or old[k].shape != new[k].shape]
    assert shared and fresh
    first = next(k for k in shared if k.startswith("model.0."))
    torch.testing.assert_close(new[first], old[first], rtol=0, atol=1e-6)


def test_levels_deepen_the_recipe_network_and_the_initial_model(trained, dataset_dir, tmp_path):
    cfg = TrainConfig(folds=0, epochs=1, levels=6, seed=1, device="cpu", num_workers=0)
    model = train_layers(dataset_dir, tmp_path / "m", cfg).model
    assert model.spec == NetworkSpec().with_levels(6)
    recipe = model.manifest["training"]["recipe"]
    assert recipe["overridden"] == ["folds", "levels"]
    # 48 model-grid columns: a full-width strip rounded up to 32 (16 would give 48).
    assert recipe["chosen"]["patch"] == [64, 64]
    result, _ = trained
    tuned_cfg = replace(TINY_CONFIG, folds=0, epochs=1, network=None, levels=4)
    with pytest.warns(UserWarning, match="another class set or architecture"):
        tuned = train_layers(dataset_dir, tmp_path / "t", tuned_cfg, init=result.model_dir).model
    assert tuned.spec == result.model.spec.with_levels(4)


def test_sampler_hook_is_called_once_per_epoch(dataset_dir, tmp_path):
    from skinoct.layers._augment import TrainPatches

    calls = []

    def sampler(sections, *, patch, length, seed):
        calls.append((len(sections), tuple(patch), length, seed))
        return TrainPatches(sections, patch=patch, length=length, seed=seed)

    cfg = replace(TINY_CONFIG, folds=0, epochs=2)
    train_layers(dataset_dir, tmp_path / "m", cfg, sampler=sampler)
    # 6 sections x 2 patches / batch 4 = 3 steps of 4 patches; seeds differ per epoch
    assert calls == [(6, (32, 32), 12, 999_001), (6, (32, 32), 12, 999_002)]


def test_time_budget_stops_keeps_a_checkpoint_and_resumes_to_the_same_weights(
    dataset_dir, tmp_path, monkeypatch
):
    import skinoct.layers._train as train_module
    from skinoct.models import Budget

    # The test's sampler below cuts uniform patches: the reference run does the same.
    cfg = replace(TINY_CONFIG, folds=0, epochs=3, sampling="uniform")
    full = train_layers(dataset_dir, tmp_path / "full", cfg).model
    now = [0.0]

    def sampler(sections, **kw):  # each epoch "takes" 10 s of wall clock
        from skinoct.layers._augment import TrainPatches

        now[0] += 10.0
        return TrainPatches(sections, **kw)

    monkeypatch.setattr(train_module, "Budget", lambda s: Budget(s, clock=lambda: now[0]))
    out = tmp_path / "budget"
    events: list = []
    cut = train_layers(
        dataset_dir, out, replace(cfg, time_budget_s=25.0), sampler=sampler,
        callback=events.append,
    )  # fmt: skip
    assert cut.stopped_by_time and "stopped_by_time" in [e["event"] for e in events]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    manifest = load_layers_model(out).manifest["training"]
    assert manifest["stopped_by_time"] and manifest["epochs_run"] == 2
    assert (out / "folds" / "checkpoint_final.safetensors").is_file()
    assert not list(out.rglob("*.pt"))
    events.clear()
    resumed = train_layers(dataset_dir, out, cfg, callback=events.append)
    assert not resumed.stopped_by_time
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [3]
    assert not (out / "folds" / "checkpoint_final.json").exists()
    torch.testing.assert_close(_weights(resumed.model), _weights(full), rtol=0, atol=0)


def test_recipe_fills_unset_options_and_is_recorded(dataset_dir, tmp_path):
    cfg = TrainConfig(folds=0, epochs=1, network=TINY_CONFIG.network, seed=1)
    events: list = []
    result = train_layers(dataset_dir, tmp_path / "m", cfg, callback=events.append)
    recipe = result.model.manifest["training"]["recipe"]
    # 64-row sections: the patch is at most as high as they are; 96 columns on the
    # 2 µm model grid are 48 wide -> a full-width strip, rounded up to the divisor (16).
    assert recipe["chosen"]["patch"] == [64, 64]
    assert recipe["chosen"]["sampling"] == "band"
    assert recipe["overridden"] == ["folds", "network"]
    assert "patch" in recipe["reasons"] and "folds" not in recipe["reasons"]
    assert recipe["fingerprint"]["n_sections"] == 6
    assert [e["event"] for e in events].count("recipe") == 1


def test_holdout_split_delivers_its_best_validation_network(dataset_dir, tmp_path):
    cfg = replace(TINY_CONFIG, folds=1, epochs=2)
    result = train_layers(dataset_dir, tmp_path / "m", cfg)
    report = result.cv_report
    assert len(report["folds"]) == 1 and report["folds"][0]["n_val"] == 2  # 1 of 3 subjects
    fold = load_layers_model(tmp_path / "m" / "folds" / "fold_0")
    torch.testing.assert_close(_weights(result.model), _weights(fold), rtol=0, atol=0)
    manifest = result.model.manifest
    assert "hold-out" in manifest["training"]["final_model"]
    assert manifest["scores"]["cv_folds"] == 1


def test_holdout_cut_by_the_budget_still_delivers_a_model(dataset_dir, tmp_path, monkeypatch):
    import skinoct.layers._train as train_module
    from skinoct.models import Budget

    now = [0.0]

    def sampler(sections, **kw):
        from skinoct.layers._augment import TrainPatches

        now[0] += 10.0
        return TrainPatches(sections, **kw)

    monkeypatch.setattr(train_module, "Budget", lambda s: Budget(s, clock=lambda: now[0]))
    cfg = replace(TINY_CONFIG, folds=1, epochs=5, time_budget_s=25.0)
    result = train_layers(dataset_dir, tmp_path / "m", cfg, sampler=sampler)
    assert result.stopped_by_time and result.model is not None
    assert result.model.manifest["training"]["stopped_by_time"]
    assert (tmp_path / "m" / "model.json").is_file()


def test_comparison_scores_the_other_model_on_the_same_sections(
    dataset_dir, tmp_path, tiny_model_dir
):
    cfg = replace(TINY_CONFIG, folds=1, epochs=1)
    result = train_layers(dataset_dir, tmp_path / "m", cfg, compare_with=tiny_model_dir)
    comparison = result.cv_report["comparison"]
    assert comparison["n_sections"] == result.cv_report["folds"][0]["n_val"]
    for scores in (comparison["trained"], comparison["other_scores"]):
        assert 0.0 <= scores["mean_dice"] <= 1.0
        assert "dej_mae_um" in scores
    saved = json.loads((tmp_path / "m" / "cv_report.json").read_text())
    assert saved["comparison"]["other"] == str(tiny_model_dir)


def _with_indeterminate_dej(root, half: int = 3) -> None:
    """Mark a band of ``half`` pixels either side of the DEJ as 255 in every mask's left half."""
    from skinoct.io import INDETERMINATE, read_mask, write_image

    for path in sorted((root / "masks").iterdir()):
        mask = read_mask(path).data.copy()
        dej = (mask >= 3).argmax(axis=0)
        rows = np.arange(mask.shape[0])[:, None]
        band = (np.abs(rows - dej[None]) < half) & (np.arange(mask.shape[1]) < mask.shape[1] // 2)
        mask[band & (mask >= 2)] = INDETERMINATE
        write_image(path, mask, spacing_um=(1.0, 1.0), axes="zx")


def test_masks_with_indeterminate_bands_train_and_are_scored_without_them(tmp_path):
    from skinoct.layers._data import discover_dataset
    from skinoct.layers._evaluate import score_sections

    data = write_dataset(tmp_path / "soft", n=4, subjects=2)
    plain = write_dataset(tmp_path / "hard", n=4, subjects=2)
    _with_indeterminate_dej(data)
    result = train_layers(data, tmp_path / "m", replace(TINY_CONFIG, folds=0, epochs=1))
    assert result.model is not None
    records = discover_dataset(data).records
    soft = score_sections(result.model, records, (1, 2, 3), device="cpu")
    hard = score_sections(result.model, discover_dataset(plain).records, (1, 2, 3), device="cpu")
    for s, h in zip(soft, hard, strict=True):
        # the band's columns leave the boundary errors; the Dice skips the band's pixels
        assert s["boundary_errors"]["dej"]["n_columns"] < h["boundary_errors"]["dej"]["n_columns"]
        assert all(np.isfinite(v) for v in s["dice"].values())
    # known answer for the first section: Dice over the pixels outside the band
    from skinoct.io import INDETERMINATE, read_image, read_mask

    image = read_image(records[0].image, axes="zx")
    reference = read_mask(records[0].mask, allow_indeterminate=True).data
    labels = segment_section(image.data, result.model, spacing_um=(1.0, 1.0), device="cpu").labels
    unknown = reference == INDETERMINATE
    expected = dice_per_layer(np.where(unknown, 255, labels), reference)
    assert soft[0]["dice"] == pytest.approx(expected)
    assert soft[0]["dice"] != pytest.approx(dice_per_layer(labels, reference))


def test_holdout_training_recalibrates_the_dej_flag_on_clean_validation_sections(
    tmp_path, monkeypatch
):
    """The hold-out model's threshold: the quantile of its flag scores on the validation
    sections without an annotated disruption (scores faked: the tiny model finds no DEJ)."""
    from skinoct.layers import _calibration

    seen: list[int] = []

    def fake_scores(model, sections, **kw):
        seen.append(len(list(sections)))
        return [0.1, 0.3]

    monkeypatch.setattr(_calibration, "section_flag_scores", fake_scores)
    data = write_dataset(tmp_path / "data", n=6, subjects=3)
    events: list = []
    result = train_layers(data, tmp_path / "m", replace(TINY_CONFIG, folds=1, epochs=1),
                          callback=events.append)  # fmt: skip
    cal = result.model.manifest["uncertainty"]
    assert seen == [2]  # the validation subject's two sections
    # two scores: the conformal 0.9 quantile is beyond n, so the larger one
    assert cal["dej_entropy_threshold"] == pytest.approx(0.3)
    assert cal["n_sections"] == 2 and "2 clean validation sections" in cal["computed_on"]
    assert cal["weights_sha256"] == result.model.weights_sha256 and "20" in cal["note"]
    assert next(e for e in events if e["event"] == "calibrated")["n_sections"] == 2
    # Sections with an annotated disruption (255 band) are left out; none left: warned.
    _with_indeterminate_dej(data)
    with pytest.warns(UserWarning, match="no clean validation section"):
        again = train_layers(data, tmp_path / "m2", replace(TINY_CONFIG, folds=1, epochs=1))
    assert "uncertainty" not in again.model.manifest and seen == [2]


def test_run_fingerprint_names_layer_intensity_only_when_used_and_levels_never():
    """Runs started before the options existed (P = 0 for ``layer_intensity`` and
    ``resolution``, no levels) keep their fingerprint and resume; the depth is named by
    the resolved network."""
    import hashlib
    from types import SimpleNamespace

    from skinoct.layers import TrainConfig
    from skinoct.layers._folds import RUN_ONLY, run_fingerprint

    records = [SimpleNamespace(id="s1", subject="a"), SimpleNamespace(id="s2", subject="b")]
    dataset = SimpleNamespace(records=records, label_values=(0, 1, 2, 3))
    default = TrainConfig()
    cfg = default.to_dict()
    for key in (*RUN_ONLY, "layer_intensity", "resolution", "levels"):
        cfg.pop(key, None)
    payload = {"config": cfg, "sections": [["s1", "a"], ["s2", "b"]],
               "labels": [0, 1, 2, 3], "init": None}  # fmt: skip
    before = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    assert run_fingerprint(dataset, default, None) == before
    assert run_fingerprint(dataset, TrainConfig(layer_intensity=0.5), None) != before
    assert run_fingerprint(dataset, TrainConfig(resolution=0.5), None) != before
    # Golden values computed with the code of 34d13fa (before ``levels`` existed): runs
    # started then still resume.
    assert before == "7784f2a741406920"
    resolved = TrainConfig(network=NetworkSpec(), lr=5e-4, layer_intensity=0.5)
    assert run_fingerprint(dataset, resolved, None) == "32f755fbcf42ae3b"
    deep = NetworkSpec().with_levels(6)
    named = run_fingerprint(dataset, TrainConfig(network=deep), None)
    assert named != before
    assert run_fingerprint(dataset, TrainConfig(network=deep, levels=6), None) == named
