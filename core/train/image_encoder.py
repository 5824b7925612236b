"""Train the demo's image encoder: a small DINOv2-architecture ViT taught to read hair styles.

Pretrained DINOv2 weights cannot be fetched offline, so the demo trains its own encoder with
the same architecture (timm ViT with registers, `tressel.nn.image_encoder`) from scratch on
the synthetic renders: a linear probe on [CLS, mean patch token] predicts every style attribute
of the groom (length, curl type and size, parting, bangs, volume, gravity, clumping, frizz,
density, hair colour). Once trained the encoder is frozen; its CLS token and patch map condition
the diffusion model and rgb2material exactly as DINOv2's do in DiffLocks. Supervised attribute
prediction is what a few hundred renders can teach in minutes on a CPU; the features it yields
carry the information the groom depends on, which is what the diffusion model needs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tressel.nn.image_encoder import DinoV2Config, ImageEncoder
from tressel.train.common import OptimConfig, TrainState, sample_indices, train_loop
from tressel.train.data import CATEGORIES, CONTINUOUS, RenderSet

log = logging.getLogger(__name__)


class StyleProbe(nn.Module):
    """The encoder plus the linear heads used only during its training."""

    def __init__(self, config: DinoV2Config, cont_mean: np.ndarray, cont_std: np.ndarray):
        super().__init__()
        self.encoder = ImageEncoder(config)
        dim = 2 * config.embed_dim
        self.regress = nn.Linear(dim, len(CONTINUOUS))
        self.classify = nn.ModuleList(nn.Linear(dim, len(v)) for v in CATEGORIES.values())
        self.register_buffer("cont_mean", torch.as_tensor(cont_mean))
        self.register_buffer("cont_std", torch.as_tensor(cont_std))

    def features(self, image_uint8: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder.vit.forward_features(self.encoder.normalize(image_uint8))
        r = self.encoder.config.num_register_tokens
        return torch.cat([tokens[:, 0], tokens[:, 1 + r:].mean(1)], dim=-1)

    def forward(self, image_uint8: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = self.features(image_uint8)
        return self.regress(feats), [head(feats) for head in self.classify]



def probe_loss(pred: torch.Tensor, logits: list[torch.Tensor], targets: torch.Tensor,
               cats: torch.Tensor) -> dict[str, torch.Tensor]:
    """A style probe's loss: smooth L1 on the continuous attributes plus half the summed
    cross-entropy of the categorical ones."""
    regression = F.smooth_l1_loss(pred, targets)
    classification = sum(F.cross_entropy(lg, cats[:, i]) for i, lg in enumerate(logits))
    return {"loss": regression + 0.5 * classification, "regression": regression,
            "classification": classification}

def augment(images: torch.Tensor, generator: torch.Generator, zoom: tuple[float, float] = (
        0.85, 0.25), shift_range: float = 0.12) -> torch.Tensor:
    """Photometric jitter and a small random zoom/shift: real face crops vary in framing.

    The sampling grid's scale is `zoom[0] + zoom[1] * U(0, 1)` (below 1 zooms in)."""
    b, _, h, w = images.shape
    x = images.float()
    gain = 0.75 + 0.5 * torch.rand(b, 1, 1, 1, generator=generator)
    tint = 0.92 + 0.16 * torch.rand(b, 3, 1, 1, generator=generator)
    bias = 30 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    x = x * gain * tint + bias
    scale = zoom[0] + zoom[1] * torch.rand(b, generator=generator)
    shift = shift_range * (torch.rand(b, 2, generator=generator) - 0.5)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (b, 3, h, w), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return x.clamp(0, 255).round().to(torch.uint8)


def train_image_encoder(renders: RenderSet, config: DinoV2Config, optim: OptimConfig,
                        out_dir: Path, seed: int, resume: bool = False,
                        progress=None, cancel=None) -> tuple[ImageEncoder, dict]:
    """Train, return the frozen (EMA) encoder and its held-in accuracy numbers."""
    torch.manual_seed(seed)
    cont = renders.continuous
    mean, std = cont.mean(0), cont.std(0) + 1e-3
    probe = StyleProbe(config, mean, std)
    images = torch.from_numpy(renders.images).permute(0, 3, 1, 2).contiguous()
    targets = torch.from_numpy((cont - mean) / std)
    cats = torch.from_numpy(renders.categories)
    size = config.img_size

    def loss_fn(model: StyleProbe, step: int, generator: torch.Generator):
        idx = sample_indices(len(images), optim.batch_size, generator)
        batch = augment(images[idx], generator)
        if batch.shape[-1] != size:
            batch = F.interpolate(batch.float(), size=(size, size), mode="bilinear",
                                  antialias=True).round().clamp(0, 255).to(torch.uint8)
        return probe_loss(*model(batch), targets[idx], cats[idx])

    state: TrainState = train_loop("image-encoder", probe, loss_fn, optim, out_dir, seed,
                                   resume=resume, progress=progress, cancel=cancel)
    ema: StyleProbe = state.ema
    ema.eval()
    with torch.no_grad():
        correct = torch.zeros(len(CATEGORIES))
        errors = torch.zeros(len(CONTINUOUS))
        for start in range(0, len(images), 64):
            batch = images[start:start + 64]
            if batch.shape[-1] != size:
                batch = F.interpolate(batch.float(), size=(size, size), mode="bilinear",
                                      antialias=True).round().clamp(0, 255).to(torch.uint8)
            pred, logits = ema(batch)
            errors += (pred - targets[start:start + 64]).abs().sum(0)
            for i, lg in enumerate(logits):
                correct[i] += (lg.argmax(-1) == cats[start:start + 64, i]).sum()
    report = {"train_accuracy": {k: round(float(c) / len(images), 3)
                                 for k, c in zip(CATEGORIES, correct)},
              "train_mae_in_std": {k: round(float(e) / len(images), 3)
                                   for k, e in zip(CONTINUOUS, errors)},
              "seconds": round(state.seconds, 1)}
    return ema.encoder, report


@torch.no_grad()
def encode_renders(encoder: ImageEncoder, images: np.ndarray, batch_size: int = 32,
                   progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cls [N,D], patch_map [N,D,h,w]) as float16 for uint8 renders [N,H,W,3]."""
    size = encoder.config.img_size
    cls_all, patch_all = [], []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2)
        if batch.shape[-1] != size:
            batch = F.interpolate(batch.float(), size=(size, size), mode="bilinear",
                                  antialias=True).round().clamp(0, 255).to(torch.uint8)
        cls, patch_map = encoder.encode(batch.contiguous())
        cls_all.append(cls.half())
        patch_all.append(patch_map.half())
        if progress is not None:
            progress("features", min(start + batch_size, len(images)), len(images))
    return torch.cat(cls_all), torch.cat(patch_all)


# --------------------------------------------------------------------------------------------
# the pretrained CNN encoder (tressel.nn.cnn_encoder): frozen backbone, projection taught here


class ProjectionProbe(nn.Module):
    """The encoder's projection plus linear attribute heads, on cached backbone features."""

    def __init__(self, encoder, cont_mean: np.ndarray, cont_std: np.ndarray):
        super().__init__()
        import copy

        self.proj = copy.deepcopy(encoder.proj)
        self.cls_proj = copy.deepcopy(encoder.cls_proj)
        dim = 2 * encoder.config.embed_dim
        self.regress = nn.Linear(dim, len(CONTINUOUS))
        self.classify = nn.ModuleList(nn.Linear(dim, len(v)) for v in CATEGORIES.values())
        self.register_buffer("cont_mean", torch.as_tensor(cont_mean))
        self.register_buffer("cont_std", torch.as_tensor(cont_std))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        cls = self.cls_proj(features.mean((2, 3)))
        patch = self.proj(features).mean((2, 3))
        feats = torch.cat([cls, patch], dim=-1)
        return self.regress(feats), [head(feats) for head in self.classify]


@torch.no_grad()
def backbone_feature_bank(encoder, images: torch.Tensor, copies: int, seed: int,
                          batch_size: int = 32, progress=None) -> torch.Tensor:
    """Backbone maps [copies+1, N, C, h, w] (float16): the renders, then augmented copies."""
    generator = torch.Generator().manual_seed(seed)
    bank = []
    total = (copies + 1) * len(images)
    done = 0
    for copy_index in range(copies + 1):
        maps = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            if copy_index:
                # Zoomed in further than the ViT's augmentation: in real photos the DiffLocks
                # crop frames the head about a quarter larger than in Tressel's renders (the
                # synthetic face is narrow for its height).
                batch = augment(batch, generator, zoom=(0.72, 0.33), shift_range=0.16)
            maps.append(encoder.backbone_features(batch).half())
            done += len(batch)
            if progress is not None:
                progress("backbone", done, total)
        bank.append(torch.cat(maps))
    return torch.stack(bank)


def train_cnn_projection(renders: RenderSet, encoder, optim: OptimConfig, out_dir: Path,
                         seed: int, copies: int = 2, resume: bool = False, progress=None,
                         cancel=None):
    """Teach the projection of a frozen pretrained encoder to carry every style attribute.

    The backbone runs once per render and augmented copy (its weights never change); the
    projection and linear attribute heads then train on those cached maps, with dropout of
    whole feature channels so that no single ImageNet feature that happens to separate the
    renders carries an attribute alone.
    """
    torch.manual_seed(seed)
    cont = renders.continuous
    mean, std = cont.mean(0), cont.std(0) + 1e-3
    images = torch.from_numpy(renders.images).permute(0, 3, 1, 2).contiguous()
    bank = backbone_feature_bank(encoder, images, copies, seed, progress=progress)
    probe = ProjectionProbe(encoder, mean, std)
    targets = torch.from_numpy((cont - mean) / std)
    cats = torch.from_numpy(renders.categories)
    n = len(images)

    def loss_fn(model: ProjectionProbe, step: int, generator: torch.Generator):
        idx = sample_indices(n, optim.batch_size, generator)
        which = torch.randint(0, copies + 1, (len(idx),), generator=generator)
        feats = bank[which, idx].float()
        keep = (torch.rand(feats.shape[:2], generator=generator) > 0.2).float()[..., None, None]
        return probe_loss(*model(feats * keep / 0.8), targets[idx], cats[idx])

    state: TrainState = train_loop("image-encoder", probe, loss_fn, optim, out_dir, seed,
                                   resume=resume, progress=progress, cancel=cancel)
    ema: ProjectionProbe = state.ema
    ema.eval()
    with torch.no_grad():
        pred, logits = ema(bank[0].float())
        errors = (pred - targets).abs().mean(0)
        correct = [(lg.argmax(-1) == cats[:, i]).float().mean() for i, lg in enumerate(logits)]
    encoder.proj.load_state_dict(ema.proj.state_dict())
    encoder.cls_proj.load_state_dict(ema.cls_proj.state_dict())
    report = {"train_accuracy": {k: round(float(c), 3) for k, c in zip(CATEGORIES, correct)},
              "train_mae_in_std": {k: round(float(e), 3) for k, e in zip(CONTINUOUS, errors)},
              "seconds": round(state.seconds, 1)}
    return encoder.eval(), report, bank


@torch.no_grad()
def project_bank(encoder, bank: torch.Tensor, batch_size: int = 64
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cls [K,N,D], patch [K,N,D,h,w]) float16: the encoder's output for every cached map."""
    cls_all, patch_all = [], []
    for maps in bank:
        cls_k, patch_k = [], []
        for start in range(0, len(maps), batch_size):
            cls, patch = encoder.project(maps[start:start + batch_size].float())
            cls_k.append(cls.half())
            patch_k.append(patch.half())
        cls_all.append(torch.cat(cls_k))
        patch_all.append(torch.cat(patch_k))
    return torch.stack(cls_all), torch.stack(patch_all)


def style_head_state(checkpoint: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(spec, `style_head.*` weights) of a CNN projection's attribute heads, from the EMA
    weights of its training checkpoint: what `tressel.nn.cnn_encoder.StyleHead` loads."""
    from tressel.errors import ConfigError

    if not Path(checkpoint).is_file():
        raise ConfigError(f"{checkpoint} is missing: the style head comes from the image "
                          "encoder's training checkpoint; run `tressel train image-encoder`")
    ema = torch.load(checkpoint, map_location="cpu", weights_only=False)["ema"]
    keep = ("regress.", "classify.", "cont_mean", "cont_std")
    state = {f"style_head.{k}": v.float().contiguous() for k, v in ema.items()
             if k.startswith(keep)}
    spec = {"continuous": list(CONTINUOUS),
            "categories": {k: list(v) for k, v in CATEGORIES.items()}}
    return spec, state
