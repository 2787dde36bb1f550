"""The model's configurations: every number of the architecture, by name (``CONFIGS``).

Plain Python (no Keras), so the command line, the tests and the benchmarks read the configs, the
fusions and their names without loading a deep-learning framework; ``model.py`` builds from them.
"""
from __future__ import annotations

import dataclasses

RESNET_STRIDE = 32


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Every number of the architecture (see DESIGN.md section 4).

    image_size S: square crop side in pixels; heatmap_size: side of the output heatmaps.
    backbone: "resnet152", "resnet50" (keras.applications) or "tiny" (small residual CNN).
    encoder_filters: tiny only; a stride-2 stem then one stride-2 residual block per entry
        after the first, so the feature map is S / 2**len(encoder_filters) wide.
    latent_points N: the encoder emits 3N channels read as N points in a view's image
        space; FTL^-1 turns them into N homogeneous points (4N channels), camera-free.
    fusion: "concat" (the views' codes side by side in the channels: the paper's) or "mean"
        (a shared 1x1 conv + BN + ReLU per view, then the mean over the visible views: any
        number of views, in any order).
    fusion_layers: 1x1 conv layers (4N filters) on the merged views, BN + ReLU after all but
        the last, which is linear: the canonical points are unconstrained, as in the paper
        (``fusion_last_relu`` puts BN + ReLU after it too, for the ablation). 0 is the "views
        kept apart" ablation: no merging and no fusion convs; each view's canonical code
        (B, V, h, w, 4N) goes back through the FTL with its own P, which gives its features
        back unchanged (P pinv(P) = I), so no information passes between views before the DLT.
    view_skip: each view's decoder also receives the view's own code (its 3N encoder channels)
        beside the fused code mapped back into the view, so the fusion can only add information
        (the ablation of issue 25); no effect with ``fusion_layers=0``, where the two are equal.
    decoder_input_filters: 1x1 conv after the FTL back into each view.
    decoder_filters: one Conv2DTranspose(kernel decoder_kernel, stride 2) + BN + ReLU each.
    softmax_beta: multiplies the heatmap logits before the spatial softmax;
        learn_softmax_beta makes it a trainable scalar.
    world_unit_mm: world length unit of the normalised P used by the FTL (1000: metres),
        which keeps its rotation and translation columns of comparable size.
    preprocessing: "caffe" (keras.applications ResNets) or "unit" (pixels to [-1, 1]).
    """

    name: str
    image_size: int
    heatmap_size: int
    backbone: str
    latent_points: int
    fusion_layers: int
    decoder_input_filters: int
    decoder_filters: tuple[int, ...]
    decoder_kernel: int = 4
    encoder_filters: tuple[int, ...] = ()
    fusion: str = "concat"
    fusion_last_relu: bool = False
    view_skip: bool = False
    softmax_beta: float = 1.0
    learn_softmax_beta: bool = False
    world_unit_mm: float = 1000.0
    preprocessing: str = "caffe"

    @property
    def encoder_stride(self) -> int:
        """Input pixels per feature-map cell."""
        return 2 ** len(self.encoder_filters) if self.backbone == "tiny" else RESNET_STRIDE

    @property
    def feature_size(self) -> int:
        """Side of the encoder's feature map."""
        return self.image_size // self.encoder_stride


CONFIGS = {
    "paper": ModelConfig(
        name="paper", image_size=256, heatmap_size=64, backbone="resnet152", latent_points=100,
        fusion_layers=2, decoder_input_filters=2048, decoder_filters=(256, 256, 256)),
    "resnet50": ModelConfig(
        name="resnet50", image_size=256, heatmap_size=64, backbone="resnet50", latent_points=100,
        fusion_layers=2, decoder_input_filters=2048, decoder_filters=(256, 256, 256)),
    "tiny": ModelConfig(
        name="tiny", image_size=128, heatmap_size=32, backbone="tiny", latent_points=16,
        fusion_layers=2, decoder_input_filters=128, decoder_filters=(64,),
        encoder_filters=(32, 64, 96), preprocessing="unit"),
}


FUSIONS = ("concat", "mean")  # how the fusion layers combine the views (``ModelConfig.fusion``)
# --fusion: one of FUSIONS, or "skip": concat whose decoders also get each view's own code
# (``view_skip``), the variant that won on the hard synthetic set (docs/RESULTS.md).
_CHOICE_SETTINGS = {"concat": {"fusion": "concat"}, "skip": {"fusion": "concat", "view_skip": True},
                    "mean": {"fusion": "mean"}}
FUSION_CHOICES = tuple(_CHOICE_SETTINGS)
# Every config also exists with the other fusions, named "<config>-<fusion>" (e.g. "tiny-mean").
CONFIG_NAMES = tuple(CONFIGS) + tuple(f"{name}-{choice}" for name in CONFIGS for choice in FUSION_CHOICES
                                      if choice != CONFIGS[name].fusion)


def get_config(name: str, fusion: str | None = None) -> ModelConfig:
    """The named configuration ("paper", "resnet50", "tiny", or one of them + "-skip" or "-mean");
    ``fusion`` (one of ``FUSION_CHOICES``) replaces its fusion, and the name says so."""
    base, _, suffix = name.partition("-")
    if base not in CONFIGS or (suffix and f"{base}-{suffix}" not in CONFIG_NAMES):
        raise ValueError(f"Unknown model config {name!r}; choose one of {list(CONFIG_NAMES)}.")
    choice = fusion or suffix or CONFIGS[base].fusion
    if choice not in FUSION_CHOICES:
        raise ValueError(f"Unknown fusion {choice!r}; choose one of {FUSION_CHOICES}.")
    if choice == CONFIGS[base].fusion:
        return CONFIGS[base]
    return dataclasses.replace(CONFIGS[base], **_CHOICE_SETTINGS[choice], name=f"{base}-{choice}")
