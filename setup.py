"""Tressel: photo to USD hair groom (DiffLocks-compatible inference, USD layers, DCC hosts)."""

from setuptools import find_packages, setup

# The core is importable as `tressel` from the `core/` folder (DESIGN.md "Layout").
PACKAGES = ["tressel"] + [f"tressel.{name}" for name in find_packages("core")]

EXTRAS = {
    "daemon": ["fastapi", "uvicorn", "python-multipart"],
    "gui": ["PySide6-Essentials"],
    "farm": ["openjd-cli"],
    "alembic": ["alembic3d"],  # .abc grooms (tressel.export): PyAlembic with Imath, as wheels
}
# The tests exercise every part, so they need every extra.
EXTRAS["test"] = ["pytest", "pytest-timeout", "scikit-image", "ruff", "httpx"] + sorted(
    {dep for deps in EXTRAS.values() for dep in deps}
)

setup(
    name="tressel",
    version="0.1.0",
    description="Hair grooms from a photo: DiffLocks inference to USD BasisCurves",
    license="Apache-2.0",
    python_requires=">=3.11",
    package_dir={"tressel": "core"},
    packages=PACKAGES,
    include_package_data=True,
    package_data={"tressel": ["data/**/*"]},
    install_requires=[
        "numpy",
        "torch>=2.4",
        "timm>=1.0",
        "safetensors",
        "usd-core",
        "OpenImageIO",
        "opencv-python-headless<5",
        "PyYAML",
        "tqdm",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["tressel = tressel.cli:main"]},
)
