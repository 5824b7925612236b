"""Conformance handler for kind `dinov2` (vectors/README.md §4.8, SPEC §5)."""

from __future__ import annotations

import numpy as np
import torch
from tressel.conformance import Case, handler


@handler("dinov2")
def run_dinov2(case: Case) -> dict[str, np.ndarray]:
    """Build the ViT from the case config, load the Meta-layout weights strictly, run the image."""
    from tressel.nn.image_encoder import DinoV2Config, ImageEncoder

    config = DinoV2Config.from_dict(case.config)
    state_dict = case.state_dict()
    if state_dict is None:
        raise ValueError(f"case {case.name} has no weights")
    encoder = ImageEncoder(config)
    encoder.load_weights(state_dict, source=str(case.entry["weights"]))
    encoder.eval()
    image = torch.from_numpy(np.ascontiguousarray(case.input("image")))
    tokens = encoder.tokens(image)
    height, width = image.shape[-2:]
    # The debug array holds the hub's [cls, patches] embedding; timm keeps the cls part folded
    # into cls_token, so it is rebuilt from the stored one.
    patch_pos = encoder.interpolated_pos_embed(height, width)
    pos_embed_interp = torch.cat([state_dict["pos_embed"][:, :1], patch_pos], dim=1)
    out = {name: value.detach().cpu().numpy() for name, value in tokens.items()}
    out["pos_embed_interp"] = pos_embed_interp.detach().cpu().numpy()
    return out
