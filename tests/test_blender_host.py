"""The Blender extension (`hosts/blender`) in real Blender (`bpy` 5.0.1) against a real daemon.

The daemon runs the real pipeline on the tiny random bundle from this environment; the
extension is installed by `tressel.hosting.install_blender` into a temporary extensions
repository and runs in `.venv-blender` (tests/blender_tressel_host.py, one Blender process for
every scenario). Without `.venv-blender` these tests skip.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from daemon_support import FAST, REPO, real_daemon, tiny_bundle, write_png
from tressel.hosting import GroomOptions, run_groom_job

BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
SCRIPT = Path(__file__).with_name("blender_tressel_host.py")
DOCS_RENDER = REPO / "docs" / "blender_render.png"
needs_blender = pytest.mark.skipif(
    not BLENDER_PYTHON.is_file(),
    reason=(f"no Blender venv at {BLENDER_PYTHON.parent.parent}: make it with `python3.11 -m "
            "venv .venv-blender && .venv-blender/bin/pip install 'bpy==5.0.1' 'numpy<2'`"),
)

# What the panel sends: a few thousand short strands (the tiny bundle at 4x its density).
OPTIONS = {"strands": "4x", "steps": FAST["steps"], "crop": False, "points_per_strand": 12,
           "guides": 16, "import_guides": True, "seed": 3}
DISPLACE = 0.01  # metres the head grows along its normals in the deformation check
RENDER = {"size": 128, "samples": 16}
DEMO = {"bundle": "tressel-demo", "photo": REPO / "examples" / "astronaut.png", "strands": "3x"}


def demo_bundle_folder() -> str:
    """The shipped demo model, by folder: the panel's bundle field takes a name or a folder."""
    from tressel.bundles import packaged_bundles_dir

    return str(packaged_bundles_dir() / DEMO["bundle"])


def load_hair_color():
    """hosts/blender/hair_color.py alone (the package itself needs bpy)."""
    spec = importlib.util.spec_from_file_location(
        "tressel_blender_hair_color", REPO / "hosts" / "blender" / "hair_color.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_png(path: str | Path) -> np.ndarray:
    """An 8-bit RGB PNG as floats in [0, 1], [H, W, 3]."""
    import OpenImageIO as oiio

    pixels = oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)
    assert pixels is not None and pixels.ndim == 3, f"cannot read {path}"
    return pixels[..., :3].astype(np.float64)


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through `points` (|p|^2 = 2 c.p + k)."""
    design = np.hstack([2 * points, np.ones((len(points), 1))])
    solution, *_ = np.linalg.lstsq(design, (points**2).sum(1), rcond=None)
    center = solution[:3]
    return center, float(math.sqrt(solution[3] + center @ center))


def head_parts() -> list[dict]:
    """Tressel's procedural head (the demo model's training head) as Blender ellipsoids; the
    cranium, which carries the scalp, first."""
    from tressel.synth.head import HEAD_PARTS

    skin = (0.8, 0.6, 0.5)
    return [{"name": part.name.title().replace("_", ""),
             "center": blender_world(np.array([part.center]))[0].tolist(),
             "axes": [part.axes[0], part.axes[2], part.axes[1]],
             "color": skin if part.color == (1.0, 1.0, 1.0) else list(part.color)}
            for part in HEAD_PARTS]


def blender_world(points_y_up: np.ndarray) -> np.ndarray:
    """Blender's USD import turns Y-up into Z-up: (x, y, z) -> (x, -z, y)."""
    return np.stack([points_y_up[:, 0], -points_y_up[:, 2], points_y_up[:, 1]], axis=1)


@pytest.fixture(scope="module")
def blender_run(tmp_path_factory):
    """One Blender process runs every scenario against one daemon; its facts, and the layer."""
    if not BLENDER_PYTHON.is_file():
        pytest.skip("no .venv-blender")
    from tressel.hosting import install_blender
    from tressel.usd import read_groom

    root = tmp_path_factory.mktemp("blender_host")
    started = time.perf_counter()
    daemon = real_daemon(root / "state", tiny_bundle(root))
    client = daemon.start()
    print(f"daemon up in {time.perf_counter() - started:.1f} s")
    try:
        photo = write_png(root / "portrait.png", seed=7)
        # The same request the panel will make, first from here: its layer tells where the
        # roots are (for the test head) and what Blender must show; the panel's job is then
        # answered from the daemon's cache.
        options = GroomOptions(**OPTIONS)
        reference = run_groom_job(photo, options, root / "reference", connect=lambda: client)
        groom = read_groom(reference.path)
        roots = blender_world(groom.positions[:, 0].astype(np.float64))
        center, radius = fit_sphere(roots)

        # The render's groom: the shipped demo model on a real portrait, for hair that looks
        # like hair (the tiny random bundle's strands are meaningless).
        demo_options = GroomOptions(**{**OPTIONS, "strands": DEMO["strands"], "seed": 0,
                                       "crop": True, "bundle": demo_bundle_folder()})
        demo = read_groom(run_groom_job(DEMO["photo"], demo_options, root / "reference",
                                        connect=lambda: client).path)
        demo_points = blender_world(demo.positions.reshape(-1, 3).astype(np.float64))
        low, high = demo_points.min(0), demo_points.max(0)
        print(f"reference grooms made after {time.perf_counter() - started:.1f} s")

        corrupt = root / "broken.jpg"
        corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 4)
        spec = {
            "output_dir": str(root / "usd"), "options": OPTIONS,
            "photo": str(photo), "corrupt_photo": str(corrupt),
            "slow_photo": str(write_png(root / "slow.png", seed=8)), "slow_steps": 400,
            "head_center": center.tolist(), "head_radius": radius, "displace": DISPLACE,
            "render": {**RENDER, "bald": str(root / "bald.png"), "hair": str(root / "hair.png"),
                       "photo": str(DEMO["photo"]), "bundle": demo_bundle_folder(),
                       "parts": head_parts(), "strands": DEMO["strands"],
                       "view_center": ((low + high) / 2).tolist(),
                       "view_size": float((high - low).max())},
            "facts": str(root / "facts.json"),
        }
        (root / "spec.json").write_text(json.dumps(spec))

        extensions = root / "extensions"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TRESSEL_HOSTS_PYTHON", str(root / "hosts_python"))
            from tressel.hosting.install import prepare_hosts_python

            prepare_hosts_python()
            installation = install_blender.INSTALLER.install(extensions / "user_default")
        env = {k: v for k, v in os.environ.items() if k not in (
            # Blender must find tressel, and the daemon command, through the install config.
            "PYTHONPATH", "TRESSEL_HOSTS_PYTHON", "TRESSEL_DAEMON_COMMAND")}
        env.update({"BLENDER_USER_EXTENSIONS": str(extensions),
                    "BLENDER_USER_RESOURCES": str(root / "blender_user"),
                    "TRESSEL_DAEMON_DIR": str(daemon.state_dir), "OMP_NUM_THREADS": "1"})
        started = time.perf_counter()
        proc = subprocess.run([str(BLENDER_PYTHON), str(SCRIPT), str(root / "spec.json")],
                              capture_output=True, text=True, timeout=240, env=env, check=False)
        assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-5000:])
        facts = json.loads((root / "facts.json").read_text())
        facts["blender_seconds"] = time.perf_counter() - started
        yield {"facts": facts, "groom": groom, "demo": demo, "root": root, "client": client,
               "installation": installation, "center": center, "radius": radius,
               "spec": spec, "stderr": proc.stderr}
    finally:
        daemon.stop()


@needs_blender
def test_enabling_the_extension_registers_its_panel_and_operators(blender_run):
    enable = blender_run["facts"]["enable"]
    assert enable["result"] == ["FINISHED"]
    assert enable["panel"] == ["VIEW_3D", "UI", "Tressel"]
    assert enable["operators"] == ["generate", "cancel"]
    assert enable["settings"]
    # Tressel came from the folder the install recorded, not from this test's import path.
    assert enable["tressel_from"].startswith(str(blender_run["root"] / "hosts_python"))
    assert enable["daemon_command_set"]
    # Hair from photo: on unless turned off, as the CLI's --no-hair-reading.
    name, default, description, value = enable["hair_reading"]
    assert (name, default, value) == ("Hair from photo", True, True)
    assert "length and colour" in description
    print(f"Blender ran every scenario in {blender_run['facts']['blender_seconds']:.1f} s")
    installed = blender_run["installation"].path
    assert (installed / "tressel_host.json").is_file()
    assert not (REPO / "hosts" / "blender" / "tressel_host.json").exists()


@needs_blender
def test_generate_imports_hair_curves_attached_to_the_head(blender_run):
    facts, groom = blender_run["facts"], blender_run["groom"]
    assert facts["generate"]["state"] == "succeeded", facts["generate"]
    assert not facts["generate"]["failed"]
    strands = facts["groom"]
    assert strands["curves"] == groom.num_strands > 1000
    assert strands["points"] == groom.num_strands * OPTIONS["points_per_strand"]
    assert strands["name"] == "tressel_portrait_strands"
    assert strands["top_parent"] == "TestHead"
    assert facts["groom"]["guides"] == "tressel_portrait_guides"
    # Attached to the selected head with its UV map; root UVs are the layer's.
    assert strands["surface"] == "TestHead"
    assert strands["surface_uv_map"] == facts["head_uv_maps"][0] == "UVMap"
    np.testing.assert_allclose(strands["surface_uv"], groom.root_uv, atol=1e-6)
    np.testing.assert_allclose(strands["st"], groom.root_uv, atol=1e-6)
    # Roots stay where the model put them (on the fitted head, within the fit's error).
    roots = np.array(strands["roots_world"])
    np.testing.assert_allclose(roots, blender_world(groom.positions[:, 0]), atol=1e-5)
    assert ("Surface Deform", "NODES", "Tressel Surface Deform") in map(tuple,
                                                                        strands["modifiers"])
    assert Path(strands["layer"]).parent == blender_run["root"] / "usd"
    assert f"{groom.num_strands} strands" in facts["generate"]["message"]
    assert blender_run["client"].job(facts["generate"]["job_id"]).params["hair_reading"] is True


@needs_blender
def test_the_hair_material_has_the_predicted_melanin(blender_run):
    facts, groom = blender_run["facts"], blender_run["groom"]
    material = facts["material"]
    assert facts["groom"]["materials"] == [material["name"]] == ["tressel_portrait_hair"]
    assert material["hair_nodes"] == 1 and material["output_from"] == "ShaderNodeBsdfHairPrincipled"
    assert (material["model"], material["parametrization"]) == ("CHIANG", "MELANIN")
    assert material["melanin"] == pytest.approx(groom.material.melanin, abs=2e-4)
    assert material["redness"] == pytest.approx(groom.material.redness, abs=2e-4)


@needs_blender
def test_nearest_attach_snaps_roots_and_the_hair_follows_the_head(blender_run):
    nearest = blender_run["facts"]["nearest"]
    center, radius = blender_run["center"], blender_run["radius"]
    assert nearest["surface"] == "TestHead" and nearest["surface_uv_map"] == "UVMap"
    uv = np.array(nearest["surface_uv"])
    assert uv.min() >= 0 and uv.max() <= 1
    # Snapped: every root on the (64x32 polygon) sphere.
    distance = np.linalg.norm(np.array(nearest["roots_world"]) - center, axis=1)
    np.testing.assert_allclose(distance, radius, atol=radius * 0.005)
    rest = np.array(nearest["evaluated_rest"])
    np.testing.assert_allclose(rest, nearest["roots_world"], atol=1e-5)
    # The head grows by DISPLACE along its normals: the Surface Deform modifier carries the
    # roots out with it.
    grown = np.linalg.norm(np.array(nearest["evaluated_displaced"]) - center, axis=1)
    np.testing.assert_allclose(grown, radius + DISPLACE, atol=radius * 0.005)


@needs_blender
def test_a_failed_job_reports_the_daemons_message_and_changes_nothing(blender_run):
    facts = blender_run["facts"]
    corrupt = facts["corrupt"]
    assert corrupt["state"] == "failed" and corrupt["failed"]
    assert "broken.jpg" in corrupt["message"]
    # The panel shows it as an alert, the options editable again.
    labels = [item for item in corrupt["drawn_after"] if item[0] == "label"]
    assert labels[0][2] is True and "broken.jpg" in " ".join(item[1] for item in labels)
    assert all(item[2] for item in corrupt["drawn_after"] if item[0] == "prop")
    shown = [item[1] for item in corrupt["drawn_after"] if item[0] == "prop"]
    assert shown.index("hair_reading") == shown.index("curl") + 1
    assert corrupt["unchanged"]
    # An import that fails half-way removes what it had made.
    assert "no Strands curves" in facts["bad_layer"]["raised"]
    assert facts["bad_layer"]["unchanged"]
    cancel = facts["cancel"]
    assert cancel["state"] == "cancelled" and "diffusion" in cancel["phases"], cancel
    # While it ran, the panel drew its progress bar.
    assert any(text.startswith("diffusion") for text in cancel["drawn_progress"]), cancel
    assert cancel["unchanged"]
    assert blender_run["client"].job(cancel["job_id"]).state == "cancelled"
    # That job was started with Hair from photo turned off in the panel.
    assert blender_run["client"].job(cancel["job_id"]).params["hair_reading"] is False
    # Only the successful jobs wrote layers.
    layers = sorted(p.name for p in (blender_run["root"] / "usd").iterdir())
    assert layers == ["astronaut_s0.usdc", "portrait_s3.usdc"]


@needs_blender
def test_cycles_renders_the_demo_groom_on_its_head(blender_run):
    facts, demo = blender_run["facts"], blender_run["demo"]
    assert facts["demo"]["state"] == "succeeded", facts["demo"]
    assert facts["demo"]["curves"] == demo.num_strands
    assert facts["demo"]["surface"] == facts["demo"]["head"]
    assert facts["demo"]["material"]["melanin"] == pytest.approx(demo.material.melanin, abs=2e-4)
    spec = blender_run["spec"]["render"]
    bald, hair = read_png(spec["bald"]), read_png(spec["hair"])
    assert bald.shape == hair.shape == (RENDER["size"], RENDER["size"], 3)
    # Hair pixels: where showing the hair changes the picture. A groom covers a good part of
    # the frame, around the head rather than along the image border.
    changed = np.abs(hair - bald).max(axis=2) > 0.08
    assert changed.mean() > 0.03, changed.mean()
    border = np.ones_like(changed)
    border[8:-8, 8:-8] = False
    assert changed[border].mean() < changed[~border].mean()
    save_docs_render(Path(spec["hair"]), hair)


def save_docs_render(path: Path, pixels: np.ndarray) -> None:
    """With TRESSEL_UPDATE_DOCS=1, make README's picture (docs/blender_render.png) this render.

    Tests leave the checkout alone otherwise. Cycles' hair differs in the last bits between
    runs; a render that only differs so is not rewritten, so the committed file stays put.
    """
    if not os.environ.get("TRESSEL_UPDATE_DOCS"):
        return
    if DOCS_RENDER.is_file():
        previous = read_png(DOCS_RENDER)
        if previous.shape == pixels.shape:
            difference = np.abs(previous - pixels).max(axis=2)
            if difference.max() < 0.1 and (difference > 0).mean() < 0.05:
                return
    DOCS_RENDER.parent.mkdir(exist_ok=True)
    staged = DOCS_RENDER.with_name(f".{DOCS_RENDER.name}.tmp")
    shutil.copyfile(path, staged)
    os.replace(staged, DOCS_RENDER)


def test_melanin_survives_the_preview_colour_round_trip():
    """The extension's inverse agrees with the writer's forward mapping (tressel.usd.material)."""
    from tressel.result import HairMaterial
    from tressel.usd import material as usd_material

    hair_color = load_hair_color()
    assert hair_color.EUMELANIN_COLOR == usd_material.EUMELANIN_COLOR
    assert hair_color.PHEOMELANIN_COLOR == usd_material.PHEOMELANIN_COLOR
    for melanin in (0.02, 0.2, 0.5, 0.8, 0.97):
        for redness in (0.0, 0.1, 0.5, 0.9, 1.0):
            predicted = HairMaterial(melanin=melanin, redness=redness, root_darkness_start=0.1,
                                     root_darkness_end=0.3, root_darkness_strength=0.5,
                                     raw=[0.0] * 11)
            color = tuple(np.float32(usd_material.preview_color(predicted)))  # as USD stores it
            got = hair_color.melanin_from_preview_color(color)
            assert got == pytest.approx((melanin, redness), abs=1e-4), (melanin, redness)
    assert hair_color.melanin_from_preview_color((1.0, 1.0, 1.0)) == (0.0, 0.0)


# The importer's option names in a Blender 4.2-era source/blender/editors/io/io_usd.cc (read
# through the search tool): custom properties are `attr_import_mode` there; bpy 5.0.1 has only
# `property_import_mode`.
USD_IMPORT_4_2 = (
    "filepath", "scale", "set_frame_range", "import_cameras", "import_curves", "import_lights",
    "import_materials", "import_meshes", "import_volumes", "import_shapes", "import_skeletons",
    "import_blendshapes", "import_points", "import_subdiv", "support_scene_instancing",
    "import_visible_only", "create_collection", "read_mesh_uvs", "read_mesh_colors",
    "read_mesh_attributes", "prim_path_mask", "import_guide", "import_proxy", "import_render",
    "import_all_materials", "import_usd_preview", "set_material_blend", "light_intensity_scale",
    "mtl_name_collision_mode", "import_textures_mode", "import_textures_dir",
    "tex_name_collision_mode", "attr_import_mode", "validate_meshes", "create_world_material",
    "import_defined_only")


def load_usd_options():
    spec = importlib.util.spec_from_file_location(
        "tressel_blender_usd_options", REPO / "hosts" / "blender" / "usd_options.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_usd_import_options_use_the_running_blenders_names():
    """4.2 calls the custom-property option attr_import_mode, 5.0 property_import_mode; an
    operator given a keyword it lacks raises TypeError, so only declared names are passed."""
    usd_options = load_usd_options()
    old = usd_options.usd_import_options(USD_IMPORT_4_2, "/g.usdc", import_guides=True)
    assert old["attr_import_mode"] == "NONE" and "property_import_mode" not in old
    assert old["import_guide"] is True and old["filepath"] == "/g.usdc"
    assert set(old) <= set(USD_IMPORT_4_2)
    names_5_0 = [n if n != "attr_import_mode" else "property_import_mode"
                 for n in USD_IMPORT_4_2]
    new = usd_options.usd_import_options(names_5_0, "/g.usdc", import_guides=False)
    assert new["property_import_mode"] == "NONE" and "attr_import_mode" not in new
    assert set(new) <= set(names_5_0)
    with pytest.raises(RuntimeError, match="create_world_material"):
        usd_options.usd_import_options([n for n in USD_IMPORT_4_2
                                        if n != "create_world_material"], "/g.usdc", False)


@needs_blender
def test_blenders_strict_manifest_validation_accepts_the_extension():
    """What `blender --command extension validate` (and `extension build`) run: the strict
    checks, stricter than installing (a tagline over 64 characters installs but fails here)."""
    (validator,) = (BLENDER_PYTHON.parent.parent / "lib").glob(
        "python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
    proc = subprocess.run([str(BLENDER_PYTHON), str(validator), "validate",
                           str(REPO / "hosts" / "blender")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr


def test_install_writes_a_copy_with_its_config_and_uninstalls_it(tmp_path, monkeypatch):
    from tressel.hosting import install_blender
    from tressel.hosting.install import prepare_hosts_python

    monkeypatch.setenv("TRESSEL_HOSTS_PYTHON", str(tmp_path / "pylib"))
    monkeypatch.setenv("TRESSEL_DAEMON_COMMAND", "/opt/tressel/bin/tressel daemon")
    prepare_hosts_python()
    repo = tmp_path / "extensions" / "user_default"
    installer = install_blender.INSTALLER
    done = installer.install(repo)
    assert done.path == repo / "tressel"
    assert (done.path / "blender_manifest.toml").is_file()
    config = json.loads((done.path / "tressel_host.json").read_text())
    assert config["hosts_python"] == str(tmp_path / "pylib")
    assert config["daemon_command"] == "/opt/tressel/bin/tressel daemon"
    (found,) = installer.find(repo)
    assert found.valid and found.path == done.path
    installer.install(repo)  # a reinstall replaces the copy
    assert sorted(p.name for p in repo.iterdir()) == ["tressel"]
    # Someone else's extension under the same name is never overwritten.
    other = tmp_path / "other" / "tressel"
    other.mkdir(parents=True)
    (other / "blender_manifest.toml").write_text('id = "someone_else"\n')
    with pytest.raises(Exception, match="not the Tressel extension"):
        installer.install(other.parent)
    assert installer.uninstall(repo) == [done.path]
    assert not done.path.exists() and installer.uninstall(repo) == []


def test_default_dir_is_the_newest_blender_and_the_zip_is_an_extension(tmp_path, monkeypatch):
    from tressel.hosting import install_blender

    monkeypatch.delenv("BLENDER_USER_EXTENSIONS", raising=False)
    monkeypatch.setattr(install_blender, "blender_config_root", lambda: tmp_path / "blender")
    with pytest.raises(Exception, match="start Blender once"):
        install_blender.INSTALLER.install()
    for version in ("3.6", "4.2", "4.10", "4.5"):
        (tmp_path / "blender" / version).mkdir(parents=True)
    assert install_blender.INSTALLER.default_dir() == (
        tmp_path / "blender" / "4.10" / "extensions" / "user_default")

    monkeypatch.setenv("TRESSEL_HOSTS_PYTHON", str(tmp_path / "pylib"))
    out = tmp_path / "tressel_blender.zip"
    proc = subprocess.run([str(Path(sys.executable).parent / "tressel"), "hosts", "install",
                           "blender", "--zip", str(out)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    names = set(zipfile.ZipFile(out).namelist())
    assert {"blender_manifest.toml", "__init__.py", "ui.py", "tressel_host.json"} <= names
    assert not any("__pycache__" in name for name in names)
    config = json.loads(zipfile.ZipFile(out).read("tressel_host.json"))
    assert config["hosts_python"] == str(tmp_path / "pylib")


ZIP_INSTALL = """
import json, sys
import bpy
result = bpy.ops.extensions.package_install_files(
    filepath=sys.argv[1], repo="user_default", enable_on_install=True)
print(json.dumps({"result": sorted(result),
                  "enabled": [a.module for a in bpy.context.preferences.addons],
                  "panel": hasattr(bpy.types, "VIEW3D_PT_tressel"),
                  "tressel": sys.modules["tressel"].__file__}))
"""


@needs_blender
def test_blenders_own_installer_accepts_the_zip(tmp_path):
    """Blender validates the manifest and installs the zip from `tressel hosts install --zip`."""
    pylib = tmp_path / "pylib"
    env = {**os.environ, "TRESSEL_HOSTS_PYTHON": str(pylib)}
    zipped = tmp_path / "tressel_blender.zip"
    subprocess.run([str(Path(sys.executable).parent / "tressel"), "hosts", "install", "blender",
                    "--zip", str(zipped)], check=True, capture_output=True, env=env)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "TRESSEL_HOSTS_PYTHON", "TRESSEL_DAEMON_COMMAND")}
    env.update({"BLENDER_USER_EXTENSIONS": str(tmp_path / "extensions"),
                "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user")})
    proc = subprocess.run([str(BLENDER_PYTHON), "-c", ZIP_INSTALL, str(zipped)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert facts["result"] == ["FINISHED"]
    assert "bl_ext.user_default.tressel" in facts["enabled"] and facts["panel"]
    assert facts["tressel"].startswith(str(pylib))
    assert (tmp_path / "extensions" / "user_default" / "tressel" / "tressel_host.json").is_file()
