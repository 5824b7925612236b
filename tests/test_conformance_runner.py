"""The conformance runner itself: manifest loading, the comparison rule and reporting."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from tressel.conformance import Case, compare, handler, load_cases, run_case


def test_compare_rule_floats_ints_and_shapes():
    e = np.array([1.0, -2.0, 100.0], dtype=np.float32)
    assert compare("x", e + 1e-6, e, atol=1e-5, rtol=0).ok
    # rtol scales with |expected|: 100 * 1e-5 = 1e-3 allowed on the last element
    assert compare("x", e + np.array([0, 0, 9e-4]), e, atol=0, rtol=1e-5).ok
    assert not compare("x", e + np.array([0, 0, 2e-3]), e, atol=0, rtol=1e-5).ok
    assert not compare("x", e[:2], e, atol=1, rtol=1).ok  # shape must match exactly
    bad = e.copy()
    bad[0] = np.nan
    assert not compare("x", bad, e, atol=1e9, rtol=1).ok  # every value finite
    i = np.array([1, 2, 3], dtype=np.int64)
    assert compare("i", i.astype(np.int32), i, 0, 0).ok
    assert not compare("i", i + np.array([0, 1, 0]), i, 5, 5).ok  # integers compare exactly


def _write_vectors(tmp_path, kind: str, expected_value: float):
    np.savez(tmp_path / "data.npz", x=np.arange(4, dtype=np.float32),
             y=np.full(4, expected_value, dtype=np.float32))
    manifest = {
        "format": "difflocks-conformance/1",
        "cases": [{
            "name": "double_it", "kind": kind, "config": {"factor": 2.0}, "weights": None,
            "inputs": {"x": "data.npz:x"}, "params": {}, "expected": {"y": "data.npz:y"},
            "tolerance": {"atol": 1e-6, "rtol": 1e-5},
        }],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))


def test_run_case_uses_handler_and_tolerance(tmp_path):
    @handler("test_scale")
    def _scale(case: Case):
        return {"y": case.input("x") * case.config["factor"]}

    np.savez(tmp_path / "data.npz", x=np.arange(4, dtype=np.float32),
             y=np.arange(4, dtype=np.float32) * 2)
    manifest = {
        "format": "difflocks-conformance/1",
        "cases": [{"name": "c", "kind": "test_scale", "config": {"factor": 2.0}, "weights": None,
                   "inputs": {"x": "data.npz:x"}, "expected": {"y": "data.npz:y"},
                   "tolerance": {"atol": 1e-6, "rtol": 1e-5}}],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (case,) = load_cases(tmp_path)
    assert run_case(case).ok
    case.entry["config"]["factor"] = 2.001
    result = run_case(case)
    assert not result.ok and result.comparisons[0].max_error > 1e-3


def test_unknown_kind_fails_the_case_not_the_run(tmp_path):
    _write_vectors(tmp_path, "no_such_kind", 0.0)
    (case,) = load_cases(tmp_path)
    result = run_case(case)
    assert not result.ok and "no_such_kind" in result.error


def test_cli_reports_failures_and_exit_status(tmp_path):
    _write_vectors(tmp_path, "no_such_kind", 0.0)
    proc = subprocess.run([sys.executable, "-m", "tressel.cli", "conformance", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("FAIL double_it")
    assert lines[-1] == "0 passed, 1 failed"


def test_wrong_format_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other/2", "cases": []}))
    with pytest.raises(ValueError, match="difflocks-conformance/1"):
        load_cases(tmp_path)


def test_import_tressel_is_light():
    code = ("import sys, tressel, tressel.cli, tressel.errors, tressel.progress; "
            "heavy = [m for m in ('torch', 'numpy', 'pxr') if m in sys.modules]; "
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
