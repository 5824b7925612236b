"""Exceptions that Tressel raises to users: each message says what went wrong and what to do."""

import re


class TresselError(Exception):
    """Base class for errors a user can act on; the CLI prints the message without a traceback."""


class ImageError(TresselError):
    """An input image cannot be used (missing, corrupt, unsupported, too large)."""


class FaceNotFoundError(TresselError):
    """No face was found where the DiffLocks crop needs one."""


class BundleError(TresselError):
    """A model bundle or a checkpoint to import is missing, incomplete or inconsistent."""


class ConfigError(TresselError):
    """A configuration (model, training, job) is invalid."""


class Cancelled(TresselError):
    """The job was cancelled between two steps; nothing partial was written."""


def usd_error_reason(exc: BaseException) -> str:
    """The first message of a multi-line `pxr.Tf.ErrorException`, without the C++ locations."""
    text = str(exc)
    if "No space left on device" in text:
        return "the disk is full (No space left on device)"
    messages = re.findall(r": '([^'\n]*)'\s*$", text, flags=re.MULTILINE)
    return messages[0] if messages else (text.strip().splitlines() or ["USD error"])[0]
