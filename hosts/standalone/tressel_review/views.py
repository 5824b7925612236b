"""The 3D groom views: an OpenGL view (one draw call over GPU buffers) and a QPainter fallback.

`GroomViewport` holds one of them and swaps to the painter when OpenGL cannot start (the
`offscreen` Qt platform, a context that will not create, shaders that do not compile). Views
that show the same `CameraLink` move together (the compare and seed grids).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import shiboken6
from PySide6.QtCore import QLineF, QObject, QPointF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QMatrix4x4,
    QOffscreenSurface,
    QOpenGLContext,
    QPainter,
    QPen,
    QSurfaceFormat,
    QVector3D,
)
from PySide6.QtOpenGL import (
    QOpenGLBuffer,
    QOpenGLShader,
    QOpenGLShaderProgram,
    QOpenGLVertexArrayObject,
)
from PySide6.QtOpenGLWidgets import QOpenGLWidget
from PySide6.QtWidgets import QLabel, QStackedLayout, QWidget

from tressel_review.camera import OrbitCamera
from tressel_review.drawing import DrawBuffers, HeadMesh

log = logging.getLogger(__name__)

GL_FLOAT, GL_BYTE, GL_UNSIGNED_BYTE, GL_UNSIGNED_INT = 0x1406, 0x1400, 0x1401, 0x1405
GL_LINES, GL_TRIANGLES = 0x0001, 0x0004
GL_COLOR_BUFFER_BIT, GL_DEPTH_BUFFER_BIT, GL_DEPTH_TEST = 0x4000, 0x0100, 0x0B71
GL_RENDERER, GL_VERSION = 0x1F01, 0x1F02
BACKGROUND = (0.114, 0.118, 0.125)  # the dark theme's viewport grey
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swiftshader", "software", "gdi generic", "swr")
# Segments a software rasteriser draws per frame while the camera moves (the whole buffer is
# drawn once it stops); a GPU draws everything all the time.
SOFTWARE_INTERACTIVE_SEGMENTS = 50_000
# ...and at rest: a full 100,000-strand groom takes seconds per frame on llvmpipe, which would
# freeze the window on every repaint, so a software view rests on a large even subset too.
SOFTWARE_STILL_SEGMENTS = 400_000
PAINTER_SEGMENTS = 30_000  # the QPainter fallback draws at most this many

STRAND_VERTEX = """#version 330 core
layout(location = 0) in vec3 position;
layout(location = 1) in vec4 tangent;
layout(location = 2) in vec4 colour;
uniform mat4 view_projection;
uniform vec3 light;
uniform int shading;  // 0: direction, 1: predicted hair colour
out vec3 v_colour;
void main() {
    gl_Position = view_projection * vec4(position, 1.0);
    vec3 t = normalize(tangent.xyz + vec3(1e-6));
    // Kajiya-Kay: a hair is lit by the sine of the angle between its tangent and the light.
    float tl = dot(t, light);
    float diffuse = sqrt(max(1.0 - tl * tl, 0.0));
    // A headlight, brightened: dark hair must still read on the dark background.
    vec3 lit = colour.rgb * (0.7 + 0.9 * diffuse);
    v_colour = shading == 0 ? vec3(0.25) + 0.75 * abs(t) : lit;
}
"""
STRAND_FRAGMENT = """#version 330 core
in vec3 v_colour;
out vec4 frag;
void main() { frag = vec4(v_colour, 1.0); }
"""
HEAD_VERTEX = """#version 330 core
layout(location = 0) in vec3 position;
layout(location = 1) in vec3 normal;
uniform mat4 view_projection;
uniform vec3 light;
out float v_light;
void main() {
    gl_Position = view_projection * vec4(position, 1.0);
    v_light = 0.25 + 0.6 * abs(dot(normalize(normal), light));
}
"""
HEAD_FRAGMENT = """#version 330 core
in float v_light;
out vec4 frag;
void main() { frag = vec4(vec3(0.36, 0.33, 0.31) * v_light, 1.0); }
"""


class CameraLink(QObject):
    """One camera shown by several views: a change in any of them repaints all."""

    changed = Signal()

    def __init__(self, camera: OrbitCamera | None = None) -> None:
        super().__init__()
        self.camera = camera or OrbitCamera()

    def notify(self) -> None:
        self.changed.emit()


@dataclass
class ViewState:
    lod: str = "full"
    shading: str = "colour"
    show_head: bool = True


def opengl_available() -> bool:
    """Whether this Qt platform can make an OpenGL 3.3 context (False under `offscreen`)."""
    if os.environ.get("TRESSEL_REVIEW_GL", "1") == "0":
        return False
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        return False
    context = QOpenGLContext()
    context.setFormat(surface_format())
    if not context.create():
        return False
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    ok = context.makeCurrent(surface)
    if ok:
        context.doneCurrent()
    return ok and context.format().majorVersion() >= 3


def surface_format() -> QSurfaceFormat:
    fmt = QSurfaceFormat()
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(24)
    fmt.setSamples(0)  # hair lines stay crisp; multisampling costs a software rasteriser dearly
    return fmt


class _Interaction:
    """Mouse handling shared by both views: orbit (left), pan (middle, Shift+left), zoom
    (right drag, wheel); each change goes through the CameraLink. It comes first among a
    view's bases, so its event handlers override the Qt widget's."""

    link: CameraLink

    def mousePressEvent(self, event) -> None:
        self._last = event.position()
        self._button = event.button()
        self._shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self.set_interacting(True)

    def mouseMoveEvent(self, event) -> None:
        if getattr(self, "_last", None) is None:
            return
        pos = event.position()
        dx, dy = pos.x() - self._last.x(), pos.y() - self._last.y()
        self._last = pos
        camera = self.link.camera
        if self._button == Qt.MouseButton.MiddleButton or (
                self._button == Qt.MouseButton.LeftButton and self._shift):
            camera.pan(dx, dy, self.height())
        elif self._button == Qt.MouseButton.RightButton:
            camera.zoom(1.0 + 0.01 * (dx - dy))
        else:
            camera.orbit(dx, dy)
        self.link.notify()

    def mouseReleaseEvent(self, event) -> None:
        self._last = None
        self.set_interacting(False)

    def wheelEvent(self, event) -> None:
        self.link.camera.zoom(1.0015 ** event.angleDelta().y())
        self.link.notify()

    def set_interacting(self, interacting: bool) -> None:
        raise NotImplementedError


class GLGroomView(_Interaction, QOpenGLWidget):
    """All strands in one glDrawElements(GL_LINES) call over a vertex and an index buffer."""

    gl_failed = Signal(str)

    def __init__(self, link: CameraLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFormat(surface_format())
        self.link = link
        self.state = ViewState()
        self.buffers: DrawBuffers | None = None
        self.head: HeadMesh | None = None
        self._pending_upload = False
        self._ready = False
        self._interacting = False
        self.renderer = ""
        self.software = False
        self.index_count_drawn = 0
        self.setMinimumSize(160, 160)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        link.changed.connect(self.update)

    # -- data -------------------------------------------------------------------------------

    def set_groom(self, buffers: DrawBuffers | None, head: HeadMesh | None) -> None:
        self.buffers, self.head = buffers, head
        self._pending_upload = True
        self.update()

    def set_state(self, state: ViewState) -> None:
        self.state = state
        self.update()

    def set_interacting(self, interacting: bool) -> None:
        self._interacting = interacting
        self.update()

    def segment_budget(self) -> int | None:
        """Segments drawn per frame: all on a GPU; an even subset on a software rasteriser."""
        if not self.software:
            return None
        return SOFTWARE_INTERACTIVE_SEGMENTS if self._interacting else SOFTWARE_STILL_SEGMENTS

    # -- GL ---------------------------------------------------------------------------------

    def initializeGL(self) -> None:
        context = self.context()
        self.gl = context.functions()
        self.renderer = str(self.gl.glGetString(GL_RENDERER) or "")
        self.software = any(name in self.renderer.lower() for name in SOFTWARE_RENDERERS)
        log.info("OpenGL %s on %s", self.gl.glGetString(GL_VERSION), self.renderer)
        try:
            self.strand_program = self._program(STRAND_VERTEX, STRAND_FRAGMENT)
            self.head_program = self._program(HEAD_VERTEX, HEAD_FRAGMENT)
        except RuntimeError as exc:
            self.gl_failed.emit(str(exc))
            return
        self.strand_vao, self.head_vao = QOpenGLVertexArrayObject(), QOpenGLVertexArrayObject()
        self.strand_vao.create()
        self.head_vao.create()
        self.vbo = QOpenGLBuffer(QOpenGLBuffer.Type.VertexBuffer)
        self.ibo = QOpenGLBuffer(QOpenGLBuffer.Type.IndexBuffer)
        self.head_vbo = QOpenGLBuffer(QOpenGLBuffer.Type.VertexBuffer)
        self.head_ibo = QOpenGLBuffer(QOpenGLBuffer.Type.IndexBuffer)
        for buffer in (self.vbo, self.ibo, self.head_vbo, self.head_ibo):
            buffer.create()
            buffer.setUsagePattern(QOpenGLBuffer.UsagePattern.StaticDraw)
        self._ready = True
        self._pending_upload = True
        context.aboutToBeDestroyed.connect(self._release_gl)

    def _release_gl(self) -> None:
        # GL objects must be freed while their context is current, not whenever Python
        # collects the wrappers.
        self.makeCurrent()
        for buffer in (self.vbo, self.ibo, self.head_vbo, self.head_ibo):
            buffer.destroy()
        self.strand_vao.destroy()
        self.head_vao.destroy()
        self._ready = False
        self.doneCurrent()

    def _program(self, vertex: str, fragment: str) -> QOpenGLShaderProgram:
        program = QOpenGLShaderProgram(self)
        if not (program.addShaderFromSourceCode(QOpenGLShader.ShaderTypeBit.Vertex, vertex)
                and program.addShaderFromSourceCode(QOpenGLShader.ShaderTypeBit.Fragment,
                                                    fragment)
                and program.link()):
            raise RuntimeError(f"OpenGL shaders failed on {self.renderer}: {program.log()}")
        return program

    def _upload(self) -> None:
        self._pending_upload = False
        self.strand_count = 0
        self.head_count = 0
        if self.buffers is not None:
            vertices = np.ascontiguousarray(self.buffers.vertices)
            indices = np.ascontiguousarray(self.buffers.indices)
            self.strand_vao.bind()
            self.vbo.bind()
            self.vbo.allocate(vertices.tobytes(), vertices.nbytes)
            self.ibo.bind()  # recorded in the VAO
            self.ibo.allocate(indices.tobytes(), indices.nbytes)
            stride = vertices.dtype.itemsize
            program = self.strand_program
            for location in (0, 1, 2):
                program.enableAttributeArray(location)
            # Qt passes normalized=GL_TRUE: int8 tangents arrive in [-1, 1], uint8 colours in
            # [0, 1].
            program.setAttributeBuffer(0, GL_FLOAT, 0, 3, stride)
            program.setAttributeBuffer(1, GL_BYTE, 12, 4, stride)
            program.setAttributeBuffer(2, GL_UNSIGNED_BYTE, 16, 4, stride)
            self.strand_vao.release()
            self.strand_count = len(indices)
        if self.head is not None:
            interleaved = np.ascontiguousarray(
                np.concatenate([self.head.vertices, self.head.normals], axis=1), np.float32)
            faces = np.ascontiguousarray(self.head.faces, np.uint32)
            self.head_vao.bind()
            self.head_vbo.bind()
            self.head_vbo.allocate(interleaved.tobytes(), interleaved.nbytes)
            self.head_ibo.bind()
            self.head_ibo.allocate(faces.tobytes(), faces.nbytes)
            self.head_program.enableAttributeArray(0)
            self.head_program.enableAttributeArray(1)
            self.head_program.setAttributeBuffer(0, GL_FLOAT, 0, 3, 24)
            self.head_program.setAttributeBuffer(1, GL_FLOAT, 12, 3, 24)
            self.head_vao.release()
            self.head_count = faces.size

    def paintGL(self) -> None:
        gl = self.gl
        gl.glClearColor(*BACKGROUND, 1.0)
        gl.glClear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT)
        if not self._ready:
            return
        if self._pending_upload:
            self._upload()
        gl.glEnable(GL_DEPTH_TEST)
        camera = self.link.camera
        ratio = self.devicePixelRatioF()
        width, height = max(1, int(self.width() * ratio)), max(1, int(self.height() * ratio))
        matrix = QMatrix4x4(*camera.view_projection(width / height).astype(np.float32).ravel())
        eye = camera.eye() - np.asarray(camera.target)
        light = eye / max(float(np.linalg.norm(eye)), 1e-9)
        light_vector = QVector3D(*(float(v) for v in light))
        offset0 = shiboken6.VoidPtr(0)  # offset 0 into the bound index buffer
        if self.state.show_head and self.head_count:
            self.head_program.bind()
            self.head_program.setUniformValue("view_projection", matrix)
            self.head_program.setUniformValue("light", light_vector)
            self.head_vao.bind()
            gl.glDrawElements(GL_TRIANGLES, self.head_count, GL_UNSIGNED_INT, offset0)
            self.head_vao.release()
        self.index_count_drawn = 0
        if self.buffers is not None and self.strand_count:
            count = self.buffers.index_count(self.segment_budget())
            self.strand_program.bind()
            self.strand_program.setUniformValue("view_projection", matrix)
            self.strand_program.setUniformValue("light", light_vector)
            # setUniformValue would pick the float overload for a Python int: say int.
            self.strand_program.setUniformValue1i(
                self.strand_program.uniformLocation("shading"),
                0 if self.state.shading == "direction" else 1)
            self.strand_vao.bind()
            gl.glDrawElements(GL_LINES, count, GL_UNSIGNED_INT, offset0)  # the one draw call
            self.strand_vao.release()
            self.index_count_drawn = count


class PainterGroomView(_Interaction, QWidget):
    """Where OpenGL is unavailable: a decimated groom drawn with QPainter (slow, but shows it)."""

    def __init__(self, link: CameraLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.state = ViewState()
        self.buffers: DrawBuffers | None = None
        self.head: HeadMesh | None = None
        self.renderer = "QPainter (no OpenGL)"
        self.software = True
        self.setMinimumSize(160, 160)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        link.changed.connect(self.update)

    def set_groom(self, buffers: DrawBuffers | None, head: HeadMesh | None) -> None:
        self.buffers, self.head = buffers, head
        self.update()

    def set_state(self, state: ViewState) -> None:
        self.state = state
        self.update()

    def set_interacting(self, interacting: bool) -> None:
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor.fromRgbF(*BACKGROUND))
        camera = self.link.camera
        width, height = self.width(), self.height()
        if self.state.show_head and self.head is not None:
            pixels, front = camera.project(self.head.vertices, width, height)
            if front.all():
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QColor(82, 76, 72))
                centre = pixels.mean(axis=0)
                radius = float(np.percentile(np.linalg.norm(pixels - centre, axis=1), 98))
                painter.drawEllipse(QPointF(*centre), radius * 0.9, radius * 0.9)
        if self.buffers is not None:
            self._draw_strands(painter, width, height)
        painter.end()

    def _draw_strands(self, painter: QPainter, width: int, height: int) -> None:
        buffers = self.buffers
        count = buffers.index_count(PAINTER_SEGMENTS)
        pairs = buffers.indices[:count].reshape(-1, 2)
        # Project only the points drawn: a 100,000-strand groom has millions of others.
        used, local = np.unique(pairs, return_inverse=True)
        local = local.reshape(-1, 2)
        pixels, front = self.link.camera.project(buffers.positions()[used], width, height)
        keep = front[local[:, 0]] & front[local[:, 1]]
        pairs, local = pairs[keep], local[keep]
        colours = buffers.colours(self.state.shading)[pairs[:, 0]]
        # One pen per coarse colour: thousands of pens would make QPainter crawl.
        codes = (colours[:, 0] >> 4).astype(np.int32) << 8 | (colours[:, 1] >> 4) << 4 \
            | (colours[:, 2] >> 4)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        starts, ends = pixels[local[:, 0]], pixels[local[:, 1]]
        for code in np.unique(codes):
            chosen = np.nonzero(codes == code)[0]
            r, g, b = ((code >> 8) & 15) * 17, ((code >> 4) & 15) * 17, (code & 15) * 17
            painter.setPen(QPen(QColor(int(r), int(g), int(b)), 1))
            painter.drawLines([QLineF(*starts[i], *ends[i]) for i in chosen])


class GroomViewport(QWidget):
    """A groom view that is OpenGL where it can be and the painter fallback elsewhere."""

    def __init__(self, link: CameraLink | None = None, parent: QWidget | None = None,
                 use_gl: bool | None = None) -> None:
        super().__init__(parent)
        self.link = link or CameraLink()
        self._layout = QStackedLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.fallback_reason = ""
        if use_gl is None:
            use_gl = opengl_available()
        if use_gl:
            self.view: GLGroomView | PainterGroomView = GLGroomView(self.link, self)
            self.view.gl_failed.connect(self._to_painter)
        else:
            self.fallback_reason = "OpenGL is not available on this display"
            self.view = PainterGroomView(self.link, self)
        self._layout.addWidget(self.view)
        self._empty = QLabel("no groom", self)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._buffers: DrawBuffers | None = None
        self._head: HeadMesh | None = None

    @property
    def is_gl(self) -> bool:
        return isinstance(self.view, GLGroomView)

    def _to_painter(self, reason: str) -> None:
        log.warning("OpenGL view unavailable, drawing with QPainter: %s", reason)
        self.fallback_reason = reason
        old = self.view
        self.view = PainterGroomView(self.link, self)
        self.view.set_groom(self._buffers, self._head)
        self.view.set_state(old.state)
        self._layout.addWidget(self.view)
        self._layout.setCurrentWidget(self.view)
        old.deleteLater()

    def set_groom(self, buffers: DrawBuffers | None, head: HeadMesh | None,
                  frame: bool = True) -> None:
        self._buffers, self._head = buffers, head
        self.view.set_groom(buffers, head)
        self._empty.setVisible(buffers is None)
        if buffers is not None and frame:
            self.frame()

    def set_state(self, state: ViewState) -> None:
        self.view.set_state(state)

    def frame(self) -> None:
        if self._buffers is not None:
            self.link.camera.frame(self._buffers.bounds_min, self._buffers.bounds_max)
            self.link.notify()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._empty.setGeometry(self.rect())

    def grab_image(self):
        """The rendered frame as a QImage (the GL framebuffer, or the painter's widget)."""
        if isinstance(self.view, GLGroomView):
            return self.view.grabFramebuffer()
        return self.view.grab().toImage()
