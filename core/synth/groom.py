"""Procedural grooms on Tressel's scalp: seeded styles from buzz cuts to long coily hair.

A groom is grown in world space, all strands at once (numpy, one loop over the 255 segments):
roots on the scalp, an initial direction from the combing field (crown whorl, parting, bangs)
lifted off the scalp by the style's volume, gravity bending each segment downwards, and a
push out of the head's ellipsoids after every step so strands drape over the head instead of
passing through it. Clumping pulls strands towards guide strands, curls are added around each
strand's centreline (planar waves, helices for curly and coily hair), frizz is a smoothed random
walk, and a last collision pass keeps curls out of the head.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from tressel.synth.head import BROW_Y, UV_HI, UV_LO, push_out_of_head, scalp_points

POINTS_PER_STRAND = 256
CURL_TYPES = ("straight", "wavy", "curly", "coily")
# Curl radius and period (metres) of the synthetic styles: ((radius lo, hi), (period lo, hi)).
CURL_RANGES = {"wavy": ((0.004, 0.012), (0.035, 0.08)),
               "curly": ((0.006, 0.013), (0.018, 0.035)),
               "coily": ((0.0025, 0.005), (0.006, 0.011))}
PARTINGS = ("none", "center", "left", "right")
LENGTH_CLASSES = ("buzz", "short", "medium", "long")
_LENGTH_RANGES = {"buzz": (0.004, 0.015), "short": (0.03, 0.09), "medium": (0.10, 0.22),
                  "long": (0.24, 0.48)}


@dataclass
class GroomStyle:
    """Everything that decides a groom's look; stored in each groom's meta.json."""

    length_class: str
    length: float  # metres, arc length of a typical strand
    curl_type: str
    curl_radius: float  # metres (0 for straight)
    curl_period: float  # metres along the strand
    parting: str
    part_offset: float  # disk units towards +X for left/right partings
    bangs: bool
    volume: float  # 0 flat .. 1 big
    gravity: float  # 0 weightless .. 1 heavy
    clumping: float  # 0 .. 1
    frizz: float  # 0 .. 1
    density: float  # fraction of scalp texels with hair
    hairline_recession: float  # 0 full hairline .. 1 strongly receding front
    melanin: float  # 0 blonde .. 1 black
    redness: float  # 0 .. 1
    root_darkness_start: float
    root_darkness_end: float
    root_darkness_strength: float

    def material_raw(self) -> list[float]:
        """The 11 rgb2material channels (SPEC §11) this style implies; unused ones are 0."""
        raw = [0.0] * 11
        raw[3], raw[4] = self.melanin, self.redness
        raw[8], raw[9], raw[10] = (self.root_darkness_start, self.root_darkness_end,
                                   self.root_darkness_strength)
        return raw

    def to_dict(self) -> dict:
        return asdict(self)


def sample_style(rng: np.random.Generator) -> GroomStyle:
    """Draw a style; the mix is balanced so that every length and curl type is common."""
    length_class = LENGTH_CLASSES[rng.choice(4, p=[0.12, 0.26, 0.30, 0.32])]
    lo, hi = _LENGTH_RANGES[length_class]
    length = float(rng.uniform(lo, hi))
    curl_p = [0.4, 0.25, 0.2, 0.15] if length_class != "buzz" else [1.0, 0, 0, 0]
    curl_type = CURL_TYPES[rng.choice(4, p=curl_p)]
    if curl_type in CURL_RANGES:
        (r_lo, r_hi), (p_lo, p_hi) = CURL_RANGES[curl_type]
        radius, period = rng.uniform(r_lo, r_hi), rng.uniform(p_lo, p_hi)
    else:
        radius, period = 0.0, 0.05
    coily = curl_type == "coily"
    parting = PARTINGS[rng.choice(4, p=[0.35, 0.25, 0.2, 0.2])]
    part_offset = {"none": 0.0, "center": 0.0, "left": 1.0, "right": -1.0}[parting]
    part_offset *= float(rng.uniform(0.2, 0.45))
    melanin = float(rng.beta(1.6, 1.2))
    return GroomStyle(
        length_class=length_class, length=length, curl_type=curl_type,
        curl_radius=float(radius), curl_period=float(period), parting=parting,
        part_offset=part_offset,
        bangs=bool(length > 0.07 and rng.random() < 0.35),
        volume=float(rng.uniform(0.55, 1.0) if coily else rng.uniform(0.0, 0.8)),
        gravity=float(rng.uniform(0.0, 0.2) if coily else rng.uniform(0.5, 1.0)),
        clumping=float(rng.uniform(0.0, 0.8)),
        frizz=float(rng.uniform(0.0, 0.6 if coily else 0.35)),
        density=float(rng.uniform(0.8, 1.0)),
        hairline_recession=float(rng.choice([0.0, rng.uniform(0.0, 0.5)], p=[0.7, 0.3])),
        melanin=melanin,
        redness=float(rng.beta(1.2, 3.0) if melanin < 0.6 else rng.beta(1.0, 6.0)),
        root_darkness_start=float(rng.uniform(0.0, 0.1)),
        root_darkness_end=float(rng.uniform(0.1, 0.4)),
        root_darkness_strength=float(rng.beta(1.0, 3.0)),
    )


@dataclass
class Groom:
    """A generated groom: world-space strands and their roots."""

    positions: np.ndarray  # [N,256,3] float32 metres
    root_uv: np.ndarray  # [N,2] float32 (s, t)
    style: GroomStyle
    seed: int


def hair_mask(root_uv: np.ndarray, style: GroomStyle) -> np.ndarray:
    """Where the scalp grows hair for this style: the hairline recedes at the front."""
    pts = scalp_points(root_uv)
    rho = np.linalg.norm(pts.disk, axis=1)
    front = np.clip(np.cos(pts.azimuth), 0, None) ** 2
    return rho < 1.0 - 0.28 * style.hairline_recession * front


def sample_roots(rng: np.random.Generator, count: int, style: GroomStyle) -> np.ndarray:
    """Jittered-grid roots in (s, t), thinned by density and the hairline."""
    side = max(2, math.ceil(math.sqrt(count / max(style.density, 1e-3))))
    grid = (np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="xy"), -1)
            .reshape(-1, 2).astype(np.float64))
    uv = UV_LO + (grid + rng.random(grid.shape)) / side * (UV_HI - UV_LO)
    keep = hair_mask(uv, style) & (rng.random(len(uv)) < style.density)
    uv = uv[keep]
    if len(uv) > count:
        uv = uv[rng.choice(len(uv), count, replace=False)]
    return uv


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _comb_directions(pts, style: GroomStyle, rng: np.random.Generator):
    """Initial tangent directions on the scalp and which roots are bangs."""
    normal = pts.normals
    # "Radial" = away from the crown along the surface (a crown whorl).
    crown = scalp_points(np.array([[0.5, 0.5]])).positions[0]
    radial = pts.positions - crown
    radial = _normalize(radial - (radial * normal).sum(1, keepdims=True) * normal)
    side = np.array([1.0, 0.0, 0.0])
    back = np.array([0.0, 0.0, -1.0])
    dx, dy = pts.disk[:, 0], pts.disk[:, 1]
    comb = radial.copy()
    front_zone = (dy > 0.15) & (np.abs(dx) < 0.75)
    bangs = np.zeros(len(dx), bool)
    if style.bangs:
        bangs = (dy > 0.35) & (np.abs(dx) < 0.6)
    if style.parting == "none":
        # Swept back: front and top hair goes over the crown.
        sweep = np.clip(dy + 0.2, 0, 1)[:, None]
        comb = _normalize(comb * (1 - sweep) + (back + 0.3 * np.array([0, 1.0, 0])) * sweep)
    else:
        away = np.sign(dx - style.part_offset)[:, None] * side
        weight = np.where(front_zone | (dy > -0.3), 0.8, 0.3)[:, None]
        comb = _normalize(comb * (1 - weight) + away * weight + 0.1 * back)
    # Without bangs, hair at the front hairline is lifted up and back, off the face.
    off_face = np.clip(dy - 0.3, 0, 1)[:, None] * (~bangs)[:, None]
    comb = _normalize(comb + off_face * (2.0 * back + 1.0 * np.array([0, 1.0, 0])))
    if style.bangs:
        forward = np.array([0.0, -0.4, 1.0])
        comb[bangs] = _normalize(radial[bangs] * 0.5 + forward)
    # Keep the comb tangent to the scalp, with a little per-strand jitter.
    comb = comb + rng.normal(0, 0.12, comb.shape)
    comb = _normalize(comb - (comb * normal).sum(1, keepdims=True) * normal)
    return comb, bangs


def _parallel_frames(tangents: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Transport a normal vector `first` [N,3] along tangents [N,V,3] (projection scheme)."""
    frames = np.empty_like(tangents)
    u = _normalize(first - (first * tangents[:, 0]).sum(-1, keepdims=True) * tangents[:, 0])
    for i in range(tangents.shape[1]):
        t = tangents[:, i]
        u = _normalize(u - (u * t).sum(-1, keepdims=True) * t)
        frames[:, i] = u
    return frames


def _tangents(points: np.ndarray) -> np.ndarray:
    tangents = np.empty_like(points)
    tangents[:, 1:-1] = points[:, 2:] - points[:, :-2]
    tangents[:, 0] = points[:, 1] - points[:, 0]
    tangents[:, -1] = points[:, -1] - points[:, -2]
    return _normalize(tangents)


def curl_offsets(centre: np.ndarray, root_normals: np.ndarray, centre_len: np.ndarray,
                 radius: np.ndarray, period: float | np.ndarray, phase: np.ndarray,
                 helix: bool) -> np.ndarray:
    """Offsets [N,V,3] that curl centrelines [N,V,3] around themselves: a planar wave
    (`helix` False) or a helix of `radius` [N] metres and `period` metres along the
    centreline, starting at `phase` [N] radians and fading in over the first 1.5 cm so roots
    stay put. Used to grow curly grooms, and to curl decoded centrelines again."""
    v = centre.shape[1]
    tangents = _tangents(centre)
    side_dir = np.cross(tangents[:, 0], root_normals)
    u = _parallel_frames(tangents, side_dir + 1e-3 * root_normals)
    w = np.cross(tangents, u)
    arc = np.linspace(0, 1, v)[None, :] * np.asarray(centre_len)[:, None]
    period = np.asarray(period, np.float64)
    angle = 2 * math.pi * arc / (period[:, None] if period.ndim else period) + phase[:, None]
    ramp = np.clip(arc / 0.015, 0, 1)[..., None]
    offset = np.asarray(radius)[:, None, None] * ramp * (
        np.cos(angle)[..., None] * u + float(helix) * np.sin(angle)[..., None] * w)
    return offset - offset[:, :1]


def recurl(strands: np.ndarray, root_normals: np.ndarray, curl_type: str, radius: float,
           period: float, rng: np.random.Generator) -> np.ndarray:
    """Curl strands [N,V,3] that came back straight from a strand codec, the way grooms are
    grown: a codec that cannot represent curls decodes each curly strand as its centreline, so
    adding the style's wave or helix around it restores the curl and its length. Radius
    varies per strand like in `grow_groom`, with a random phase; straight hair is unchanged."""
    if curl_type not in CURL_TYPES:
        raise ValueError(f"unknown curl type {curl_type!r} (known: {', '.join(CURL_TYPES)})")
    if curl_type == "straight" or radius <= 0 or len(strands) == 0:
        return strands
    centre = np.asarray(strands, np.float64)
    n = len(centre)
    centre_len = np.linalg.norm(np.diff(centre, axis=1), axis=-1).sum(1)
    per_strand = radius * np.exp(rng.normal(0, 0.15, n))
    offsets = curl_offsets(centre, np.asarray(root_normals, np.float64), centre_len, per_strand,
                           max(float(period), 1e-3), rng.uniform(0, 2 * math.pi, n),
                           helix=curl_type != "wavy")
    return (centre + offsets).astype(strands.dtype)


def clear_face(points: np.ndarray, bangs: np.ndarray | None = None) -> np.ndarray:
    """Move points that hang in front of the face (below the brows) out to its sides.

    Long hair in photographs frames the face instead of covering it; without this, strands
    rooted near the front hairline fall straight down over the eyes. Bangs are left alone.
    """
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    inside = (z > 0.0) & (y < BROW_Y + 0.005) & (y > 0.17) & (np.abs(x) < FACE_HALF_WIDTH)
    if bangs is not None:
        inside &= ~bangs.reshape(bangs.shape + (1,) * (inside.ndim - 1))
    out = points.copy()
    side = np.where(x >= 0, 1.0, -1.0)
    out[..., 0] = np.where(inside, side * FACE_HALF_WIDTH, x)
    return out


FACE_HALF_WIDTH = 0.074


def grow_groom(style: GroomStyle, num_strands: int, seed: int,
               frame_face: bool = False) -> Groom:
    """Grow one groom of about `num_strands` strands for `style`, reproducibly from `seed`.

    `frame_face` keeps strands out of the face (see `clear_face`); the first demo's data was
    grown without it."""
    rng = np.random.default_rng(seed)
    root_uv = sample_roots(rng, num_strands, style)
    pts = scalp_points(root_uv)
    n = len(root_uv)
    v = POINTS_PER_STRAND
    comb, bangs = _comb_directions(pts, style, rng)

    # Arc length per strand; curls shrink the centreline so the strand keeps its length.
    length = style.length * np.exp(rng.normal(0, 0.08, n))
    if style.bangs:
        drop = np.clip(pts.positions[:, 1] - BROW_Y, 0.01, None)
        length = np.where(bangs, np.minimum(length, drop * 1.25 + 0.01), length)
    # A shorter nape and sides for short styles looks like a cut, not a wig.
    if style.length_class == "short":
        length *= 1.0 - 0.35 * np.clip(-pts.disk[:, 1], 0, 1)
    period = max(style.curl_period, 1e-3)
    shrink = period / math.hypot(period, 2 * math.pi * style.curl_radius)
    centre_len = length * shrink
    seg = centre_len / (v - 1)

    lift = 0.1 + 0.9 * style.volume + 0.8 * (style.curl_type == "coily")
    direction = _normalize(comb + lift * pts.normals)
    # Gravity as a turning rate per metre; buzz cuts are stiff enough to ignore it.
    turn_rate = (8.0 + 40.0 * style.gravity) * (style.length > 0.02)
    # Layering: each strand rests at its own height above the scalp, so hair has thickness.
    rest = 0.0015 + rng.random(n) * (0.004 + 0.02 * style.volume) * min(1.0, style.length / 0.1)
    gravity = np.array([0.0, -1.0, 0.0])

    centre = np.empty((n, v, 3))
    centre[:, 0] = pts.positions
    p = pts.positions.copy()
    travelled = np.zeros(n)
    for i in range(1, v):
        stiff = np.clip(travelled / 0.02, 0.15, 1.0)[:, None]
        direction = _normalize(direction + (turn_rate * seg * stiff.ravel())[:, None] * gravity)
        step = p + seg[:, None] * direction
        travelled += seg
        margin = np.minimum(rest, travelled * 0.6)
        step = push_out_of_head(step, margin)
        if frame_face:
            step = clear_face(step, bangs)
        direction = _normalize(step - p)
        p = step
        centre[:, i] = p

    # Clumping: pull towards guide strands, more towards the tips.
    clump_phase = rng.uniform(0, 2 * math.pi, n)
    if style.clumping > 0.02 and n > 8:
        num_clumps = max(4, int(n / rng.uniform(15, 60)))
        guides = rng.choice(n, num_clumps, replace=False)
        d2 = ((pts.positions[:, None, :] - pts.positions[None, guides, :]) ** 2).sum(-1)
        owner = guides[np.argmin(d2, axis=1)]
        s = np.linspace(0.0, 1.0, v)[None, :, None] ** 0.8
        pull = style.clumping * rng.uniform(0.6, 1.0, n)[:, None, None]
        centre = centre + pull * s * (centre[owner] - centre)
        clump_phase = np.where(rng.random(n) < style.clumping, clump_phase[owner], clump_phase)

    positions = centre
    if style.curl_type != "straight":
        radius = style.curl_radius * np.exp(rng.normal(0, 0.15, n))
        positions = centre + curl_offsets(centre, pts.normals, centre_len, radius, period,
                                          clump_phase, helix=style.curl_type != "wavy")

    if style.frizz > 0.01:
        walk = np.cumsum(rng.normal(0, 1, (n, v, 3)), axis=1) / math.sqrt(v)
        walk -= walk[:, :1]
        amp = style.frizz * 0.012 * (np.linspace(0, 1, v) ** 2)[None, :, None]
        positions = positions + amp * walk * min(1.0, style.length / 0.1)

    # Final pass: curls and frizz must not enter the head; roots stay on the scalp.
    travelled = np.linspace(0, 1, v)[None, :] * length[:, None]
    positions = push_out_of_head(positions, np.minimum(0.0008, travelled))
    if frame_face:
        positions = clear_face(positions, bangs)
    positions[:, 0] = pts.positions
    return Groom(positions.astype(np.float32), root_uv.astype(np.float32), style, seed)


def generate_groom(seed: int, num_strands: int = 8000) -> Groom:
    """A random style and its groom, both from one seed."""
    style = sample_style(np.random.default_rng([seed, 0]))
    return grow_groom(style, num_strands, seed)
