"""Conformance runner for the `difflocks-conformance/1` vector format.

`vectors/README.md` (beside SPEC.md) defines the format: a manifest of cases, each naming a kind,
an inline config, a safetensors state dict with the official key names, inputs and expected
outputs in `.npz` files, and tolerances. One handler per kind turns a `Case` into the produced
arrays; this module loads cases, runs handlers and applies the comparison rule.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "difflocks-conformance/1"

# Which module implements each kind. Modules register their handlers with `@handler(kind)`.
KIND_MODULES = {
    "strand_decoder": "tressel.conformance.strands",
    "strand_encoder": "tressel.conformance.strands",
    "placement": "tressel.conformance.strands",
    "postprocess": "tressel.conformance.strands",
    "rgb2material": "tressel.conformance.strands",
    "denoiser": "tressel.conformance.diffusion",
    "sampler": "tressel.conformance.diffusion",
    "dinov2": "tressel.conformance.dinov2",
}

Handler = Callable[["Case"], dict[str, np.ndarray]]
_HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs cases of `kind`."""

    def register(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn

    return register


def get_handler(kind: str) -> Handler:
    if kind not in _HANDLERS:
        module = KIND_MODULES.get(kind)
        if module is None:
            raise KeyError(f"unknown conformance kind {kind!r}")
        importlib.import_module(module)
    return _HANDLERS[kind]


@dataclass
class Case:
    """One manifest entry with its arrays resolved lazily from the vector folder."""

    root: Path
    entry: dict[str, Any]
    _npz: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.entry["name"]

    @property
    def kind(self) -> str:
        return self.entry["kind"]

    @property
    def config(self) -> dict[str, Any]:
        return self.entry.get("config") or {}

    @property
    def params(self) -> dict[str, Any]:
        return self.entry.get("params") or {}

    def array(self, ref: str) -> np.ndarray:
        """Resolve `file.npz:array` (split at the last colon)."""
        file_name, _, array_name = ref.rpartition(":")
        if file_name not in self._npz:
            self._npz[file_name] = np.load(self.root / file_name)
        return self._npz[file_name][array_name]

    def inputs(self) -> dict[str, np.ndarray]:
        return {k: self.array(v) for k, v in (self.entry.get("inputs") or {}).items()}

    def input(self, name: str) -> np.ndarray | None:
        ref = (self.entry.get("inputs") or {}).get(name)
        return None if ref is None else self.array(ref)

    def expected(self, debug: bool = False) -> dict[str, np.ndarray]:
        out = {k: self.array(v) for k, v in self.entry.get("expected", {}).items()}
        if debug:
            for k, v in (self.entry.get("debug_expected") or {}).items():
                out[k] = self.array(v)
        return out

    def state_dict(self) -> dict[str, Any] | None:
        """The case's weights as a dict of torch tensors, or None."""
        if not self.entry.get("weights"):
            return None
        from safetensors.torch import load_file

        return load_file(str(self.root / self.entry["weights"]))

    def tolerance(self, output: str) -> tuple[float, float]:
        tol = self.entry.get("tolerance") or {}
        per = (tol.get("per_output") or {}).get(output) or {}
        atol = per.get("atol", tol.get("atol", 0.0))
        rtol = per.get("rtol", tol.get("rtol", 0.0))
        return float(atol), float(rtol)


@dataclass
class Comparison:
    output: str
    ok: bool
    max_error: float  # max |actual - expected|
    worst_ratio: float  # max |a-e| / (atol + rtol|e|); <= 1 passes
    atol: float
    rtol: float
    message: str = ""


def compare(name: str, actual: Any, expected: np.ndarray, atol: float, rtol: float) -> Comparison:
    """The README §3 rule: exact shape, exact integers, floats within atol + rtol·|e| and finite."""
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        return Comparison(name, False, float("inf"), float("inf"), atol, rtol,
                          f"shape {list(actual.shape)} != expected {list(expected.shape)}")
    if expected.size == 0:
        return Comparison(name, True, 0.0, 0.0, atol, rtol)
    if not np.issubdtype(expected.dtype, np.floating):
        diff = np.abs(actual.astype(np.int64) - expected.astype(np.int64))
        bad = int(np.count_nonzero(diff))
        return Comparison(name, bad == 0, float(diff.max()), float(bad), 0.0, 0.0,
                          f"{bad} elements differ" if bad else "")
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    if not np.all(np.isfinite(a)):
        return Comparison(name, False, float("inf"), float("inf"), atol, rtol, "non-finite values")
    diff = np.abs(a - e)
    bound = atol + rtol * np.abs(e)
    ratio = float(np.max(diff / np.maximum(bound, 1e-300)))
    return Comparison(name, bool(np.all(diff <= bound)), float(diff.max()), ratio, atol, rtol)


@dataclass
class CaseResult:
    case: str
    kind: str
    ok: bool
    comparisons: list[Comparison]
    seconds: float
    error: str = ""


def load_cases(root: Path) -> list[Case]:
    manifest_path = Path(root) / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no manifest.json in {root}: point at a conformance vector folder")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return [Case(Path(root), entry) for entry in manifest["cases"]]


def run_case(case: Case, debug: bool = False) -> CaseResult:
    """Run one case; a handler exception fails the case instead of stopping the run."""
    start = time.perf_counter()
    try:
        produced = get_handler(case.kind)(case)
        comparisons = []
        expected = case.expected(debug=debug)
        debug_names = set(case.entry.get("debug_expected") or {})
        for name, exp in expected.items():
            atol, rtol = case.tolerance(name)
            if name not in produced:
                if name in debug_names:
                    continue  # a handler need not produce every debug array
                comparisons.append(Comparison(name, False, float("inf"), float("inf"), atol, rtol,
                                              "not produced"))
                continue
            act = np.asarray(produced[name])
            if name in debug_names and case.entry.get("debug_batch_prefix"):
                act = act[: exp.shape[0]]
            comp = compare(name, act, exp, atol, rtol)
            if name in debug_names:
                comp.output = f"debug:{name}"
            comparisons.append(comp)
        # debug arrays localise a mismatch; only `expected` decides pass/fail
        ok = all(c.ok for c in comparisons if not c.output.startswith("debug:"))
        return CaseResult(case.name, case.kind, ok, comparisons, time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - reported per case
        return CaseResult(case.name, case.kind, False, [], time.perf_counter() - start,
                          f"{type(exc).__name__}: {exc}")
