"""The orbit camera every groom view shares the maths of (and compare views share one of).

Turntable style, as in usdview and Maya: yaw around the world's Y axis, pitch up and down,
a distance to a target point; pan moves the target in the view plane. Matrices are numpy,
row-major; the GL view transposes them for upload, the painter fallback projects with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


@dataclass
class OrbitCamera:
    target: np.ndarray = field(default_factory=lambda: np.zeros(3))
    yaw: float = 0.0  # degrees; 0 looks at the face (along -Z from +Z)
    pitch: float = 10.0  # degrees above the horizon
    distance: float = 1.0
    fov_y: float = 30.0  # degrees
    revision: int = 0  # bumped on every change, so views sharing a camera know to repaint

    def eye(self) -> np.ndarray:
        yaw, pitch = math.radians(self.yaw), math.radians(self.pitch)
        offset = np.array([math.cos(pitch) * math.sin(yaw), math.sin(pitch),
                           math.cos(pitch) * math.cos(yaw)])
        return np.asarray(self.target, np.float64) + self.distance * offset

    def view_matrix(self) -> np.ndarray:
        eye = self.eye()
        forward = _normalize(np.asarray(self.target, np.float64) - eye)
        right = _normalize(np.cross(forward, [0.0, 1.0, 0.0]))
        up = np.cross(right, forward)
        view = np.eye(4)
        view[0, :3], view[1, :3], view[2, :3] = right, up, -forward
        view[:3, 3] = -view[:3, :3] @ eye
        return view

    def near_far(self) -> tuple[float, float]:
        return max(self.distance * 0.01, 1e-4), self.distance * 10.0 + 10.0

    def projection_matrix(self, aspect: float) -> np.ndarray:
        near, far = self.near_far()
        f = 1.0 / math.tan(math.radians(self.fov_y) / 2)
        proj = np.zeros((4, 4))
        proj[0, 0] = f / max(aspect, 1e-6)
        proj[1, 1] = f
        proj[2, 2] = (far + near) / (near - far)
        proj[2, 3] = 2 * far * near / (near - far)
        proj[3, 2] = -1.0
        return proj

    def view_projection(self, aspect: float) -> np.ndarray:
        return self.projection_matrix(aspect) @ self.view_matrix()

    def project(self, points: np.ndarray, width: int, height: int) -> tuple[np.ndarray,
                                                                            np.ndarray]:
        """Pixel coordinates [P, 2] (origin top-left) and a mask of points in front."""
        matrix = self.view_projection(width / max(height, 1))
        homogeneous = np.c_[np.asarray(points, np.float64), np.ones(len(points))] @ matrix.T
        w = homogeneous[:, 3]
        in_front = w > 1e-9
        ndc = homogeneous[:, :2] / np.where(in_front, w, 1.0)[:, None]
        pixels = np.empty_like(ndc)
        pixels[:, 0] = (ndc[:, 0] + 1) * 0.5 * width
        pixels[:, 1] = (1 - ndc[:, 1]) * 0.5 * height
        return pixels, in_front

    # -- interaction --------------------------------------------------------------------------

    def _changed(self) -> None:
        self.revision += 1

    def orbit(self, dx_pixels: float, dy_pixels: float) -> None:
        self.yaw = (self.yaw - 0.4 * dx_pixels) % 360.0
        self.pitch = float(np.clip(self.pitch + 0.4 * dy_pixels, -89.0, 89.0))
        self._changed()

    def pan(self, dx_pixels: float, dy_pixels: float, viewport_height: int) -> None:
        """Move the target so the scene follows the mouse in the view plane."""
        view = self.view_matrix()
        right, up = view[0, :3], view[1, :3]
        world_per_pixel = 2 * self.distance * math.tan(math.radians(self.fov_y) / 2) \
            / max(viewport_height, 1)
        self.target = np.asarray(self.target, np.float64) + world_per_pixel * (
            -dx_pixels * right + dy_pixels * up)
        self._changed()

    def zoom(self, factor: float) -> None:
        """factor > 1 moves closer."""
        self.distance = float(np.clip(self.distance / max(factor, 1e-3), 1e-3, 1e4))
        self._changed()

    def frame(self, bounds_min: np.ndarray, bounds_max: np.ndarray, margin: float = 1.15) -> None:
        """Look at the whole box: the target at its centre, far enough back to fit it."""
        lo, hi = np.asarray(bounds_min, np.float64), np.asarray(bounds_max, np.float64)
        self.target = (lo + hi) / 2
        radius = max(float(np.linalg.norm(hi - lo)) / 2, 1e-3)
        self.distance = margin * radius / math.sin(math.radians(self.fov_y) / 2)
        self._changed()

    def copy_from(self, other: OrbitCamera) -> None:
        self.target = np.array(other.target, np.float64)
        self.yaw, self.pitch, self.distance = other.yaw, other.pitch, other.distance
        self.fov_y = other.fov_y
        self._changed()
