"""The canonical-fusion multi-view pose model of Remelli et al. (CVPR 2020), in Keras 3.

Per sample: V crops ``(S, S, 3)`` with their projection matrices and a view mask. Each view
is encoded by a shared CNN; its features, read as points, are mapped into a camera-independent
space with the pseudo-inverse of the view's normalised ``P`` (FTL^-1), fused across views by
1x1 convolutions (or kept apart: ``fusion_layers=0``), mapped back into every view with its
``P`` (FTL), decoded into heatmaps, turned into 2D joints by soft-argmax, undistorted and
triangulated by the DLT layer (``dlt_layer``) from the visible views into 3D joints in the
cameras' frame (mm). Everything is written with ``keras.ops`` so it runs under any Keras
backend; every number of the architecture is a field of ``ModelConfig``.

Two fusions (``ModelConfig.fusion``): ``"concat"``, the paper's: the V canonical codes side by
side in the channels, so slot k is "camera k" and a model runs on exactly the V cameras it was
trained with; ``"mean"``: each view's canonical code through a shared 1x1 layer, then the mean
over the visible views, so the fused code does not depend on the order or the number of views
and one model runs on any rig of 2 or more cameras. With ``view_skip`` each view's decoder also
gets the view's own code beside the fused one (the fusion can then only add information).
"""
from __future__ import annotations

import keras
from keras import layers, ops

import dlt_layer
from common import geometry
# The configs live in a module of their own (no Keras there); model.CONFIGS etc. stay importable from here.
from model_config import CONFIGS, FUSIONS, ModelConfig, get_config  # noqa: F401 (model.CONFIGS stays the API)

SERIALIZATION_PACKAGE = "canonical_fusion"
# keras.applications' "caffe" preprocessing for its ResNets: BGR order, ImageNet mean.
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
# Camera geometry, soft-argmax and the joints stay float32 under a mixed dtype policy: bfloat16
# keeps 8 bits of mantissa, so a 256 px coordinate would be off by up to 1 px and P P^T ill-posed.
GEOMETRY_DTYPE = "float32"


# --------------------------------------------------------------------------- camera geometry

def normalize_projection(P, image_size: int, world_unit_mm: float):
    """(..., 3, 4) crop-pixel, world-mm ``P`` -> (..., 3, 4) well-scaled ``P``.

    Crop pixels are mapped to [-1, 1] (pixel centres at integers: the crop spans
    [-0.5, S - 0.5]), world coordinates to ``world_unit_mm`` units, then the matrix is
    divided by its Frobenius norm. It projects the same rays: only the units change.
    """
    scale, shift = 2.0 / image_size, 1.0 / image_size - 1.0
    image_rows = P[..., :2, :] * scale + P[..., 2:3, :] * shift
    P = ops.concatenate([image_rows, P[..., 2:3, :]], axis=-2)
    P = P * ops.convert_to_tensor([world_unit_mm, world_unit_mm, world_unit_mm, 1.0], P.dtype)
    return P / ops.sqrt(ops.sum(ops.square(P), axis=(-2, -1), keepdims=True))


def pseudo_inverse_transposed(P):
    """(..., 3, 4) full-row-rank ``P`` -> (..., 3, 4) ``pinv(P)^T = (P P^T)^-1 P``."""
    return ops.solve(ops.matmul(P, ops.swapaxes(P, -1, -2)), P)


def _transform_points(features, matrix_transposed, in_dim: int, out_dim: int):
    """Read the channels of ``features (B, V, h, w, in_dim * N)`` as N points and map each.

    ``matrix_transposed (B, V, in_dim, out_dim)`` (V may be 1 to broadcast one feature map
    to every view) -> (B, V', h, w, out_dim * N).
    """
    height, width, channels = features.shape[-3:]
    points = ops.reshape(features, (-1, features.shape[1], height * width * channels // in_dim, in_dim))
    mapped = ops.matmul(points, matrix_transposed)
    return ops.reshape(mapped, (-1, mapped.shape[1], height, width, channels // in_dim * out_dim))


# --------------------------------------------------------------------------- layers

_register = keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)


@_register
class FoldViews(layers.Layer):
    """(B, V, ...) -> (B * V, ...): views become samples, so encoder/decoder/BN are shared."""

    def call(self, x):
        return ops.reshape(x, (-1,) + tuple(x.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None or input_shape[1] is None else input_shape[0] * input_shape[1]
        return (batch,) + tuple(input_shape[2:])


@_register
class UnfoldViews(layers.Layer):
    """(B * V, ...) -> (B, V, ...), the inverse of ``FoldViews``."""

    def __init__(self, num_views: int, **kwargs):
        super().__init__(**kwargs)
        self.num_views = num_views

    def call(self, x):
        return ops.reshape(x, (-1, self.num_views) + tuple(x.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (None, self.num_views) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_views": self.num_views}


@_register
class MergeViews(layers.Layer):
    """(B, V, h, w, C) codes, (B, V) view mask -> (B, h, w, V * C): the views side by side in the
    channels, a masked view's code zeroed."""

    def call(self, x, view_mask):
        views, height, width, channels = x.shape[1:]
        x = x * ops.cast(view_mask, x.dtype)[:, :, None, None, None]
        x = ops.transpose(x, (0, 2, 3, 1, 4))
        return ops.reshape(x, (-1, height, width, views * channels))

    def compute_output_shape(self, x_shape, view_mask_shape):
        batch, views, height, width, channels = x_shape
        return (batch, height, width, views * channels)


@_register
class MeanOverViews(layers.Layer):
    """(B, V, h, w, C) codes, (B, V) view mask -> (B, h, w, C): the mean over the visible views.

    Order-free and view-count-free: permuting the views, or adding masked ones, changes nothing.
    """

    def call(self, x, view_mask):
        weights = ops.cast(view_mask, x.dtype)[:, :, None, None, None]
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)  # a sample with no visible view gives 0
        return ops.sum(x * weights, axis=1) / count

    def compute_output_shape(self, x_shape, view_mask_shape):
        return (x_shape[0],) + tuple(x_shape[2:])


@_register
class ImagePreprocessing(layers.Layer):
    """uint8 RGB (N, S, S, 3) -> float32 network input, in the backbone's convention.

    mode "caffe": BGR minus the ImageNet mean (keras.applications ResNets);
    mode "unit": RGB scaled to [-1, 1].
    """

    MODES = ("caffe", "unit")

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"Unknown preprocessing {mode!r}; choose one of {self.MODES}.")
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, "float32")
        if self.mode == "unit":
            return images / 127.5 - 1.0
        return ops.flip(images, axis=-1) - ops.convert_to_tensor(IMAGENET_MEAN_BGR, "float32")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@_register
class NormalizeProjection(layers.Layer):
    """(B, V, 3, 4) crop ``P`` -> (B, V, 3, 4) normalised ``P`` (see ``normalize_projection``)."""

    def __init__(self, image_size: int, world_unit_mm: float, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.world_unit_mm = world_unit_mm

    def call(self, P):
        return normalize_projection(P, self.image_size, self.world_unit_mm)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size,
                "world_unit_mm": self.world_unit_mm}


@_register
class ToCanonical(layers.Layer):
    """FTL^-1: (B, V, h, w, 3N) view features, (B, V, 3, 4) normalised P -> (B, V, h, w, 4N).

    Each channel triple is a point y in the view's image space; it becomes pinv(P) y, the
    homogeneous point of least norm that P maps back to y. No weights.
    """

    def call(self, features, P):
        return _transform_points(features, pseudo_inverse_transposed(P), 3, 4)

    def compute_output_shape(self, features_shape, P_shape):
        return tuple(features_shape[:-1]) + (features_shape[-1] // 3 * 4,)


@_register
class FromCanonical(layers.Layer):
    """FTL: canonical features, (B, V, 3, 4) normalised P -> (B, V, h, w, 3N) view features.

    The features are either fused, (B, h, w, 4N), one map sent to every view, or per view,
    (B, V, h, w, 4N), view v's own map (the ``fusion_layers=0`` ablation). Each channel
    quadruple is a homogeneous point x; view v receives P_v x. No weights.
    """

    def call(self, features, P):
        if len(features.shape) == 4:  # fused: a view axis of 1, broadcast against P's V views
            features = features[:, None]
        return _transform_points(features, ops.swapaxes(P, -1, -2), 4, 3)

    def compute_output_shape(self, features_shape, P_shape):
        height, width, channels = features_shape[-3:]
        return (features_shape[0], P_shape[1], height, width, channels // 4 * 3)


@_register
class SoftArgmax(layers.Layer):
    """(N, H, W, J) logits -> heatmaps (N, H, W, J) (spatial softmax), joints (N, J, 2) crop px.

    Joint = expectation of the cell centres under the softmax of ``beta * logits``. Cell j of
    a W-wide heatmap over an S-wide crop is centred at crop pixel ``(j + 0.5) S / W - 0.5``
    (pixel centres at integers, the loader's convention).
    """

    def __init__(self, image_size: int, beta: float = 1.0, learn_beta: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.initial_beta = beta
        self.learn_beta = learn_beta

    def build(self, input_shape):
        self.beta = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial_beta),
                                    trainable=self.learn_beta, name="beta")

    def call(self, logits):
        height, width, joints = logits.shape[1:]
        flat = ops.reshape(logits, (-1, height * width, joints)) * self.beta
        heatmaps = ops.reshape(ops.softmax(flat, axis=1), (-1, height, width, joints))
        x = ops.sum(ops.sum(heatmaps, axis=1) * self._cell_centres(width)[:, None], axis=1)
        y = ops.sum(ops.sum(heatmaps, axis=2) * self._cell_centres(height)[:, None], axis=1)
        return heatmaps, ops.stack([x, y], axis=-1)

    def _cell_centres(self, cells: int):
        return (ops.arange(cells, dtype="float32") + 0.5) * (self.image_size / cells) - 0.5

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), (input_shape[0], input_shape[-1], 2)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "beta": self.initial_beta,
                "learn_beta": self.learn_beta}


# --------------------------------------------------------------------------- network parts

def _conv_bn_relu(x, filters: int, kernel: int, stride: int, name: str):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _residual_block(x, filters: int, stride: int, name: str):
    """Two 3x3 convs with BN (the first strided) plus a projected shortcut, then ReLU."""
    shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_skip_conv")(x)
    shortcut = layers.BatchNormalization(name=f"{name}_skip_bn")(shortcut)
    x = _conv_bn_relu(x, filters, 3, stride, f"{name}_a")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_b_bn")(x)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, shortcut]))


def _tiny_encoder(config: ModelConfig) -> keras.Model:
    """(N, S, S, 3) -> (N, S / 2**len(filters), ..., filters[-1]): stem, then residual blocks."""
    images = keras.Input((config.image_size, config.image_size, 3), name="encoder_input")
    x = _conv_bn_relu(images, config.encoder_filters[0], 3, 2, "stem")
    for index, filters in enumerate(config.encoder_filters[1:]):
        x = _residual_block(x, filters, 2, f"block{index + 1}")
    return keras.Model(images, x, name="tiny_encoder")


def _resnet_encoder(config: ModelConfig, weights: str | None) -> keras.Model:
    """keras.applications ResNet without its head: (N, S, S, 3) -> (N, S/32, S/32, 2048)."""
    constructor = {"resnet50": keras.applications.ResNet50,
                   "resnet152": keras.applications.ResNet152}[config.backbone]
    shape = (config.image_size, config.image_size, 3)
    if weights is None:
        return constructor(include_top=False, weights=None, input_shape=shape)
    try:
        return constructor(include_top=False, weights=weights, input_shape=shape)
    except Exception as error:  # keras.utils.get_file raises a bare Exception when offline
        raise RuntimeError(
            f"Could not load {weights!r} weights for {config.backbone} ({error}). keras.applications "
            "downloads them once into ~/.keras/models: connect this machine to the internet once, "
            "copy that file there by hand, or build the model with weights=None.") from error


def _encoder(config: ModelConfig, weights: str | None) -> keras.Model:
    if config.backbone == "tiny":
        if weights is not None:
            raise ValueError(f"The tiny backbone has no pretrained weights; got weights={weights!r}, "
                             "use weights=None.")
        return _tiny_encoder(config)
    if config.backbone in ("resnet50", "resnet152"):
        return _resnet_encoder(config, weights)
    raise ValueError(f"Unknown backbone {config.backbone!r} in config {config.name!r}; "
                     "choose resnet152, resnet50 or tiny.")


def _decoder(x, config: ModelConfig, num_joints: int):
    """(N, h, w, C) -> (N, H, W, J) heatmap logits: upsampling by transposed convs (Simple Baselines)."""
    for index, filters in enumerate(config.decoder_filters):
        x = layers.Conv2DTranspose(filters, config.decoder_kernel, strides=2, padding="same",
                                   use_bias=False, name=f"decoder{index}_deconv")(x)
        x = layers.BatchNormalization(name=f"decoder{index}_bn")(x)
        x = layers.ReLU(name=f"decoder{index}_relu")(x)
    return layers.Conv2D(num_joints, 1, name="heatmap_logits")(x)


def _fusion(x, view_mask, config: ModelConfig, num_views: int):
    """(B, V, h, w, 4N) canonical codes, (B, V) mask -> (B, h, w, 4N) fused code, or as is if fusion_layers=0."""
    if config.fusion_layers == 0:
        return x
    channels = 4 * config.latent_points
    if config.fusion == "concat":
        x = MergeViews(name="merge_views")(x, view_mask)
    else:  # "mean": the same layer for every view, then the mean over the visible ones
        x = FoldViews(name="fold_canonical")(x)
        x = _conv_bn_relu(x, channels, 1, 1, "fusion_per_view")
        x = MeanOverViews(name="mean_over_views")(UnfoldViews(num_views, name="unfold_canonical")(x), view_mask)
    for index in range(config.fusion_layers - 1):
        x = _conv_bn_relu(x, channels, 1, 1, f"fusion{index}")
    last = config.fusion_layers - 1
    if config.fusion_last_relu:
        return _conv_bn_relu(x, channels, 1, 1, f"fusion{last}")
    return layers.Conv2D(channels, 1, name=f"fusion{last}_linear")(x)


def _check_build_arguments(config: ModelConfig, num_views: int, num_joints: int):
    if num_views < 2:
        raise ValueError(f"The model triangulates, so it needs num_views >= 2; got {num_views}.")
    if num_joints < 1:
        raise ValueError(f"num_joints must be positive; got {num_joints}.")
    if config.fusion_layers < 0:
        raise ValueError(f"fusion_layers must be >= 0 (0: views kept apart); got {config.fusion_layers}.")
    if config.fusion not in FUSIONS:
        raise ValueError(f"Unknown fusion {config.fusion!r} in config {config.name!r}; choose one of {FUSIONS}.")
    upsampled = config.feature_size * 2 ** len(config.decoder_filters)
    if config.image_size % config.encoder_stride or upsampled != config.heatmap_size:
        raise ValueError(
            f"Config {config.name!r} is inconsistent: image_size {config.image_size} (a multiple of "
            f"the encoder stride {config.encoder_stride} is needed) gives "
            f"{config.feature_size}x{config.feature_size} features, which {len(config.decoder_filters)} "
            f"stride-2 decoder layers turn into {upsampled}x{upsampled} heatmaps, not "
            f"heatmap_size {config.heatmap_size}. Change image_size, encoder_filters or decoder_filters.")


# --------------------------------------------------------------------------- the model

def build_model(config: ModelConfig | str, num_views: int = 4, num_joints: int = 17,
                weights: str | None = None, with_heatmaps: bool = False) -> keras.Model:
    """The canonical-fusion model for ``num_views`` views.

    Inputs (dict, as ``data_loader`` yields): images uint8 (B, V, S, S, 3) RGB crops,
    P (B, V, 3, 4) crop projection matrices (crop px, canonical mm), K (B, V, 3, 3) crop
    intrinsics, dist (B, V, 6) [k1, k2, k3, p1, p2, tangential_factor] (geometry.Camera.dist),
    view_mask (B, V) 1 for the views the model may see: the fusion and the DLT use only those
    (every view still gets its 2D joints, decoded from the fused code).
    Outputs (dict): kp2d (B, V, J, 2) crop pixels (distorted, like the image), kp3d (B, J, 3)
    canonical mm (undistort + DLT of kp2d), and with ``with_heatmaps`` also heatmaps (B, V, H, W, J),
    the softmax maps (for analysis: Keras' compiled metrics need a target for every output, and
    the data has none for them; both variants hold the same weights).
    weights: None (random init), "imagenet" or a local weights file for the ResNet backbones.
    """
    if isinstance(config, str):
        config = get_config(config)
    _check_build_arguments(config, num_views, num_joints)
    size, points = config.image_size, config.latent_points
    inputs = {
        "images": keras.Input((num_views, size, size, 3), dtype="uint8", name="images"),
        "P": keras.Input((num_views, 3, 4), name="P"),
        "K": keras.Input((num_views, 3, 3), name="K"),
        "dist": keras.Input((num_views, geometry.DIST_SIZE), name="dist"),
        "view_mask": keras.Input((num_views,), name="view_mask"),
    }
    P_normalized = NormalizeProjection(size, config.world_unit_mm, dtype=GEOMETRY_DTYPE,
                                       name="normalize_P")(inputs["P"])

    x = FoldViews(name="fold_images")(inputs["images"])
    x = ImagePreprocessing(config.preprocessing, name="preprocess")(x)
    x = _encoder(config, weights)(x)
    x = layers.Conv2D(3 * points, 1, name="to_view_points")(x)
    x = UnfoldViews(num_views, name="unfold_features")(x)
    view_code = x
    x = ToCanonical(dtype=GEOMETRY_DTYPE, name="ftl_inverse")(x, P_normalized)
    x = FromCanonical(dtype=GEOMETRY_DTYPE, name="ftl")(_fusion(x, inputs["view_mask"], config, num_views),
                                                        P_normalized)
    if config.view_skip and config.fusion_layers:
        x = layers.Concatenate(name="view_skip")([x, ops.cast(view_code, x.dtype)])
    x = FoldViews(name="fold_features")(x)
    x = _conv_bn_relu(x, config.decoder_input_filters, 1, 1, "decoder_input")
    heatmaps, joints = SoftArgmax(size, config.softmax_beta, config.learn_softmax_beta,
                                  dtype=GEOMETRY_DTYPE, name="soft_argmax")(_decoder(x, config, num_joints))

    kp2d = UnfoldViews(num_views, dtype=GEOMETRY_DTYPE, name="kp2d")(joints)
    outputs = {
        "kp2d": kp2d,
        "kp3d": dlt_layer.UndistortTriangulate(dtype=GEOMETRY_DTYPE, name="kp3d")(
            kp2d, inputs["P"], inputs["K"], inputs["dist"], view_mask=inputs["view_mask"]),
    }
    if with_heatmaps:
        outputs["heatmaps"] = UnfoldViews(num_views, dtype=GEOMETRY_DTYPE, name="heatmaps")(heatmaps)
    return keras.Model(inputs, outputs, name=f"canonical_fusion_{config.name}")


def reestimate_batch_norm(network: keras.Model, batches) -> int:
    """Replace every BatchNormalization layer's moving mean and variance by the average of its
    batch statistics over ``batches`` (an iterable of input dicts); the weights stay as they are.

    Keras' moving averages (momentum 0.99) lag the weights by about 100 steps, so a short run is
    tested with statistics of earlier weights; this measures the architecture instead. The average
    is cumulative (momentum (k - 1) / k for the k-th batch), run eagerly so each call reads the
    momentum. Returns the number of batches used.
    """
    norms = [layer for layer in _all_layers(network) if isinstance(layer, layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    count = 0
    try:
        for count, batch in enumerate(batches, start=1):
            for layer in norms:
                layer.momentum = (count - 1) / count
            network(batch, training=True)
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum
    return count


def _all_layers(network: keras.Model) -> list:
    """Every layer of ``network``, nested models (the encoder) included."""
    found = []
    for layer in network.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += _all_layers(layer)
    return found
