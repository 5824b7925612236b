"""Tressel: turn a photo of a person into a USD hair groom.

Importing `tressel` stays light (no torch, numpy or pxr): hosts import `tressel.client` inside
Maya or Houdini, and the CLI starts fast. Heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
