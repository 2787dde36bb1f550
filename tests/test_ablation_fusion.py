"""experiments.ablation_fusion: its variants and its report (no training here: that is the tool's run)."""
import numpy as np

import model
from experiments import ablation_fusion


def test_variants_change_one_thing_each_and_keep_concat_as_the_paper():
    base = model.CONFIGS["tiny"]
    found = ablation_fusion.variants(base)
    assert found["concat"].config.fusion == "concat" and not found["concat"].config.view_skip
    assert found["skip"].config.view_skip and found["skip"].config.fusion_layers == base.fusion_layers
    assert found["apart"].config.fusion_layers == 0
    assert found["mean"].config.fusion == "mean"
    # the paper's 300 of 2048 encoder channels for the per-view code, the decoder input as wide as the encoder
    assert (found["paper-ratios"].config.latent_points, found["paper-ratios"].config.decoder_input_filters) == (5, 96)
    paper = ablation_fusion.variants(model.CONFIGS["paper"])["paper-ratios"].config
    assert (paper.latent_points, paper.decoder_input_filters) == (100, 2048)  # the paper is its own ratio
    assert len({variant.config.name for variant in found.values()}) == len(found)


def test_report_gives_mean_sd_and_paired_signs_per_seed():
    keys = [key for key, _ in ablation_fusion.COLUMNS]
    table = {"concat": {key: [30.0, 32.0] for key in keys}, "skip": {key: [25.0, 33.0] for key in keys}}
    table["concat"]["error_2d_hidden_px"] = [np.nan, np.nan]
    table["skip"]["error_2d_hidden_px"] = [np.nan, np.nan]
    report = ablation_fusion.format_report(table, [0, 1], "concat")
    assert "| skip | 29.0 +- 4.0 |" in report
    assert "val MPJPE minus concat's (paired by seed [0, 1]): skip -2.00 +- 3.00 (per seed -5.00, +1.00; lower in 1/2)" in report
    assert "2D hidden minus" not in report  # no visibility: no paired line
