"""A small, stateful, recording stand-in for `maya.cmds`, `maya.mel`, `maya.utils` and mayaUSD.

It keeps what the Tressel host touches (nodes with attributes and connections, the UI tree of
shelves and buttons, optionVars, the main progress bar, plug-ins, scriptJobs, dialogs) and
records every call with the thread it came from. `maya.utils.executeDeferred` queues calls; the
test drains them on its own (main) thread as Maya's idle loop would. mayaUSD is the
`mayaUsdPlugin` plug-in: once loaded, `mayaUsdProxyShape` nodes can be made and
`cmds.mayaUSDImport` reads the USD file with `pxr`, making one NURBS curve per curve of the
prim it is given, as mayaUSD's curve reader does.

Maya's own behaviour is only approximated (flat, globally unique node names; no DG evaluation).
What a call does here is what the Tressel host relies on, and nothing more.
"""

from __future__ import annotations

import copy
import queue
import re
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAIN_PROGRESS_BAR = "MainProgressBar"
# Flags as Autodesk's command reference documents them (a subset: what a host may use). Maya's
# Python commands raise TypeError ("Invalid flag") for any other keyword; so does this fake.
PROGRESS_BAR_FLAGS = {"beginProgress", "endProgress", "isInterruptable", "isCancelled", "status",
                      "minValue", "maxValue", "progress", "step", "isMainProgressBar",
                      "annotation"}
SHELF_BUTTON_FLAGS = {"label", "annotation", "image", "image1", "command", "sourceType",
                      "imageOverlayLabel", "doubleClickCommand", "noDefaultPopup", "style",
                      "width", "height", "enableCommandRepeat", "flat"}
CONFIRM_DIALOG_FLAGS = {"defaultButton", "cancelButton", "dismissString", "icon", "parent",
                        "messageAlign", "backgroundColor"}
CONFIRM_DIALOG_ICONS = {"question", "information", "warning", "critical"}
# scriptJob -listEvents includes these (among many): the ones a host may hook.
SCRIPT_JOB_EVENTS = {"quitApplication", "SceneOpened", "NewSceneOpened", "SceneSaved",
                     "idle", "timeChanged", "SelectionChanged"}
# mayaUSDImport's flags (maya-usd lib/mayaUsd/commands/Readme.md, MayaUSDImportCommand).
MAYA_USD_IMPORT_FLAGS = {"apiSchema", "chaser", "chaserArgs", "excludePrimvar", "file",
                         "frameRange", "importInstances", "jobContext", "metadata", "parent",
                         "primPath", "preferredMaterial", "readAnimData", "shadingMode",
                         "useAsAnimationCache", "verbose", "variant", "importUSDZTextures",
                         "importUSDZTexturesFilePath"}
SHADING_MODES = {"none", "displayColor", "pxrRis", "useRegistry"}


def _check_flags(command: str, given: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise TypeError(f"{command}: Invalid flag '{unknown[0]}'")
SHELF_TOP_LEVEL = "ShelfLayout"
PROXY_PLUGIN = "mayaUsdPlugin"


@dataclass
class Call:
    module: str  # "cmds", "mel" or "utils"
    name: str
    thread: str
    on_main_thread: bool
    args: tuple
    kwargs: dict


@dataclass
class Node:
    name: str
    type: str
    parent: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    dynamic: set[str] = field(default_factory=set)


@dataclass
class Control:
    name: str
    type: str
    parent: str | None
    props: dict[str, Any] = field(default_factory=dict)


NODE_TYPES: dict[str, dict[str, Any]] = {
    "transform": {"translate": (0.0, 0.0, 0.0), "visibility": True},
    "time": {"outTime": 1.0},
    "nurbsCurve": {"degree": 1, "spans": 0, "cv": ()},
}
PLUGIN_NODE_TYPES = {
    PROXY_PLUGIN: {"mayaUsdProxyShape": {"filePath": "", "primPath": "", "time": 0.0,
                                         "loadPayloads": True}},
}


class FakeMaya:
    def __init__(self, workspace: Path, batch: bool = False,
                 available_plugins: tuple[str, ...] = (PROXY_PLUGIN,)) -> None:
        self.workspace = Path(workspace)
        self.batch = batch
        self.available_plugins = set(available_plugins)
        self.main_thread = threading.current_thread()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._deferred: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        self.nodes: dict[str, Node] = {"time1": Node("time1", "time", attrs={"outTime": 1.0})}
        self.connections: set[tuple[str, str]] = set()
        self.ui: dict[str, Control] = {
            SHELF_TOP_LEVEL: Control(SHELF_TOP_LEVEL, "shelfTabLayout", None),
            MAIN_PROGRESS_BAR: Control(MAIN_PROGRESS_BAR, "progressBar", None,
                                       {"active": False, "progress": 0, "maxValue": 100,
                                        "status": ""}),
        }
        self.option_vars: dict[str, Any] = {}
        self.loaded_plugins: set[str] = set()
        self.script_jobs: dict[int, tuple[str, Callable[[], Any]]] = {}
        self.dialogs: list[dict[str, Any]] = []
        self.dialog_answers: list[str] = []  # next confirmDialog answers (default: 1st button)
        self.progress_log: list[dict[str, Any]] = []  # every edit of the main progress bar
        self.escape_pressed = False  # the artist pressed Esc while the bar is interruptable
        self.selection: list[str] = []
        self.undo_depth = 0
        self._counter = 0
        self.cmds = self._module("cmds", self._cmds_functions())
        self.mel = self._module("mel", {"eval": self._mel_eval})
        self.utils = self._module("utils", {"executeDeferred": self._execute_deferred})
        self.maya = types.ModuleType("maya")
        self.maya.__path__ = []  # a package, so `from maya import cmds` works
        self.maya.cmds, self.maya.mel, self.maya.utils = self.cmds, self.mel, self.utils
        self._saved_modules: dict[str, Any] = {}

    # -- installation in sys.modules ---------------------------------------------------------

    def install(self) -> FakeMaya:
        for name, module in self._modules().items():
            self._saved_modules[name] = sys.modules.get(name)
            sys.modules[name] = module
        return self

    def uninstall(self) -> None:
        for name, previous in self._saved_modules.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous

    def _modules(self) -> dict[str, types.ModuleType]:
        return {"maya": self.maya, "maya.cmds": self.cmds, "maya.mel": self.mel,
                "maya.utils": self.utils}

    def _module(self, name: str, functions: dict[str, Callable[..., Any]]) -> types.ModuleType:
        module = types.ModuleType(f"maya.{name}")
        for fn_name, fn in functions.items():
            setattr(module, fn_name, self._recorded(name, fn_name, fn))
        if name == "cmds":
            # mayaUSD's command exists only while its plug-in is loaded, as in Maya.
            module.__getattr__ = self._plugin_command
        return module

    def _recorded(self, module: str, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            thread = threading.current_thread()
            with self._lock:
                self.calls.append(Call(module, name, thread.name, thread is self.main_thread,
                                       args, kwargs))
            return fn(*args, **kwargs)

        call.__name__ = name
        return call

    def _plugin_command(self, name: str) -> Any:
        if name == "mayaUSDImport" and PROXY_PLUGIN in self.loaded_plugins:
            return self._recorded("cmds", name, self._maya_usd_import)
        raise AttributeError(f"module 'maya.cmds' has no attribute {name!r}")

    # -- what tests look at --------------------------------------------------------------------

    def drain(self) -> int:
        """Run deferred calls as Maya's idle loop would (call from the main thread)."""
        assert threading.current_thread() is self.main_thread
        count = 0
        while True:
            try:
                fn = self._deferred.get_nowait()
            except queue.Empty:
                return count
            count += 1
            fn()

    def fire(self, event: str) -> None:
        for job_event, fn in list(self.script_jobs.values()):
            if job_event == event:
                fn()

    def off_main_thread(self) -> list[Call]:
        """Calls made from another thread than Maya's main one, except executeDeferred."""
        with self._lock:
            return [c for c in self.calls
                    if not c.on_main_thread and c.name != "executeDeferred"]

    def snapshot(self) -> tuple:
        """The scene (nodes, attributes, connections): equal snapshots, unchanged scene."""
        return (copy.deepcopy({n: (v.type, v.parent, v.attrs) for n, v in self.nodes.items()}),
                set(self.connections))

    def children(self, name: str, type: str | None = None) -> list[str]:
        return [n for n, v in self.nodes.items() if v.parent == name
                and (type is None or v.type == type)]

    def shelf_buttons(self, shelf: str) -> list[Control]:
        return [c for c in self.ui.values() if c.parent == shelf and c.type == "shelfButton"]

    def shelves(self) -> list[str]:
        return [c.name for c in self.ui.values() if c.type == "shelfLayout"]

    # -- maya.utils and maya.mel ---------------------------------------------------------------

    def _execute_deferred(self, fn: Callable[..., Any] | str, *args: Any) -> None:
        if isinstance(fn, str):
            source = fn
            self._deferred.put(lambda: exec(source, {"__name__": "__main__"}))  # noqa: S102 (as Maya)
        else:
            self._deferred.put(lambda: fn(*args))

    def _mel_eval(self, expression: str) -> Any:
        known = {"$tmp=$gMainProgressBar": MAIN_PROGRESS_BAR,
                 "$tmp=$gShelfTopLevel": SHELF_TOP_LEVEL}
        if expression.replace(" ", "") in known:
            return known[expression.replace(" ", "")]
        raise RuntimeError(f"fake mel cannot evaluate {expression!r}")

    # -- maya.cmds -----------------------------------------------------------------------------

    def _cmds_functions(self) -> dict[str, Callable[..., Any]]:
        return {name[len("_cmd_"):]: getattr(self, name) for name in dir(self)
                if name.startswith("_cmd_")}

    def _cmd_about(self, batch: bool = False) -> Any:
        return self.batch

    def _cmd_workspace(self, query: bool = False, rootDirectory: bool = False) -> str:
        assert query and rootDirectory
        return self.workspace.as_posix() + "/"

    def _cmd_optionVar(self, exists: str | None = None, query: str | None = None,
                       stringValue: tuple[str, str] | None = None,
                       remove: str | None = None) -> Any:
        if exists is not None:
            return exists in self.option_vars
        if query is not None:
            return self.option_vars.get(query, 0)  # Maya answers 0 for a missing optionVar
        if stringValue is not None:
            name, value = stringValue
            self.option_vars[name] = str(value)
            return None
        if remove is not None:
            self.option_vars.pop(remove, None)
            return None
        raise RuntimeError("optionVar: no flag given")

    def _cmd_pluginInfo(self, name: str, query: bool = False, loaded: bool = False) -> bool:
        return name in self.loaded_plugins

    def _cmd_loadPlugin(self, name: str, quiet: bool = False) -> list[str]:
        if name not in self.available_plugins:
            raise RuntimeError(f"Plug-in, \"{name}\", was not found on MAYA_PLUG_IN_PATH.")
        self.loaded_plugins.add(name)
        return [name]

    def _node_types(self) -> dict[str, dict[str, Any]]:
        types_ = dict(NODE_TYPES)
        for plugin in self.loaded_plugins:
            types_.update(PLUGIN_NODE_TYPES.get(plugin, {}))
        return types_

    def _unique(self, name: str) -> str:
        if name not in self.nodes:
            return name
        stem = re.sub(r"\d+$", "", name)
        index = 1
        while f"{stem}{index}" in self.nodes:
            index += 1
        return f"{stem}{index}"

    def _cmd_createNode(self, node_type: str, name: str | None = None,
                        parent: str | None = None, skipSelect: bool = False) -> str:
        known = self._node_types()
        if node_type not in known:
            raise RuntimeError(f"Unknown object type: {node_type}")
        if parent is not None and parent not in self.nodes:
            raise RuntimeError(f"No object matches name: {parent}")
        self._counter += 1
        unique = self._unique(name or f"{node_type}{self._counter}")
        self.nodes[unique] = Node(unique, node_type, parent, dict(known[node_type]))
        return unique

    def _plug(self, plug: str) -> tuple[Node, str]:
        node, _, attr = plug.partition(".")
        if node not in self.nodes:
            raise RuntimeError(f"No object matches name: {plug}")
        if attr not in self.nodes[node].attrs:
            raise RuntimeError(f"setAttr: No object matches name: {plug}")
        return self.nodes[node], attr

    def _cmd_setAttr(self, plug: str, *values: Any, type: str | None = None) -> None:
        node, attr = self._plug(plug)
        if type == "string" and not (len(values) == 1 and isinstance(values[0], str)):
            raise RuntimeError(f"setAttr {plug}: a string attribute takes one string")
        if any(dst == plug for _, dst in self.connections):
            raise RuntimeError(f"setAttr: The attribute '{plug}' is locked or connected")
        node.attrs[attr] = values[0] if len(values) == 1 else values

    def _cmd_getAttr(self, plug: str) -> Any:
        node, attr = self._plug(plug)
        return node.attrs[attr]

    def _cmd_addAttr(self, node: str, longName: str, dataType: str | None = None,
                     attributeType: str | None = None) -> None:
        if node not in self.nodes:
            raise RuntimeError(f"No object matches name: {node}")
        if longName in self.nodes[node].attrs:
            raise RuntimeError(f"Found no attribute or node, or multiple: {node}.{longName} "
                               "already exists")
        self.nodes[node].attrs[longName] = "" if dataType == "string" else 0
        self.nodes[node].dynamic.add(longName)

    def _cmd_connectAttr(self, source: str, destination: str, force: bool = False) -> None:
        self._plug(source)
        self._plug(destination)
        if any(dst == destination for _, dst in self.connections) and not force:
            raise RuntimeError(f"connectAttr: {destination} already has an incoming connection")
        self.connections.add((source, destination))

    def _cmd_objExists(self, name: str) -> bool:
        return name.rsplit("|", 1)[-1] in self.nodes

    def _descendants(self, name: str) -> list[str]:
        found = []
        for child in self.children(name):
            found.append(child)
            found.extend(self._descendants(child))
        return found

    def _cmd_delete(self, *names: str) -> None:
        for name in names:
            name = name.rsplit("|", 1)[-1]
            if name not in self.nodes:
                raise RuntimeError(f"No object matches name: {name}")
            for gone in [name, *self._descendants(name)]:
                self.nodes.pop(gone, None)
                self.connections = {(s, d) for s, d in self.connections
                                    if s.split(".")[0] != gone and d.split(".")[0] != gone}
                if gone in self.selection:
                    self.selection.remove(gone)

    def full_path(self, name: str) -> str:
        parts = []
        current: str | None = name
        while current is not None:
            parts.append(current)
            current = self.nodes[current].parent
        return "|" + "|".join(reversed(parts))

    def _cmd_ls(self, *names: str, long: bool = False, type: str | None = None) -> list[str]:
        chosen = [n.rsplit("|", 1)[-1] for n in names] if names else list(self.nodes)
        chosen = [n for n in chosen if n in self.nodes
                  and (type is None or self.nodes[n].type == type)]
        return [self.full_path(n) if long else n for n in chosen]

    def _cmd_listRelatives(self, name: str, allDescendents: bool = False,
                           children: bool = False, type: str | None = None,
                           fullPath: bool = False) -> list[str] | None:
        name = name.rsplit("|", 1)[-1]
        found = self._descendants(name) if allDescendents else self.children(name)
        found = [n for n in found if type is None or self.nodes[n].type == type]
        return [self.full_path(n) if fullPath else n for n in found] or None

    def _cmd_select(self, *names: str, replace: bool = False, clear: bool = False) -> None:
        if clear or replace:
            self.selection = []
        self.selection.extend(n for n in names if n in self.nodes)

    def _cmd_undoInfo(self, openChunk: bool = False, closeChunk: bool = False,
                      chunkName: str = "") -> None:
        if openChunk:
            self.undo_depth += 1
        if closeChunk:
            assert self.undo_depth > 0, "undo chunk closed that was never opened"
            self.undo_depth -= 1

    # UI -------------------------------------------------------------------------------------

    def _control(self, name: str, kind: str, parent: str | None, **props: Any) -> str:
        if name in self.ui:
            raise RuntimeError(f"Object's name '{name}' is not unique.")
        if parent is not None and parent not in self.ui:
            raise RuntimeError(f"Controls must have a layout: {parent} not found")
        self.ui[name] = Control(name, kind, parent, props)
        return name

    def _cmd_shelfLayout(self, name: str, exists: bool = False, query: bool = False,
                         childArray: bool = False, parent: str | None = None) -> Any:
        if exists:
            return name in self.ui and self.ui[name].type == "shelfLayout"
        if query and childArray:
            if name not in self.ui:
                raise RuntimeError(f"shelfLayout: object {name} not found")
            return [c.name for c in self.ui.values() if c.parent == name] or None
        return self._control(name, "shelfLayout", parent or SHELF_TOP_LEVEL)

    def _cmd_shelfButton(self, parent: str, **props: Any) -> str:
        _check_flags("shelfButton", props, SHELF_BUTTON_FLAGS)
        if props.get("sourceType", "mel") not in ("mel", "python"):
            raise RuntimeError("shelfButton: sourceType is 'mel' or 'python'")
        self._counter += 1
        return self._control(f"shelfButton{self._counter}", "shelfButton", parent, **props)

    def _cmd_deleteUI(self, name: str, layout: bool = False, control: bool = False) -> None:
        if name not in self.ui:
            raise RuntimeError(f"deleteUI: Object '{name}' not found.")
        for child in [c.name for c in self.ui.values() if c.parent == name]:
            self._cmd_deleteUI(child)
        del self.ui[name]

    def _cmd_scriptJob(self, event: list | None = None, exists: int | None = None,
                       kill: int | None = None, killWithScene: bool = False,
                       protected: bool = False, runOnce: bool = False) -> Any:
        if exists is not None:
            return exists in self.script_jobs
        if kill is not None:
            self.script_jobs.pop(kill, None)
            return None
        assert event is not None and len(event) == 2
        if event[0] not in SCRIPT_JOB_EVENTS:
            raise RuntimeError(f"scriptJob: unknown event {event[0]!r}")
        if not (callable(event[1]) or isinstance(event[1], str)):
            raise TypeError("scriptJob: the event's script is a string or a callable")
        self._counter += 1
        self.script_jobs[self._counter] = (event[0], event[1])
        return self._counter

    def _cmd_progressBar(self, name: str, edit: bool = False, query: bool = False,
                         **flags: Any) -> Any:
        if name not in self.ui or self.ui[name].type != "progressBar":
            raise RuntimeError(f"progressBar: object {name} not found")
        _check_flags("progressBar", flags, PROGRESS_BAR_FLAGS)
        bar = self.ui[name].props
        if query:
            if flags.get("isCancelled"):
                return bool(bar["active"] and bar.get("isInterruptable") and self.escape_pressed)
            (key,) = flags
            return bar.get(key)
        assert edit, "progressBar needs edit or query here"
        if flags.pop("beginProgress", False):
            if bar["active"]:
                raise RuntimeError("progressBar: the main progress bar is already in use")
            bar["active"] = True
            self.escape_pressed = False
        if flags.pop("endProgress", False):
            bar["active"] = False
            bar["isInterruptable"] = False
        bar.update(flags)
        self.progress_log.append(dict(bar))
        return None

    def _cmd_confirmDialog(self, title: str = "", message: str = "",
                           button: list[str] | None = None, **props: Any) -> str:
        _check_flags("confirmDialog", props, CONFIRM_DIALOG_FLAGS)
        if "icon" in props and props["icon"] not in CONFIRM_DIALOG_ICONS:
            raise RuntimeError(f"confirmDialog: icon is one of {sorted(CONFIRM_DIALOG_ICONS)}")
        buttons = list(button or ["Confirm"])
        self.dialogs.append({"title": title, "message": message, "buttons": buttons, **props})
        return self.dialog_answers.pop(0) if self.dialog_answers else buttons[0]

    # mayaUSD ------------------------------------------------------------------------------

    def _maya_usd_import(self, file: str, primPath: str = "", parent: str | None = None,
                         readAnimData: bool = False, shadingMode: Any = None,
                         **flags: Any) -> list[str]:
        """One transform per prim, one nurbsCurve shape per curve of a curves prim (as
        translatorCurves.cpp does: every curve of the prim, each its own shape under the prim's
        transform). Returns the full DAG path of the highest imported node, as documented."""
        from pxr import Usd, UsdGeom

        _check_flags("mayaUSDImport", flags, MAYA_USD_IMPORT_FLAGS)
        if shadingMode is not None:
            # string[2], multi-use: a list of (mode, convertMaterialFrom) pairs.
            pairs = [shadingMode] if isinstance(shadingMode[0], str) else list(shadingMode)
            for pair in pairs:
                if len(pair) != 2 or not all(isinstance(v, str) for v in pair):
                    raise TypeError("mayaUSDImport: shadingMode takes pairs of two strings")
                if pair[0] not in SHADING_MODES:
                    raise RuntimeError(f"mayaUSDImport: unknown shading mode {pair[0]!r}")
        if parent is not None and parent.rsplit("|", 1)[-1] not in self.nodes:
            raise RuntimeError(f"mayaUSDImport: parent {parent} does not exist")

        if not Path(file).is_file():
            raise RuntimeError(f"File '{file}' does not exist, or could not be resolved.")
        stage = Usd.Stage.Open(file)
        # An empty primPath is the default prim (the pseudo-root when there is none).
        prim = (stage.GetPrimAtPath(primPath) if primPath
                else stage.GetDefaultPrim() or stage.GetPseudoRoot())
        if not prim:
            raise RuntimeError(f"mayaUSDImport: no prim {primPath} in {file}")
        made: dict[str, str] = {}  # prim path -> its transform, to nest children as Maya does
        for item in Usd.PrimRange(prim):
            if item.IsPseudoRoot():
                continue
            above = made.get(str(item.GetPath().GetParentPath()), parent)
            transform = self._cmd_createNode("transform", name=item.GetName(), parent=above)
            made[str(item.GetPath())] = transform
            if item.IsA(UsdGeom.BasisCurves):
                curves = UsdGeom.BasisCurves(item)
                counts = list(curves.GetCurveVertexCountsAttr().Get() or [])
                points = curves.GetPointsAttr().Get() or []
                degree = 1 if curves.GetTypeAttr().Get() == UsdGeom.Tokens.linear else 3
                offset = 0
                for count in counts:
                    shape = self._cmd_createNode("nurbsCurve", name=f"{item.GetName()}Shape",
                                                 parent=transform)
                    self.nodes[shape].attrs.update(
                        degree=degree, spans=count - degree,
                        cv=tuple(tuple(p) for p in points[offset:offset + count]))
                    offset += count
        tops = [t for path, t in made.items()
                if str(stage.GetPrimAtPath(path).GetParent().GetPath()) not in made]
        return [self.full_path(t) for t in tops]
