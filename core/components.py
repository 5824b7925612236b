"""Build each network of a bundle (diffusion, strand codec, rgb2material, image encoder) from its config.

One place maps a bundle component name to its module class, so the importer (key/shape checks
on the meta device), `make_random_bundle` and the pipeline all build the same modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tressel.errors import BundleError

if TYPE_CHECKING:
    import torch
    from torch import nn

COMPONENTS = ("diffusion", "strand_codec", "rgb2material", "image_encoder")


def build_component(component: str, config: dict[str, Any]) -> nn.Module:
    """The module whose state dict has the official key names for `component`.

    For the image encoder this is the timm ViT itself (timm key layout); Meta-layout weights
    are checked with `image_encoder.meta_key_shapes` instead.
    """
    if component == "diffusion":
        from tressel.nn.hdit import HDiT, HDiTConfig

        return HDiT(HDiTConfig.from_dict(config))
    if component == "strand_codec":
        from tressel.nn.strand_codec import StrandCodec, StrandCodecConfig

        return StrandCodec(StrandCodecConfig.from_dict(config))
    if component == "rgb2material":
        from tressel.nn.rgb2material import RGB2Material, RGB2MaterialConfig

        return RGB2Material(RGB2MaterialConfig.from_dict(config))
    if component == "image_encoder":
        from tressel.nn.cnn_encoder import CNNEncoderConfig, CNNImageEncoder, is_cnn_config
        from tressel.nn.image_encoder import DinoV2Config, build_vit

        if is_cnn_config(config):
            return CNNImageEncoder(CNNEncoderConfig.from_dict(config))
        return build_vit(DinoV2Config.from_dict(config))
    raise KeyError(f"unknown bundle component {component!r}")


def build_on_meta(component: str, config: dict[str, Any]) -> nn.Module:
    """Build without allocating or initialising weights (for shape checks of 600M-parameter models)."""
    import torch

    with torch.device("meta"):
        return build_component(component, config)


def expected_shapes(
    component: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None
) -> dict[str, tuple[int, ...]]:
    """Key → shape that a checkpoint of `component` with `config` must have.

    The image encoder accepts two layouts: when `state_dict` is in the Meta/torch-hub layout,
    the Meta keys are expected, otherwise timm's.
    """
    if component == "image_encoder" and state_dict is not None and not config.get(
            "architecture"):
        from tressel.nn.image_encoder import DinoV2Config, is_meta_layout, meta_key_shapes

        if is_meta_layout(state_dict):
            return meta_key_shapes(DinoV2Config.from_dict(config))
    module = build_on_meta(component, config)
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def count_parameters(shapes: dict[str, tuple[int, ...]]) -> int:
    total = 0
    for shape in shapes.values():
        n = 1
        for d in shape:
            n *= int(d)
        total += n
    return total


def load_component(
    component: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
    device: torch.device | str = "cpu", what: str = "",
) -> nn.Module:
    """Build `component` and load `state_dict` strictly, in eval mode on `device`.

    The module is built for real (it is needed anyway) and checked against its own state
    dict: building on the meta device here would import torch's compiler stack (seconds).
    """
    from tressel.checkpoints import check_shapes, module_shapes

    what = what or component
    if component == "image_encoder":
        from tressel.nn.cnn_encoder import CNNEncoderConfig, CNNImageEncoder, is_cnn_config
        from tressel.nn.image_encoder import DinoV2Config, ImageEncoder

        if is_cnn_config(config):
            cnn = CNNImageEncoder(CNNEncoderConfig.from_dict(config))
            cnn.load_weights(state_dict, what)
            return cnn.eval().to(device)
        encoder = ImageEncoder(DinoV2Config.from_dict(config))
        encoder.load_weights(state_dict, what)  # checks Meta or timm keys and shapes itself
        return encoder.eval().to(device)
    module = build_component(component, config)
    check_shapes(state_dict, module_shapes(module), f"{component}.safetensors", what)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:  # check_shapes should have caught it; keep the message readable
        raise BundleError(f"{what}: {exc}") from None
    return module.eval().to(device)
