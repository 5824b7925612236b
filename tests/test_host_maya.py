"""The Maya host (`hosts/maya`) against a recording fake of Maya and a real daemon process.

Maya itself is not installed here: `tests/fakes/fake_maya.py` stands in for `maya.cmds`,
`maya.mel`, `maya.utils` and mayaUSD, keeping the scene, the UI tree and the thread of every
call. Everything else is real: the module file `tressel hosts install maya` writes, the
userSetup.py Maya would run, the daemon with a tiny random bundle, the groom layer (read back
with pxr), and the Qt options dialog (PySide6, offscreen).
"""

from __future__ import annotations

import hashlib
import os
import runpy
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from daemon_support import (
    FAST,
    PYTHON,
    REPO,
    ThreadRecordingClient,
    real_daemon,
    tiny_bundle,
    wait_for,
    write_png,
)
from fakes.fake_maya import FakeMaya
from tressel import client as tressel_client
from tressel.client import Client
from tressel.hosting import GroomOptions

SCRIPTS = REPO / "hosts" / "maya" / "scripts"
TINY = {"strands": str(FAST["max_strands"]), "steps": FAST["steps"], "crop": False,
        "points_per_strand": 8, "guides": 8, "units": "cm"}
TRESSEL_CLI = [PYTHON, "-m", "tressel.cli"]


def recording(autostart: bool):
    def connect() -> Client:
        return ThreadRecordingClient(tressel_client.connect(autostart=autostart).endpoint)

    return connect


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    root = tmp_path_factory.mktemp("maya-daemon")
    bundle = tiny_bundle(root)
    process = real_daemon(root / "state", bundle)
    client = process.start()
    yield process, client, bundle
    process.stop()


def _purge_host_modules() -> None:
    for name in [n for n in sys.modules if n == "tressel_maya" or n.startswith("tressel_maya.")]:
        del sys.modules[name]


@pytest.fixture
def maya(tmp_path, monkeypatch):
    """A fresh fake Maya session with the host package importable, as the .mod would make it."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in hosts/
    fake = FakeMaya(tmp_path / "project").install()
    _purge_host_modules()
    monkeypatch.syspath_prepend(str(SCRIPTS))
    ThreadRecordingClient.threads = []
    yield fake
    fake.uninstall()
    _purge_host_modules()


@pytest.fixture
def host(maya, daemon, monkeypatch):
    """The controller wired to the module's daemon through thread-recording clients."""
    process, _, _ = daemon
    monkeypatch.setenv("TRESSEL_DAEMON_DIR", str(process.state_dir))
    from tressel_maya import controller

    monkeypatch.setattr(controller, "CONNECT", recording(autostart=True))
    monkeypatch.setattr(controller, "CONNECT_FOR_LIST", recording(autostart=False))
    dialogs: list[FakeDialog] = []
    monkeypatch.setattr(controller, "DIALOG",
                        lambda photo, options, on_accept: dialogs.append(
                            FakeDialog(photo, options, on_accept)) or dialogs[-1])
    return controller, dialogs


class FakeDialog:
    """The options dialog as the controller sees it; the test presses Generate."""

    def __init__(self, photo, options, on_accept) -> None:
        self.photo, self.options, self.on_accept = photo, options, on_accept
        self.bundles: tuple | None = None

    def set_bundles(self, names, default, note) -> None:
        self.bundles = (names, default, note)


def run_idle_loop(maya: FakeMaya, session, timeout: float = 180.0, on_tick=None) -> None:
    """Be Maya's main thread: run deferred calls until the session has finished."""
    deadline = time.monotonic() + timeout
    while not session.finished:
        assert time.monotonic() < deadline, "the groom did not finish"
        maya.drain()
        if on_tick:
            on_tick()
        time.sleep(0.01)
    maya.drain()


def assert_threads_kept_apart(maya: FakeMaya) -> None:
    assert maya.off_main_thread() == [], "maya.* called from a worker thread"
    assert ThreadRecordingClient.threads, "the daemon was never asked"
    assert threading.current_thread().name not in ThreadRecordingClient.threads


def read_mod(path: Path) -> tuple[Path, dict[str, str], list[str]]:
    """What Maya takes from a .mod file: the module folder, variables set, paths appended."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("+ Tressel ")
    module = Path(lines[0].split(" ", 3)[3])
    assigned, appended = {}, []
    for line in lines[1:]:
        assert line.strip(), "a blank line would stop Maya reading the module's entries"
        name, value = line.split("=", 1)
        if name.endswith("+"):
            appended.append(value)
        else:
            assigned[name] = value
    return module, assigned, appended


def maya_startup(maya: FakeMaya, mod_file: Path, monkeypatch) -> None:
    """Start a Maya session on an installed module: its paths, its variables, userSetup.py."""
    module, assigned, appended = read_mod(mod_file)
    for name, value in assigned.items():
        monkeypatch.setenv(name, value)
    for folder in [module / "scripts", *map(Path, appended)]:
        if str(folder) not in sys.path:
            monkeypatch.syspath_prepend(str(folder))
    runpy.run_path(str(module / "scripts" / "userSetup.py"), run_name="__main__")
    maya.drain()  # Maya goes idle once its UI is up: the deferred shelf build runs


# -- install, start-up, shelf ------------------------------------------------------------------


def test_install_startup_twice_gives_one_shelf_and_uninstall_removes_the_module(
        maya, tmp_path, monkeypatch):
    modules = tmp_path / "maya_app" / "modules"
    env = {**os.environ, "TRESSEL_HOSTS_PYTHON": str(tmp_path / "hosts_python")}
    monkeypatch.setenv("TRESSEL_HOSTS_PYTHON", env["TRESSEL_HOSTS_PYTHON"])
    out = subprocess.run([*TRESSEL_CLI, "hosts", "install", "maya", "--dir", str(modules)],
                         env=env, capture_output=True, text=True, check=True)
    mod_file = modules / "tressel.mod"
    assert str(mod_file) in out.stdout
    module, assigned, appended = read_mod(mod_file)
    assert module == (REPO / "hosts" / "maya").resolve()
    assert appended == [str(tmp_path / "hosts_python")]
    assert (tmp_path / "hosts_python" / "tressel" / "client.py").is_file()
    assert "daemon" in assigned["TRESSEL_DAEMON_COMMAND"]

    status = subprocess.run([*TRESSEL_CLI, "hosts", "status", "--dir", str(modules)], env=env,
                            capture_output=True, text=True, check=True).stdout
    assert f"{mod_file}  ->  {module}  [ok]" in status

    for _ in range(2):  # Maya started twice in one session's prefs: still one shelf
        maya_startup(maya, mod_file, monkeypatch)
    assert maya.shelves() == ["Tressel"]
    (button,) = maya.shelf_buttons("Tressel")
    assert button.props["command"] == "import tressel_maya; tressel_maya.show()"
    assert button.props["sourceType"] == "python"
    icon = Path(button.props["image"])
    assert icon.is_file() and icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert icon.parent == module / "icons"
    assert maya.nodes.keys() == {"time1"}  # start-up leaves the scene alone

    maya.fire("quitApplication")  # before Maya saves shelves: ours is gone, never saved
    assert maya.shelves() == []

    out = subprocess.run([*TRESSEL_CLI, "hosts", "install", "maya", "--dir", str(modules),
                          "--uninstall"], env=env, capture_output=True, text=True, check=True)
    assert f"removed {mod_file}" in out.stdout and not mod_file.exists()
    status = subprocess.run([*TRESSEL_CLI, "hosts", "status", "--dir", str(modules)], env=env,
                            capture_output=True, text=True, check=True).stdout
    assert str(mod_file) not in status


def test_modules_folder_per_platform_and_foreign_mod_files_left_alone(tmp_path, monkeypatch):
    from tressel.hosting import install_maya

    monkeypatch.setattr(install_maya.Path, "home", lambda: Path("/home/artist"))
    for platform, expected in [("linux", "/home/artist/maya/modules"),
                               ("darwin", "/home/artist/Library/Preferences/Autodesk/maya/modules"),
                               ("win32", "/home/artist/Documents/maya/modules")]:
        monkeypatch.setattr(install_maya.sys, "platform", platform)
        assert install_maya.INSTALLER.default_dir() == Path(expected)
    other = tmp_path / "tressel.mod"
    other.write_text("+ PLATFORM:linux SomeoneElse 2.0 /opt/else\n", encoding="utf-8")
    assert install_maya.parse_module(other) == ("SomeoneElse", Path("/opt/else"))
    assert install_maya.INSTALLER.find(tmp_path) == []
    assert install_maya.INSTALLER.uninstall(tmp_path) == [] and other.exists()
    spaced = tmp_path / "spaced.mod"
    spaced.write_text("+ Tressel 0.1.0 /Users/a b/hosts/maya\n", encoding="utf-8")
    assert install_maya.parse_module(spaced) == ("Tressel", Path("/Users/a b/hosts/maya"))


def test_startup_in_mayapy_builds_no_shelf(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    fake = FakeMaya(tmp_path, batch=True).install()
    try:
        _purge_host_modules()
        monkeypatch.syspath_prepend(str(SCRIPTS))
        runpy.run_path(str(SCRIPTS / "userSetup.py"), run_name="__main__")
        fake.drain()
        assert fake.shelves() == []
    finally:
        fake.uninstall()
        _purge_host_modules()


def test_host_package_imports_in_a_bare_python_without_heavy_libraries(tmp_path, monkeypatch):
    from tressel.hosting.install import prepare_hosts_python

    monkeypatch.setenv("TRESSEL_HOSTS_PYTHON", str(tmp_path / "pylib"))
    pylib = prepare_hosts_python()
    code = ("import sys; sys.path[:0] = sys.argv[1:3];"
            "import tressel_maya, tressel_maya.controller, tressel_maya.scene, tressel_maya.qt;"
            "heavy = {'torch', 'numpy', 'pxr', 'maya', 'PySide6', 'PySide2'} & set(sys.modules);"
            "assert not heavy, heavy; print(tressel_maya.controller.__file__)")
    out = subprocess.run([sys.executable, "-I", "-B", "-c", code, str(SCRIPTS), str(pylib)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(SCRIPTS / "tressel_maya" / "controller.py")


# -- the button's whole flow -------------------------------------------------------------------


def test_button_flow_brings_in_a_live_proxy_with_provenance_and_guides(host, maya, daemon,
                                                                       tmp_path):
    from pxr import Usd, UsdGeom
    from tressel.usd import read_groom

    controller, dialogs = host
    photo = write_png(tmp_path / "portrait.png", seed=11)
    controller.show()
    (dialog,) = dialogs
    assert dialog.options == GroomOptions() and dialog.options.units == "cm"
    wait_for(lambda: (maya.drain(), dialog.bundles)[1])  # filled from a thread, delivered idle
    names, default, note = dialog.bundles
    assert names == ["tiny-random"] and default == "tiny-random" and note == ""

    options = GroomOptions(seed=5, import_guides=True, hair_reading=False, **TINY)
    dialog.on_accept(str(photo), options)  # the artist presses Generate
    session = controller.active()
    assert session is not None and not session.finished  # Maya is free while it runs
    run_idle_loop(maya, session)

    assert session.error is None and not session.cancelled, session.error
    assert daemon[1].job(session.job.job_id).params["hair_reading"] is False
    assert maya.dialogs == []
    layer = maya.workspace / "usd" / "tressel" / "portrait_s5.usdc"
    transform, shape = "tressel_portrait", "tressel_portraitShape"
    assert session.shape == f"|{transform}|{shape}"
    assert maya.nodes[shape].type == "mayaUsdProxyShape" and maya.nodes[shape].parent == transform
    assert maya.nodes[shape].attrs["filePath"] == str(layer)
    assert ("time1.outTime", f"{shape}.time") in maya.connections
    assert "mayaUsdPlugin" in maya.loaded_plugins
    hair = read_groom(layer)
    assert hair.num_strands == FAST["max_strands"] and hair.positions.shape[1] == 8

    attrs = maya.nodes[transform].attrs
    assert {k for k in maya.nodes[transform].dynamic} >= {
        "tresselPhotoSha256", "tresselBundle", "tresselBundleHash", "tresselSeed", "tresselLayer"}
    assert all(isinstance(attrs[k], str) for k in maya.nodes[transform].dynamic)
    assert attrs["tresselPhotoSha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert attrs["tresselSeed"] == "5" and attrs["tresselBundle"] == "tiny-random"
    assert attrs["tresselBundleHash"] == daemon[2].content_hash
    assert hair.provenance.seed == 5

    stage = Usd.Stage.Open(str(layer))
    guide_count = len(UsdGeom.BasisCurves(stage.GetPrimAtPath("/Groom/Guides"))
                      .GetCurveVertexCountsAttr().Get())
    assert guide_count == 8
    (group,) = maya.children(transform, type="transform")
    assert group == f"{transform}_guides"
    curves = [n for n, v in maya.nodes.items() if v.type == "nurbsCurve"]
    assert len(curves) == session.guides == guide_count
    assert all(maya.full_path(c).startswith(f"|{transform}|{group}|") for c in curves)
    assert maya.undo_depth == 0 and maya.selection == [transform]

    # Progress went to Maya's main progress bar, per phase and diffusion step, and ended.
    statuses = [entry["status"] for entry in maya.progress_log]
    assert any("diffusion" in s for s in statuses)
    assert maya.ui["MainProgressBar"].props["active"] is False
    # The options are remembered for the next session.
    assert controller.saved_options() == (str(photo), options)
    assert_threads_kept_apart(maya)

    # Same photo and seed again: a second layer and node, the first groom untouched.
    controller.start(str(photo), options)
    run_idle_loop(maya, controller.active())
    assert maya.nodes["tressel_portrait1Shape"].attrs["filePath"] == str(
        layer.with_name("portrait_s5_2.usdc"))
    assert maya.nodes[shape].attrs["filePath"] == str(layer)


def test_the_fake_refuses_what_maya_refuses(maya, tmp_path):
    """The fake models the documented flags: a wrong flag or value fails here as in Maya
    (TypeError "Invalid flag" from maya.cmds), so a host passing one cannot pass the tests."""
    from pxr import Usd, UsdGeom

    cmds = maya.cmds
    with pytest.raises(TypeError):
        cmds.progressBar("MainProgressBar", edit=True, interruptable=True)  # isInterruptable
    with pytest.raises(TypeError):
        cmds.shelfButton(parent="ShelfLayout", label="x", sourcetype="python")
    with pytest.raises(RuntimeError):
        cmds.shelfButton(parent="ShelfLayout", label="x", sourceType="Python")
    with pytest.raises(RuntimeError):
        cmds.confirmDialog(title="t", message="m", icon="error")  # critical, in Maya
    with pytest.raises(RuntimeError):
        cmds.scriptJob(event=["mayaExiting", lambda: None])  # quitApplication, in Maya
    with pytest.raises(TypeError):
        cmds.about(batchMode=True)
    cmds.loadPlugin("mayaUsdPlugin", quiet=True)
    layer = tmp_path / "g.usda"
    stage = Usd.Stage.CreateNew(str(layer))
    UsdGeom.Xform.Define(stage, "/Groom")
    curves = UsdGeom.BasisCurves.Define(stage, "/Groom/Guides")
    curves.CreateTypeAttr(UsdGeom.Tokens.linear)
    curves.CreateCurveVertexCountsAttr([2, 2])
    curves.CreatePointsAttr([(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)])
    stage.SetDefaultPrim(stage.GetPrimAtPath("/Groom"))
    stage.Save()
    with pytest.raises(TypeError):
        cmds.mayaUSDImport(file=str(layer), primPath="/Groom/Guides", shadingMode="none")
    with pytest.raises(TypeError):
        cmds.mayaUSDImport(file=str(layer), prim="/Groom/Guides")
    with pytest.raises(RuntimeError):
        cmds.mayaUSDImport(file=str(layer), shadingMode=[["off", "default"]])
    # Documented: the highest imported node comes back; children nest under their parent prim.
    assert cmds.mayaUSDImport(file=str(layer), shadingMode=[["none", "default"]]) == ["|Groom"]
    assert maya.full_path("GuidesShape1").startswith("|Groom|Guides|")
    assert len(maya.children("Guides", type="nurbsCurve")) == 2


def test_escape_cancels_the_daemon_job_and_changes_nothing(host, maya, daemon, tmp_path):
    controller, _ = host
    _, daemon_client, _ = daemon
    photo = write_png(tmp_path / "long.png", seed=12)
    before = maya.snapshot()
    session = controller.start(str(photo), GroomOptions(**{**TINY, "steps": 400}))

    def press_escape_once_diffusing() -> None:
        bar = maya.ui["MainProgressBar"].props
        if "diffusion" in bar.get("status", "") and not maya.escape_pressed:
            maya.escape_pressed = True

    run_idle_loop(maya, session, on_tick=press_escape_once_diffusing)
    assert session.cancelled and session.shape is None
    assert daemon_client.job(session.job.job_id).state == "cancelled"
    assert maya.snapshot() == before
    assert [d["icon"] for d in maya.dialogs] == ["information"]
    assert "cancelled" in maya.dialogs[0]["message"]
    folder = maya.workspace / "usd" / "tressel"
    assert not folder.exists() or not any(folder.iterdir())
    assert_threads_kept_apart(maya)


def test_button_while_a_job_runs_offers_to_cancel_it(host, maya, daemon, tmp_path):
    controller, dialogs = host
    _, daemon_client, _ = daemon
    photo = write_png(tmp_path / "second.png", seed=13)
    session = controller.start(str(photo), GroomOptions(**{**TINY, "steps": 400}))
    wait_for(lambda: (maya.drain(), session.job.job_id)[1])  # submitted, running
    maya.dialog_answers = ["Cancel it"]
    assert controller.show() is None and dialogs == []
    run_idle_loop(maya, session)
    assert session.cancelled
    assert daemon_client.job(session.job.job_id).state == "cancelled"


@pytest.mark.parametrize("case", ["no_face", "corrupt"])
def test_failures_show_the_daemons_message_and_change_nothing(host, maya, tmp_path, case):
    controller, _ = host
    if case == "no_face":
        import skimage.data
        from helpers import write_image

        photo = write_image(tmp_path / "coffee.jpg", skimage.data.coffee())  # a real photo
        options = GroomOptions(**{**TINY, "crop": True})
        expected = "no face found in coffee.jpg"
    else:
        photo = tmp_path / "broken.jpg"
        photo.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 4)
        options = GroomOptions(**TINY)
        expected = "broken.jpg"
    before = maya.snapshot()
    session = controller.start(str(photo), options)
    run_idle_loop(maya, session)

    assert session.shape is None and expected in session.error
    (shown,) = maya.dialogs
    assert shown["icon"] == "critical" and expected in shown["message"]
    assert maya.snapshot() == before
    folder = maya.workspace / "usd" / "tressel"
    assert not folder.exists() or not any(folder.iterdir())
    assert maya.ui["MainProgressBar"].props["active"] is False
    assert_threads_kept_apart(maya)


def test_missing_mayausd_is_a_dialog_and_the_scene_is_rolled_back(host, maya, tmp_path):
    controller, _ = host
    maya.available_plugins.clear()
    before = maya.snapshot()
    session = controller.start(str(write_png(tmp_path / "p.png", seed=14)), GroomOptions(**TINY))
    run_idle_loop(maya, session)
    (shown,) = maya.dialogs
    assert "mayaUsdPlugin" in shown["message"] and "p_s0.usdc" in shown["message"]
    assert maya.snapshot() == before


def test_bad_options_are_refused_before_anything_runs(host, maya, tmp_path):
    controller, _ = host
    assert controller.start(str(tmp_path / "missing.jpg"), GroomOptions()) is None
    assert "missing.jpg not found" in maya.dialogs[-1]["message"]
    photo = write_png(tmp_path / "ok.png")
    assert controller.start(str(photo), GroomOptions(units="inch")) is None
    assert "units" in maya.dialogs[-1]["message"]
    assert controller.start(str(photo), GroomOptions(guides=0, import_guides=True)) is None
    assert "guides" in maya.dialogs[-1]["message"]
    assert ThreadRecordingClient.threads == []
    maya.option_vars["tresselGroomOptions"] = "{not json"
    assert controller.saved_options()[1] == GroomOptions()


# -- scripting entry, daemon started on demand -------------------------------------------------


def test_generate_starts_a_stopped_daemon_and_returns_the_proxy_shape(maya, daemon, tmp_path,
                                                                      monkeypatch):
    from tressel.hosting.install import daemon_command_line

    _, _, bundle = daemon
    state = tmp_path / "fresh-state"
    monkeypatch.setenv("TRESSEL_DAEMON_DIR", str(state))
    monkeypatch.setenv("TRESSEL_DAEMON_COMMAND", daemon_command_line())  # what the .mod sets
    monkeypatch.setenv("TRESSEL_MODEL", str(bundle.path))
    monkeypatch.setenv("TRESSEL_MODELS_DIR", str(tmp_path / "models"))
    assert tressel_client.read_endpoint(state) is None
    import tressel_maya

    try:
        shape = tressel_maya.generate(str(write_png(tmp_path / "scripted.png", seed=15)),
                                      seed=2, **TINY)
        endpoint = tressel_client.read_endpoint(state)
        assert endpoint is not None  # a daemon was started for this state folder
        assert shape == "|tressel_scripted|tressel_scriptedShape"
        layer = Path(maya.nodes["tressel_scriptedShape"].attrs["filePath"])
        assert layer == maya.workspace / "usd" / "tressel" / "scripted_s2.usdc"
        from tressel.usd import read_groom

        assert read_groom(layer).num_strands == FAST["max_strands"]
        with pytest.raises(Exception, match="unknown option"):
            tressel_maya.generate("x.png", colour="red")
    finally:
        endpoint = tressel_client.read_endpoint(state)
        if endpoint is not None:
            Client(endpoint).shutdown()
            wait_for(lambda: not _alive(endpoint.pid), timeout=60)


def _alive(pid: int) -> bool:
    try:  # the autostarted daemon is this process's child: reap it, or it lingers as a zombie
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the Qt options dialog -----------------------------------------------------------------


def test_qt_options_dialog_round_trips_options_and_refuses_bad_ones(monkeypatch, tmp_path):
    # QtWidgets needs the system's GL and font libraries, which a bare container may lack.
    pytest.importorskip("PySide6.QtWidgets", reason="PySide6 widgets cannot load here")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(SCRIPTS))
    _purge_host_modules()
    from PySide6 import QtWidgets
    from tressel_maya import qt

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    accepted = []
    start = GroomOptions(seed=7, strands="0.5x", guides=300, import_guides=True,
                         hair_reading=False)
    handle = qt.build_options_dialog("/shots/face.jpg", start,
                                     lambda p, o: accepted.append((p, o)))
    fields = handle.fields
    assert handle.values() == ("/shots/face.jpg", start)
    assert not fields.hair_reading.isChecked() and fields.curl.isChecked()
    assert "measure the hair in the photo" in fields.hair_reading.text()
    handle.set_bundles(["tiny-random", "difflocks"], "tiny-random", "")
    assert fields.bundle.count() == 3

    fields.strands.setText("lots")
    fields.generate.click()
    assert accepted == [] and "strands" in fields.error.text()

    fields.strands.setText("20000")
    fields.bundle.setCurrentText("difflocks")
    fields.units.setCurrentText("m")
    fields.steps.setValue(12)
    fields.generate.click()
    assert accepted == [("/shots/face.jpg", GroomOptions(
        seed=7, strands="20000", guides=300, import_guides=True, bundle="difflocks", units="m",
        steps=12, hair_reading=False))]
    assert accepted[0][1].submit_kwargs()["params"]["hair_reading"] is False
    fields.hair_reading.setChecked(True)  # the artist turns it back on
    assert handle.values()[1].hair_reading is True
    app.processEvents()
    _purge_host_modules()


def test_install_from_a_wheel_points_maya_at_the_wheels_host_folder(tmp_path):
    """A non-editable install: the .mod must point into the installed package, not a checkout."""
    import zipfile

    subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel"), str(REPO)], check=True, capture_output=True)
    site = tmp_path / "site"
    zipfile.ZipFile(next((tmp_path / "wheel").glob("tressel-*.whl"))).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site),
           "TRESSEL_HOSTS_PYTHON": str(tmp_path / "hosts_python")}
    modules = tmp_path / "modules"
    subprocess.run([PYTHON, "-m", "tressel.cli", "hosts", "install", "maya", "--dir",
                    str(modules)], env=env, check=True, capture_output=True, cwd=tmp_path)
    module, _, appended = read_mod(modules / "tressel.mod")
    assert module == (site / "tressel" / "data" / "hosts" / "maya").resolve()
    assert (module / "icons" / "tressel.png").is_file()
    assert (Path(appended[0]) / "tressel").resolve() == (site / "tressel").resolve()
    code = ("import sys; sys.path[:0] = sys.argv[1:3]; import tressel_maya.controller, tressel;"
            "print(tressel.__file__)")
    out = subprocess.run([sys.executable, "-I", "-B", "-c", code, str(module / "scripts"),
                          appended[0]], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(appended[0])
