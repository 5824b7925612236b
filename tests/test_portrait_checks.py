"""The real-portrait checks of the demo model's evaluation (tressel.train.portraits)."""

from __future__ import annotations

from tressel.train.portraits import available_portraits, portrait_checks


def _row(length_cm: float, hangs: float = 0.9) -> dict:
    return {"mean": {"length_cm": length_cm, "tips_below_roots": hangs}}


def test_very_short_hair_must_come_out_under_5_cm_and_counts_as_short():
    rows = {"lena": _row(26.0), "astronaut": _row(8.0), "obama": _row(4.2)}
    checks = portrait_checks(rows)
    assert checks["obama_under_5cm"]["pass"]
    assert checks["long_longer_than_short"]["pass"]
    rows["obama"] = _row(19.0)
    checks = portrait_checks(rows)
    assert not checks["obama_under_5cm"]["pass"]
    assert "19.0 cm" in checks["obama_under_5cm"]["detail"]
    assert not checks["long_longer_than_short"]["pass"]  # 26 cm is not 1.5x 19 cm


def test_the_checkout_portrait_is_found():
    assert available_portraits()["obama"].is_file()
