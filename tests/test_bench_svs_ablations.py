"""The ablation harness trains what it says: the singer-held-out configs with only the variant's keys changed."""

from __future__ import annotations

from pipeline.svs.config import SvsConfig


def test_each_variant_changes_only_its_own_keys_and_holds_out_one_singer():
    from bench.svs_ablations import DIRECTIONS, VARIANTS, variant_config

    base = {d: SvsConfig.model_validate(variant_config("base", d, 12.0)) for d in DIRECTIONS}
    for held_out, cfg in base.items():
        assert cfg.split.by == "singer" and cfg.split.test_singers == [held_out]
        assert cfg.train.time_budget_min == 12.0 and cfg.ibm.threshold == 0.2 and cfg.separate.input_rms_db == -26.0
    for variant in VARIANTS:
        for held_out in DIRECTIONS:
            cfg = SvsConfig.model_validate(variant_config(variant, held_out, 12.0, seed=1))
            changed = {k for k, v in cfg.model_dump().items() if v != base[held_out].model_dump()[k]}
            expected = {"name", "seed"} | {key.split(".")[0] for key in VARIANTS[variant]}
            assert changed == expected, (variant, changed)
            assert cfg.name.endswith(f"no-{held_out}-s1")


def test_ensemble_of_a_model_with_itself_scores_as_the_model_and_mixes_probabilities():
    """bench/svs_ensemble.py: subsets average voice probabilities; identical members change nothing."""
    import numpy as np

    from bench.svs_ensemble import clip_scores
    from pipeline.svs.bundle import resolve_model

    sep = resolve_model("svs-default")
    sr = sep.config.stft.sample_rate
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(0)
    voice = (0.2 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    acc = (0.05 * rng.standard_normal(len(t))).astype(np.float32)

    class Track:
        def load(self, rate):
            assert rate == sr
            return voice, acc

    row = clip_scores(Track(), [sep, sep], {"a": (0,), "b": (1,), "a + b": (0, 1)})
    for i in range(3):  # sdr, sir, sar
        np.testing.assert_allclose(row["a + b"][i], row["a"][i])
        np.testing.assert_allclose(row["a"][i], row["b"][i])
    assert row["a"][0][0] > row["mixture"][0][0] + 1  # the network separates: vocal SDR above the mixture's


def test_new_rows_merge_into_the_results_file_without_dropping_old_ones():
    import pytest

    from bench.svs_ablations import merge_results

    def row(variant, held_out, score):
        return {"variant": variant, "held_out": held_out, "seed": 0, "gnsdr": {"vocals": score}}

    old = {"budget_min": 12.0, "common": {"a": 1}, "variants": {"base": {}}, "machine": "m0",
           "runs": [row("base", "amy", 6.0), row("base", "abjones", 5.0)]}
    new = {"budget_min": 12.0, "common": {"a": 1}, "variants": {"hg": {"x": 1}}, "machine": "m1",
           "runs": [row("hg", "amy", 7.0), row("hg", "abjones", 6.0)]}
    merged = merge_results(old, new)
    assert [r["variant"] for r in merged["runs"]] == ["base", "base", "hg", "hg"]
    assert merged["summary"] == {"base": {"mean_gnsdr_vocals": 5.5, "runs": 2}, "hg": {"mean_gnsdr_vocals": 6.5, "runs": 2}}
    assert merged["variants"] == {"base": {}, "hg": {"x": 1}} and merged["machine"] == "m0"
    rerun = merge_results(merged, {**new, "runs": [row("hg", "amy", 8.0)]})  # a rerun replaces its own row only
    assert [r["gnsdr"]["vocals"] for r in rerun["runs"] if r["variant"] == "hg"] == [6.0, 8.0]
    with pytest.raises(SystemExit, match="another budget"):
        merge_results(old, {**new, "budget_min": 6.0})
