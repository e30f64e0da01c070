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
