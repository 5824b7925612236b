"""Safe reading of foreign `.pt`/`.pth`/`.bin`/`.safetensors` checkpoints, with key/shape checks.

Only `torch.load(weights_only=True)` is used: a checkpoint that needs any Python class beyond
tensors and plain containers is refused, never executed. Every error names the file and says
what is wrong in it.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tressel.errors import BundleError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Shapes = dict[str, tuple[int, ...]]


def load_checkpoint(path: Path, what: str) -> Any:
    """The object stored in `path`, read without executing pickled code.

    `.safetensors` files are read with safetensors; everything else with
    `torch.load(weights_only=True)`, memory-mapped when the file is a zip archive (the
    format `torch.save` writes), so that optimizer state in a training checkpoint costs no RAM.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{what}: {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise BundleError(f"{what}: {path.name} is not a readable safetensors file "
                              f"({exc})") from None
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, ...
        raise BundleError(f"{what}: {path.name} {_explain_load_error(exc)}") from None


def _explain_load_error(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"is not a plain state dict: it holds a pickled Python object of type "
                f"{found.group(1)}, and Tressel only reads tensors and plain containers "
                "(torch.load weights_only=True) so that no code inside a checkpoint can run. "
                "Use the file from the DiffLocks release unchanged, or re-save it as "
                "torch.save(model.state_dict(), path) on a machine where you trust it")
    if "Weights only load failed" in text:
        first = text.split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        return (f"cannot be read as plain tensors (weights_only=True): {first}. "
                "It is probably not a PyTorch checkpoint, or it contains pickled code")
    return f"is not a readable PyTorch checkpoint ({type(exc).__name__}: {text[:200]})"


def plain_state_dict(obj: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """`obj` as a `{str: Tensor}` dict, or a BundleError saying why it is not one."""
    import torch

    if not isinstance(obj, Mapping):
        raise BundleError(f"{what}: {Path(path).name} holds a {type(obj).__name__}, "
                          "not a state dict (a mapping of parameter names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        key = bad[0]
        raise BundleError(f"{what}: {Path(path).name} is not a plain state dict: entry {key!r} "
                          f"is a {type(obj[key]).__name__}, not a tensor")
    return dict(obj)


@dataclass
class ShapeMismatch:
    """How a state dict differs from the keys and shapes a model expects (empty: it loads)."""

    missing: list[str]  # expected keys the state dict lacks, in the model's order
    unexpected: list[str]  # state dict keys the model does not have, in the file's order
    wrong: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (key, shape found, expected)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong)


def compare_shapes(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]
) -> ShapeMismatch:
    """The missing, unexpected and mis-shaped keys of `state_dict` against `expected`."""
    return ShapeMismatch(
        missing=[k for k in expected if k not in state_dict],
        unexpected=[k for k in state_dict if k not in expected],
        wrong=[(k, tuple(state_dict[k].shape), tuple(expected[k]))
               for k in expected
               if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k])],
    )


def check_shapes(
    state_dict: Mapping[str, torch.Tensor], expected: Shapes, path: Path, what: str
) -> None:
    """Require exactly the expected keys, each with the expected shape and a float dtype."""
    name = Path(path).name
    mismatch = compare_shapes(state_dict, expected)
    problems = []
    if mismatch.missing:
        problems.append(f"{len(mismatch.missing)} missing key(s): {_few(mismatch.missing)}")
    if mismatch.unexpected:
        problems.append(f"{len(mismatch.unexpected)} unexpected key(s): "
                        f"{_few(mismatch.unexpected)}")
    for key, got, want in mismatch.wrong[:5]:
        problems.append(f"key {key!r} has shape {list(got)}, expected {list(want)}")
    if len(mismatch.wrong) > 5:
        problems.append(f"... and {len(mismatch.wrong) - 5} more shape mismatches")
    not_float = [k for k, v in state_dict.items() if k in expected and not v.is_floating_point()]
    if not_float:
        problems.append(f"non-float tensor(s): {_few(not_float)}")
    if problems:
        raise BundleError(f"{what}: {name} does not match the DiffLocks model: "
                          + "; ".join(problems)
                          + ". Check that this is the file from the official release")


def _few(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def module_shapes(module: torch.nn.Module) -> Shapes:
    """Key → shape of a module's state dict (build it on the meta device: no memory, no time)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}
