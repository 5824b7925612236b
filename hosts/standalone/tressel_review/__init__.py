"""Tressel's standalone review tool: queue photos, watch jobs run, compare grooms in 3D.

Shaped like usdview: Qt-free data models (`models` for the queue and job state, `drawing` for
turning a groom into GPU-ready buffers, `camera` for the orbit camera, `export`), a view
(`views`, `window`) and a controller (`controller`) that talks to the daemon only through
`tressel.hosting` on worker threads. `tressel review` puts this folder on `sys.path` and calls
`tressel_review.app.main`.
"""

__all__ = ["app", "camera", "controller", "drawing", "export", "models"]
