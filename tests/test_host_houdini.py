"""The Houdini host (`hosts/houdini`) through a recording fake of `hou`, against a real daemon.

The fake (`tests/fakes/hou.py`) stands in for Houdini; everything else is real: the host
package, `tressel.hosting`, a daemon process with the tiny random bundle, and `pxr` from the
venv in place of Houdini's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from daemon_support import FAST, PYTHON, REPO, real_daemon, tiny_bundle, write_png
from tressel.errors import TresselError

FAKES = Path(__file__).resolve().parent / "fakes"
HOST_PYTHON = REPO / "hosts" / "houdini" / "python"
# Tiny jobs: the node's parameters for the tiny test bundle (no face in noise: no crop).
TINY_PARMS = {"seed": 2, "strands": str(FAST["max_strands"]), "points": 8, "guides": 8,
              "steps": FAST["steps"], "crop": 0}


@pytest.fixture(scope="module")
def hou():
    """The fake `hou` and the host package on sys.path, as Houdini's package would put it."""
    added = [str(FAKES), str(HOST_PYTHON)]
    sys.path[:0] = added
    import hou as fake

    yield fake
    for path in added:
        sys.path.remove(path)
    for name in [n for n in sys.modules if n == "hou" or n.startswith("tressel_houdini")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A real daemon; the host finds it the way it does in Houdini (the per-user state dir)."""
    root = tmp_path_factory.mktemp("houdini-daemon")
    process = real_daemon(root / "state", tiny_bundle(root))
    client = process.start()
    saved = {k: os.environ.get(k) for k in ("TRESSEL_DAEMON_DIR", "TRESSEL_HOUDINI_USER")}
    os.environ["TRESSEL_DAEMON_DIR"] = str(process.state_dir)
    os.environ["TRESSEL_HOUDINI_USER"] = str(root / "houdini-user")
    yield client
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    process.stop()


@pytest.fixture
def scene(hou, daemon, tmp_path):
    """A fresh Houdini session whose $HIP is tmp_path/shot."""
    hip = tmp_path / "shot"
    hip.mkdir()
    hou.reset(hip)
    return hip


def new_node(photo: Path | None, **parms):
    from tressel_houdini.shelf import create_groom

    node = create_groom(str(photo) if photo else None, ask=False)
    for name, value in {**TINY_PARMS, **parms}.items():
        node.parm(name).set(value)
    return node


def generate_and_wait(hou, node, on_tick=None):
    from tressel_houdini import node as node_module

    node.parm("generate").pressButton()
    job = node_module._jobs.get(node.sessionId())
    assert job is not None, node.comment()
    hou.run_event_loop(until=lambda: job.done and not hou.ui.eventLoopCallbacks(),
                       on_tick=on_tick)
    return job


def layer_curves(path: Path, prim: str) -> dict[str, np.ndarray]:
    """A BasisCurves prim of the layer, read with pxr (the venv's, standing in for Houdini's)."""
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.Open(str(path))
    curves = UsdGeom.BasisCurves(stage.GetPrimAtPath(f"/Groom/{prim}"))
    primvars = UsdGeom.PrimvarsAPI(curves)
    return {
        "counts": np.array(curves.GetCurveVertexCountsAttr().Get()),
        "points": np.array(curves.GetPointsAttr().Get(), np.float32)
        * UsdGeom.GetStageMetersPerUnit(stage),
        "widths": np.array(curves.GetWidthsAttr().Get(), np.float32)
        * UsdGeom.GetStageMetersPerUnit(stage),
        "uv": np.array(primvars.GetPrimvar("st").Get(), np.float32),
        "ids": np.array(primvars.GetPrimvar("strandId").Get(), np.int32),
    }


# -- install ---------------------------------------------------------------------------------------


def test_install_twice_gives_one_package_file_and_uninstall_removes_it(tmp_path, monkeypatch):
    from tressel.hosting.install import installer

    monkeypatch.setenv("TRESSEL_HOSTS_PYTHON", str(tmp_path / "pylib"))
    monkeypatch.setenv("TRESSEL_DAEMON_COMMAND", "/opt/tressel/bin/tressel daemon")
    monkeypatch.setenv("TRESSEL_HOUDINI_USER", str(tmp_path / "user"))
    packages = tmp_path / "houdini20.5" / "packages"
    host = installer("houdini")
    host.install(packages)
    done = host.install(packages)
    assert sorted(packages.iterdir()) == [packages / "tressel.json"] == [done.path]
    package = json.loads(done.path.read_text())
    env = {key: value for entry in package["env"] for key, value in entry.items()}
    assert Path(env["TRESSEL_HOUDINI"]) == REPO / "hosts" / "houdini" == done.source
    assert env["TRESSEL_DAEMON_COMMAND"] == "/opt/tressel/bin/tressel daemon"
    assert env["TRESSEL_HOUDINI_USER"] == (tmp_path / "user").as_posix()
    assert env["PYTHONPATH"] == {"value": [(tmp_path / "pylib").as_posix(),
                                           "$TRESSEL_HOUDINI/python"], "method": "prepend"}
    assert package["hpath"] == ["$TRESSEL_HOUDINI", "$TRESSEL_HOUDINI_USER"]
    assert (REPO / "hosts" / "houdini" / "toolbar" / "tressel.shelf").is_file()
    [found] = host.find(packages)
    assert found.valid and found.path == done.path
    moved = json.loads(done.path.read_text())
    moved["env"][0]["TRESSEL_HOUDINI"] = (tmp_path / "gone").as_posix()
    done.path.write_text(json.dumps(moved))
    assert not host.find(packages)[0].valid  # `tressel hosts status` says BROKEN
    (packages / "other.json").write_text("{}")  # someone else's package stays
    assert host.uninstall(packages) == [done.path]
    assert sorted(p.name for p in packages.iterdir()) == ["other.json"]
    assert host.uninstall(packages) == [] and host.find(packages) == []


def test_the_cli_installs_reports_and_uninstalls(tmp_path):
    env = {**os.environ, "TRESSEL_HOSTS_PYTHON": str(tmp_path / "pylib"),
           "TRESSEL_HOUDINI_USER": str(tmp_path / "user")}
    packages = tmp_path / "packages"

    def tressel(*args):
        return subprocess.run([PYTHON, "-m", "tressel.cli", "hosts", *args], env=env,
                              capture_output=True, text=True, check=True).stdout

    tressel("install", "houdini", "--packages-dir", str(packages))
    out = tressel("install", "houdini", "--packages-dir", str(packages))
    assert "installed the Tressel houdini host" in out
    assert [p.name for p in packages.iterdir()] == ["tressel.json"]
    status = tressel("status", "--dir", str(packages))
    assert f"houdini  {packages / 'tressel.json'}" in status and "[ok]" in status
    assert "removed" in tressel("install", "houdini", "--uninstall", "--dir", str(packages))
    assert not any(packages.iterdir())


def test_default_packages_folder_per_platform(tmp_path, monkeypatch):
    from tressel.hosting.install_houdini import HoudiniInstaller

    for name in ("HOUDINI_USER_PREF_DIR", "HOUDINI_MAJOR_RELEASE", "HOUDINI_MINOR_RELEASE",
                 "TRESSEL_HOUDINI_VERSION"):
        monkeypatch.delenv(name, raising=False)
    linux = HoudiniInstaller(platform="linux", home=tmp_path)
    with pytest.raises(TresselError, match="--dir"):
        linux.install()  # no Houdini preferences folder at all: say what to do
    assert linux.find() == [] and linux.uninstall() == []
    for version in ("9.5", "20.5", "21.0", "20.10"):
        (tmp_path / f"houdini{version}").mkdir()
    (tmp_path / "houdini_backup").mkdir()
    assert linux.default_dir() == tmp_path / "houdini21.0" / "packages"  # newest, numerically

    mac = HoudiniInstaller(platform="darwin", home=tmp_path)
    (tmp_path / "Library" / "Preferences" / "houdini" / "20.5").mkdir(parents=True)
    assert mac.default_dir() == tmp_path / "Library/Preferences/houdini/20.5/packages"
    windows = HoudiniInstaller(platform="win32", home=tmp_path)
    (tmp_path / "Documents" / "houdini20.0").mkdir(parents=True)
    assert windows.default_dir() == tmp_path / "Documents" / "houdini20.0" / "packages"

    monkeypatch.setenv("HOUDINI_MAJOR_RELEASE", "20")  # inside Houdini's environment
    monkeypatch.setenv("HOUDINI_MINOR_RELEASE", "5")
    assert linux.default_dir() == tmp_path / "houdini20.5" / "packages"
    monkeypatch.setenv("HOUDINI_USER_PREF_DIR", str(tmp_path / "prefs__HVER__"))
    assert linux.default_dir() == tmp_path / "prefs20.5" / "packages"


def test_host_package_imports_in_a_bare_interpreter(tmp_path, monkeypatch):
    from tressel.hosting.install import prepare_hosts_python

    monkeypatch.setenv("TRESSEL_HOSTS_PYTHON", str(tmp_path / "pylib"))
    folder = prepare_hosts_python()
    code = ("import sys; sys.path[:0] = sys.argv[1:];"
            "import tressel_houdini, tressel_houdini.node, tressel_houdini.cook,"
            " tressel_houdini.layer, tressel_houdini.geometry, tressel_houdini.nodetype,"
            " tressel_houdini.shelf, tressel_houdini.stage, tressel_houdini.ui;"
            "heavy = {'torch', 'numpy', 'pxr', 'hou'} & set(sys.modules);"
            "assert not heavy, heavy; print(tressel_houdini.__file__)")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(HOST_PYTHON), str(folder)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(str(HOST_PYTHON))


# -- the node --------------------------------------------------------------------------------------


def test_the_node_type_is_built_once_from_its_reviewable_definition(hou, scene):
    from tressel_houdini.nodetype import NODE_TYPE, PARMS, SPEC_VERSION, ensure_node_type, hda_path

    node_type = ensure_node_type(hou)
    definition = node_type.definition()
    assert definition.version() == SPEC_VERSION
    assert [t.name() for t in definition.parmTemplateGroup().entries()] == [p.name for p in PARMS]
    assert Path(definition.libraryFilePath()) == hda_path() and hda_path().is_file()
    assert hou.node("/obj").children() == ()  # the scratch network is gone
    generate = definition.parmTemplateGroup().find("generate")
    assert "on_generate" in generate.callback
    # Hair from Photo sits beside Curl from Photo, on unless turned off (as the CLI).
    names = [p.name for p in PARMS]
    assert names.index("hair_reading") == names.index("curl") + 1
    hair_reading = definition.parmTemplateGroup().find("hair_reading")
    assert (hair_reading.label(), hair_reading.kind) == ("Hair from Photo", "toggle")
    assert "length and colour" in hair_reading.help

    hou.reset(scene)  # a later Houdini session: the saved asset is installed, not rebuilt
    assert ensure_node_type(hou).definition().version() == SPEC_VERSION
    assert hou.session().installed_files == [str(hda_path())]
    assert hou.nodeType(hou.sopNodeTypeCategory(), NODE_TYPE) is not None


def test_the_fake_refuses_what_houdini_refuses(hou, scene):
    """The fake's signatures are the documented ones: a keyword hou lacks is a TypeError."""
    with pytest.raises(TypeError):
        hou.ButtonParmTemplate("go", "Go", callback="x()")  # script_callback, in hou
    with pytest.raises(TypeError):
        hou.StringParmTemplate("f", "F", 1, default_value="")  # a tuple, in hou
    with pytest.raises(TypeError):
        hou.MenuParmTemplate("m", "M", ("a",), ("A",), default_value="a")  # an index
    with pytest.raises(TypeError):
        hou.ui.selectFile(filter="*.jpg")  # pattern, in hou
    with pytest.raises(TypeError):
        hou.node("/obj").createNode("geo", "g", exact=True)
    button = hou.ButtonParmTemplate("go", "Go", script_callback="x()",
                                    script_callback_language=hou.scriptLanguage.Python)
    assert button.callback == "x()" and button.callback_language == hou.scriptLanguage.Python
    subnet = hou.node("/obj").createNode("geo", "g").createNode("subnet", "s")
    with pytest.raises(TypeError):
        subnet.createDigitalAsset(name="t", hda_file_name=str(scene / "t.hda"), label="T")


def test_a_cook_with_no_result_yet_is_a_clean_no_op_with_a_warning(hou, scene):
    from tressel_houdini.cook import NO_RESULT

    node = new_node(None)
    node.cook(force=True)  # no exception
    assert node.warnings() == (NO_RESULT,) and node.errors() == ()
    geo = node.geometry()
    assert geo.num_points == 0 and geo.num_prims == 0


def test_generate_brings_the_layers_curves_in(hou, scene, tmp_path, daemon):
    from tressel_houdini.stage import add_to_stage

    photo = write_png(tmp_path / "portrait.png", seed=1)
    node = new_node(photo, load="both", hair_reading=0)
    assert node.name() == "tressel_portrait"
    comments: list[str] = []
    job = generate_and_wait(hou, node, on_tick=lambda: comments.append(node.comment()))

    assert job.state == "succeeded", job.error
    assert daemon.job(job.job_id).params["hair_reading"] is False  # the toggle, turned off
    assert node.errors() == () and node.warnings() == ()
    assert node.parm("layer").unexpandedString() == "$HIP/tressel/portrait_s2.usdc"
    layer = scene / "tressel" / "portrait_s2.usdc"
    assert Path(node.parm("layer").eval()) == layer
    assert any(c.startswith("Tressel: diffusion") for c in comments)
    assert node.comment() == "Tressel: portrait_s2.usdc from portrait.png"
    assert any(m.startswith("Tressel: diffusion") for m, _ in hou.session().status)

    geo = node.geometry()
    strands, guides = layer_curves(layer, "Strands"), layer_curves(layer, "Guides")
    assert len(strands["counts"]) == FAST["max_strands"] and len(guides["counts"]) == 8
    expected_counts = np.concatenate([strands["counts"], guides["counts"]])
    assert geo.polygon_counts == expected_counts.tolist()
    assert set(expected_counts.tolist()) == {8} and not any(geo.polygons_closed)
    assert geo.polygon_starts == np.concatenate([[0], np.cumsum(expected_counts)[:-1]]).tolist()
    point, prim = hou.attribType.Point, hou.attribType.Prim
    both = {key: np.concatenate([strands[key], guides[key]]) for key in strands}
    np.testing.assert_array_equal(np.array(geo.values(point, "P")).reshape(-1, 3),
                                  both["points"].reshape(-1, 3))
    np.testing.assert_array_equal(np.array(geo.values(point, "width")), both["widths"])
    np.testing.assert_array_equal(np.array(geo.values(point, "pscale")), both["widths"] / 2)
    np.testing.assert_array_equal(np.array(geo.values(prim, "uv")).reshape(-1, 2),
                                  both["uv"].reshape(-1, 2))
    np.testing.assert_array_equal(np.array(geo.values(prim, "strand_id")), both["ids"])
    assert list(geo.values(prim, "guide")) == [0] * FAST["max_strands"] + [1] * 8
    details = geo.global_values
    assert details["tressel_sampling_seed"] == 2
    assert details["tressel_layer"] == str(layer)
    assert isinstance(details["tressel_material_melanin"], float)
    assert len(details["tressel_source_imageSha256"]) == 64
    assert set(geo.calls) <= {"createPoints", "createPolygons", "addAttrib",
                              "setPointFloatAttribValuesFromString",
                              "setPrimFloatAttribValuesFromString",
                              "setPrimIntAttribValuesFromString", "setGlobalAttribValue"}
    assert geo.calls.count("createPoints") == 1 and geo.calls.count("createPolygons") == 1

    node.parm("load").set("guides")  # another view of the same layer: no new job
    assert node.geometry().polygon_counts == guides["counts"].tolist()

    lop = add_to_stage(node)  # the same layer on the Solaris stage
    assert lop.parent().path() == "/stage" and lop.type().name() == "sublayer"
    assert Path(lop.parm("filepath1").eval()) == layer


def test_cancel_cancels_the_daemon_job(hou, scene, tmp_path, daemon):
    photo = write_png(tmp_path / "long.png", seed=2)
    node = new_node(photo, steps=400)
    cancelled = []

    def cancel_once_running():
        if not cancelled and node.comment().startswith("Tressel: diffusion"):
            cancelled.append(True)
            node.parm("generate").pressButton()  # a second press while it runs starts nothing
            assert hou.session().status[-1][0] == "Tressel: already generating; press Cancel first"
            node.parm("cancel").pressButton()

    job = generate_and_wait(hou, node, on_tick=cancel_once_running)
    assert cancelled and job.state == "cancelled"
    assert daemon.job(job.job_id).state == "cancelled"
    assert node.parm("hair_reading").eval() and daemon.job(job.job_id).params["hair_reading"]
    assert node.comment() == "Tressel: cancelled"
    assert node.parm("layer").eval() == ""
    assert not (scene / "tressel").exists() or not any((scene / "tressel").iterdir())


def test_a_node_deleted_while_its_job_runs_loses_nothing(hou, scene, tmp_path):
    from tressel_houdini import node as node_module

    photo = write_png(tmp_path / "gone.png", seed=5)
    node = new_node(photo)
    node.parm("generate").pressButton()
    job = node_module._jobs[node.sessionId()]
    node.destroy()
    hou.run_event_loop(until=lambda: job.done and not hou.ui.eventLoopCallbacks())
    assert job.state == "succeeded"
    assert (scene / "tressel" / "gone_s2.usdc").is_file()
    assert hou.session().status[-1][0] == "Tressel: gone_s2.usdc from gone.png"


@pytest.mark.parametrize("case", ["no face", "corrupt photo", "no photo"])
def test_failures_leave_the_node_in_a_clear_error_state(hou, scene, tmp_path, case):
    if case == "no face":
        photo = write_png(tmp_path / "noise.png", seed=3)
        node, expected = new_node(photo, crop=1), "no face found in noise.png"
    elif case == "corrupt photo":
        photo = tmp_path / "broken.jpg"
        photo.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 4)
        node, expected = new_node(photo), "broken.jpg"
    else:
        node, expected = new_node(None), "no photo"
    if case == "no photo":
        node.parm("generate").pressButton()  # refused before any job starts
    else:
        job = generate_and_wait(hou, node)
        assert job.state == "failed"
    [error] = node.errors()
    assert expected in error
    assert node.comment() == f"Tressel error: {error}"
    assert hou.session().status[-1] == (f"Tressel error: {error}", hou.severityType.Error)
    assert node.geometry().num_points == 0
    assert not (scene / "tressel").exists() or not any((scene / "tressel").iterdir())


def test_hython_generate_blocks_and_converts_centimetres_to_metres(hou, scene, tmp_path):
    import tressel_houdini

    photo = write_png(tmp_path / "farm.png", seed=4)
    node = new_node(None)
    result = tressel_houdini.generate(
        photo, node=node, seed=5, strands=str(FAST["max_strands"]), points_per_strand=8,
        guides=0, steps=FAST["steps"], crop=False, units="cm", quiet=True)
    assert result.path == scene / "tressel" / "farm_s5.usdc"
    assert node.parm("layer").unexpandedString() == "$HIP/tressel/farm_s5.usdc"
    from pxr import Usd, UsdGeom

    assert UsdGeom.GetStageMetersPerUnit(Usd.Stage.Open(str(result.path))) == 0.01
    strands = layer_curves(result.path, "Strands")  # scaled to metres by the helper
    geo = node.geometry()
    np.testing.assert_allclose(np.array(geo.values(hou.attribType.Point, "P")).reshape(-1, 3),
                               strands["points"].reshape(-1, 3), rtol=1e-6)
    np.testing.assert_allclose(np.array(geo.values(hou.attribType.Point, "width")),
                               strands["widths"], rtol=1e-6)
    assert geo.global_values["tressel_layer_meters_per_unit"] == pytest.approx(0.01)

    node.parm("load").set("guides")  # this groom has no guides: an error that says why
    [error] = (node.geometry(), node.errors())[1]
    assert "no guide curves" in error
