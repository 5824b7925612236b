"""A small numpy renderer for synthetic grooms: ray-cast head, z-buffered strands, hair shading.

The head's ellipsoids are intersected per pixel; strands are drawn as densely sampled points
into a z-buffer (nearest point per pixel wins, decided by one sort, so the result does not depend
on write order). Hair shading is Kajiya-Kay: a diffuse term and a specular highlight that both
depend on the strand tangent, so the image shows which way the hair runs. Hair colour comes
from melanin and redness through eumelanin/pheomelanin absorption, with root darkening.
The camera frames the head with the DiffLocks face-crop rule (SPEC §0), so a render looks like
what the pipeline's crop produces from a photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tressel.synth.head import HEAD_PARTS, LANDMARKS

# Absorption coefficients of eumelanin and pheomelanin per unit concentration (linear RGB),
# the usual values from the hair-rendering literature.
EUMELANIN_SIGMA = np.array([0.419, 0.697, 1.37])
PHEOMELANIN_SIGMA = np.array([0.187, 0.4, 1.05])


def hair_albedo(melanin: float, redness: float) -> np.ndarray:
    """Linear-RGB hair colour for a melanin amount and redness in [0, 1]."""
    concentration = 0.1 + 12.0 * melanin**1.5
    sigma = concentration * ((1 - redness) * EUMELANIN_SIGMA + redness * PHEOMELANIN_SIGMA)
    single = np.exp(-sigma * 1.2)
    # Multiple scattering desaturates real hair; a grey share stands in for it.
    return 0.85 * (0.8 * single + 0.2 * single.mean())


@dataclass
class Camera:
    """A pinhole camera on the +Z axis (after rotating the scene by `yaw` about Y)."""

    center: np.ndarray  # point the camera looks at
    frame_size: float  # metres visible across the image at the look-at depth
    distance: float = 1.2
    yaw_degrees: float = 0.0

    def rotate(self, points: np.ndarray) -> np.ndarray:
        a = math.radians(self.yaw_degrees)
        c, s = math.cos(a), math.sin(a)
        x, z = points[..., 0], points[..., 2]
        return np.stack([c * x + s * z, points[..., 1], -s * x + c * z], -1)


def crop_camera(yaw_degrees: float = 0.0, scale: float = 1.0,
                shift: tuple[float, float] = (0.0, 0.0)) -> Camera:
    """The camera that frames the head like the DiffLocks crop (size 2.8x the face box).

    `scale` and `shift` (fractions of the frame, x right, y up) jitter the framing the way a
    face detector's box varies between photos."""
    chin, forehead = np.array(LANDMARKS["chin"]), np.array(LANDMARKS["forehead"])
    left, right = np.array(LANDMARKS["cheek_l"]), np.array(LANDMARKS["cheek_r"])
    size = max(left[0] - right[0], forehead[1] - chin[1]) * 2.8 * scale
    center = np.array([size * shift[0], 0.4 * forehead[1] + 0.6 * chin[1] + size * shift[1],
                       0.0])
    return Camera(center=center, frame_size=float(size), yaw_degrees=yaw_degrees)


def _ray_dirs(camera: Camera, size: int) -> tuple[np.ndarray, np.ndarray]:
    half = camera.frame_size / 2
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    xs, ys = np.meshgrid(coords * half, -coords * half, indexing="xy")
    origin = camera.center + np.array([0.0, 0.0, camera.distance])
    target = np.stack([camera.center[0] + xs, camera.center[1] + ys, np.zeros_like(xs)], -1)
    dirs = target - origin
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return origin, dirs


def _render_head(camera: Camera, size: int, skin: np.ndarray, light: np.ndarray,
                 clothing: np.ndarray | None = None, ambient: float = 0.25,
                 light_color: np.ndarray | None = None):
    """Colour and depth (distance along the ray) of the head, in camera-rotated space."""
    origin, dirs = _ray_dirs(camera, size)
    depth = np.full((size, size), np.inf)
    color = np.zeros((size, size, 3))
    a = math.radians(camera.yaw_degrees)
    for part in HEAD_PARTS:
        # Rotating the scene by yaw equals rotating the ellipsoid centre; axes stay aligned
        # only for yaw 0 or 90, which is all the renders use (front and side).
        center = camera.rotate(np.asarray(part.center)[None])[0]
        axes = np.asarray(part.axes)
        if abs(math.sin(a)) > 0.5:
            axes = axes[[2, 1, 0]]
        o = (origin - center) / axes
        d = dirs / axes
        qa = (d * d).sum(-1)
        qb = 2 * (o * d).sum(-1)
        qc = (o * o).sum() - 1
        disc = qb * qb - 4 * qa * qc
        hit = disc > 0
        t = np.where(hit, (-qb - np.sqrt(np.where(hit, disc, 0))) / (2 * qa), np.inf)
        closer = hit & (t > 0) & (t < depth)
        if not closer.any():
            continue
        p = origin + dirs * t[..., None]
        normal = (np.where(closer[..., None], p, center + axes) - center) / axes**2
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        albedo = skin if part.color == (1.0, 1.0, 1.0) else np.asarray(part.color)
        if part.name == "shoulders" and clothing is not None:
            albedo = clothing
        lambert = np.clip((normal * light).sum(-1), 0, 1)
        if light_color is None:
            shade = albedo * (ambient + (1 - ambient) * lambert)[..., None]
        else:
            shade = albedo * (ambient + (1 - ambient) * lambert[..., None] * light_color)
        depth = np.where(closer, t, depth)
        color = np.where(closer[..., None], shade, color)
    return color, depth


def render_groom(positions: np.ndarray, melanin: float, redness: float,
                 root_darkness: tuple[float, float, float] = (0.0, 0.2, 0.0),
                 size: int = 256, yaw_degrees: float = 0.0, skin: tuple | None = None,
                 background: tuple | np.ndarray | None = None, supersample: int = 2,
                 lighting: dict | None = None, clothing: tuple | None = None,
                 frame: dict | None = None, strand_albedo: np.ndarray | None = None
                 ) -> np.ndarray:
    """Render strands [N,V,3] (metres) on the head; returns sRGB uint8 [size,size,3].

    The optional arguments vary the photograph: `background` is a colour or a linear-RGB image
    [size,size,3]; `lighting` {"direction", "color", "ambient"}; `clothing` the shoulders'
    colour; `frame` {"scale", "shift"} the framing jitter of `crop_camera`; `strand_albedo`
    [N,3] a linear-RGB colour per strand (grey and white hair mix white strands in).
    """
    frame = frame or {}
    camera = crop_camera(yaw_degrees, float(frame.get("scale", 1.0)),
                         tuple(frame.get("shift", (0.0, 0.0))))
    hi = size * supersample
    lighting = lighting or {}
    light = np.asarray(lighting.get("direction", (-0.35, 0.55, 0.75)), np.float64)
    light /= np.linalg.norm(light)
    light_color = lighting.get("color")
    light_color = None if light_color is None else np.asarray(light_color, np.float64)
    ambient = float(lighting.get("ambient", 0.25))
    skin_rgb = np.asarray(skin if skin is not None else (0.62, 0.42, 0.32))
    color, depth = _render_head(camera, hi, skin_rgb, light,
                                None if clothing is None else np.asarray(clothing), ambient,
                                light_color)
    bg = np.asarray(background if background is not None else (0.55, 0.58, 0.62), np.float64)
    if bg.ndim == 3:  # an image at the output size: repeat to the supersampled grid
        bg = np.repeat(np.repeat(bg, supersample, axis=0), supersample, axis=1)
    color = np.where(np.isinf(depth)[..., None], bg, color)

    pts = np.asarray(positions, np.float64)
    if pts.size:
        # Midpoints double the sampling so segments close up at this resolution.
        mids = 0.5 * (pts[:, 1:] + pts[:, :-1])
        tangent = pts[:, 1:] - pts[:, :-1]
        tangent /= np.maximum(np.linalg.norm(tangent, axis=-1, keepdims=True), 1e-12)
        along = np.linspace(0, 1, pts.shape[1] - 1)[None, :].repeat(len(pts), 0)
        samples = np.concatenate([pts[:, :-1], mids], 1).reshape(-1, 3)
        tangents = np.concatenate([tangent, tangent], 1).reshape(-1, 3)
        along = np.concatenate([along, along], 1).reshape(-1)
        strand_id = np.repeat(np.arange(len(pts)), 2 * (pts.shape[1] - 1))
        rotated = camera.rotate(samples)
        tangents = camera.rotate(tangents)
        origin = camera.center + np.array([0.0, 0.0, camera.distance])
        rel = rotated - origin
        dist = np.linalg.norm(rel, axis=-1)
        # Perspective projection onto the look-at plane.
        scale = camera.distance / np.maximum(-rel[:, 2], 1e-6)
        px = (rel[:, 0] * scale / camera.frame_size + 0.5) * hi
        py = (0.5 - rel[:, 1] * scale / camera.frame_size) * hi
        ix, iy = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
        ok = (ix >= 0) & (ix < hi) & (iy >= 0) & (iy < hi)
        ix, iy, dist, tangents, along = ix[ok], iy[ok], dist[ok], tangents[ok], along[ok]
        strand_id = strand_id[ok]
        pix = iy * hi + ix
        visible = dist < depth.reshape(-1)[pix]
        pix, dist, tangents, along = pix[visible], dist[visible], tangents[visible], along[visible]
        strand_id = strand_id[visible]
        order = np.lexsort((dist, pix))
        first = np.ones(len(order), bool)
        first[1:] = pix[order][1:] != pix[order][:-1]
        win = order[first]
        view = -_normalize_rows(rotated[ok][visible][win] - origin)
        shade = _kajiya_kay(tangents[win], light, view)
        if strand_albedo is None:
            albedo = hair_albedo(melanin, redness)[None]
        else:
            albedo = np.asarray(strand_albedo, np.float64)[strand_id[win]]
        start, end, strength = root_darkness
        ramp = np.clip((along[win] - start) / max(end - start, 1e-3), 0, 1)
        dark = 1 - strength * 0.8 * (1 - ramp)
        rgb = albedo * (shade[0] * dark)[:, None] + 0.12 * shade[1][:, None] * (
            0.6 + 0.4 * albedo)
        if light_color is not None:
            rgb = rgb * (ambient + (1 - ambient) * light_color[None])
        flat = color.reshape(-1, 3)
        flat[pix[win]] = rgb
        color = flat.reshape(hi, hi, 3)

    color = color.reshape(size, supersample, size, supersample, 3).mean((1, 3))
    srgb = np.where(color <= 0.0031308, 12.92 * color,
                    1.055 * np.power(np.clip(color, 0.0031308, None), 1 / 2.4) - 0.055)
    return (np.clip(srgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _normalize_rows(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _kajiya_kay(tangent: np.ndarray, light: np.ndarray, view: np.ndarray):
    """Diffuse and specular hair terms from the strand tangent."""
    t_dot_l = tangent @ light
    diffuse = 0.3 + 0.7 * np.sqrt(np.clip(1 - t_dot_l**2, 0, 1))
    half = _normalize_rows(light[None] + view)
    t_dot_h = (tangent * half).sum(-1)
    specular = np.sqrt(np.clip(1 - t_dot_h**2, 0, 1)) ** 60
    return diffuse, specular


def write_png(path, image: np.ndarray) -> None:
    """Write an sRGB uint8 image atomically through OpenImageIO."""
    import os
    import tempfile
    from pathlib import Path

    import OpenImageIO as oiio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    out = oiio.ImageOutput.create(tmp)
    spec = oiio.ImageSpec(image.shape[1], image.shape[0], image.shape[2], "uint8")
    if out is None or not out.open(tmp, spec) or not out.write_image(image):
        raise OSError(f"cannot write {path}: {oiio.geterror()}")
    out.close()
    os.replace(tmp, path)
