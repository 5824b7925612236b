"""A small recording stand-in for Houdini's `hou` module, for testing the Houdini host.

It models what the host touches and behaves like Houdini where the host depends on it: a
node tree (/obj, /stage) with parameters from parm templates, button callbacks executed as
Python with `kwargs`, digital assets created from a subnet (`createDigitalAsset`) whose
instances get the asset's parameters and inner nodes, Python SOP cooks (`hou.pwd()`, raised
`NodeWarning`/`NodeError` become the node's warnings/errors, and `cook()` then raises
`OperationFailed`), event-loop callbacks, and a geometry object that checks and records the
buffers given to the bulk calls (sizes must match the point/primitive counts, as in Houdini).

Use: put `tests/fakes` on `sys.path`, `import hou`, then `hou.reset(hip_folder)` per test.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# -- exceptions and enums ------------------------------------------------------------------------


class Error(Exception):
    pass


class OperationFailed(Error):
    pass


class NodeError(Error):
    pass


class NodeWarning(Error):
    pass


def _enum(*names: str) -> SimpleNamespace:
    return SimpleNamespace(**{name: f"{name}" for name in names})


attribType = _enum("Point", "Prim", "Vertex", "Global")
numericData = _enum("Float16", "Float32", "Float64", "Int8", "Int16", "Int32", "Int64")
severityType = _enum("Message", "ImportantMessage", "Warning", "Error", "Fatal")
nodeFlag = _enum("DisplayComment", "Display", "Render", "Bypass")
stringParmType = _enum("Regular", "FileReference", "NodeReference")
fileType = _enum("Any", "Image", "Geometry", "Usd")
scriptLanguage = _enum("Python", "Hscript")
paneTabType = _enum("NetworkEditor", "SceneViewer")
fileChooserMode = _enum("Read", "Write", "ReadAndWrite")

# -- parameter templates -------------------------------------------------------------------------

# Keyword arguments the hou.*ParmTemplate constructors document (a subset; a keyword the real
# class lacks raises TypeError there, as here). Button and separator are exactly the SWIG
# %kwargs of the HDK's HOM_ButtonParmTemplate.h / the HOM SeparatorParmTemplate page.
_BUTTON_TEMPLATE_ARGS = {"disable_when", "is_hidden", "is_label_hidden", "join_with_next",
                         "help", "script_callback", "script_callback_language", "tags",
                         "conditionals"}
_COMMON_TEMPLATE_ARGS = _BUTTON_TEMPLATE_ARGS | {"default_expression",
                                                 "default_expression_language",
                                                 "naming_scheme", "look"}
_TEMPLATE_ARGS = {
    "string": _COMMON_TEMPLATE_ARGS | {"menu_items", "menu_labels", "icon_names",
                                       "item_generator_script", "menu_type"},
    "int": _COMMON_TEMPLATE_ARGS | {"min_is_strict", "max_is_strict", "menu_items",
                                    "menu_labels", "icon_names", "item_generator_script",
                                    "menu_type"},
    "menu": _COMMON_TEMPLATE_ARGS | {"icon_names", "item_generator_script",
                                     "item_generator_script_language", "menu_type",
                                     "menu_use_token", "store_default_value_as_string",
                                     "is_button_strip", "strip_uses_icons"},
    "toggle": _COMMON_TEMPLATE_ARGS,
    "button": _BUTTON_TEMPLATE_ARGS,
    "separator": {"is_hidden", "tags"},
}


class ParmTemplate:
    kind = "base"

    def __init__(self, name: str, label: str = "", default: Any = None,
                 extra: dict[str, Any] | None = None, **options: Any) -> None:
        unknown = sorted(set(extra or {}) - _TEMPLATE_ARGS[self.kind])
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{unknown[0]!r}")
        extra = dict(extra or {})
        self._name, self._label, self._default = name, label, default
        self.options = options
        self.help = extra.get("help") or ""
        self.hidden = bool(extra.get("is_hidden", False))
        self.joined = bool(extra.get("join_with_next", False))
        self.callback = extra.get("script_callback") or ""
        self.callback_language = extra.get("script_callback_language")
        self.tags: dict[str, str] = dict(extra.get("tags") or {})

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def setHelp(self, text: str) -> None:
        self.help = text

    def hide(self, on: bool) -> None:
        self.hidden = bool(on)

    def setJoinWithNext(self, on: bool) -> None:
        self.joined = bool(on)

    def setScriptCallback(self, script: str) -> None:
        self.callback = script

    def setScriptCallbackLanguage(self, language: str) -> None:
        self.callback_language = language

    def setTags(self, tags: dict[str, str]) -> None:
        self.tags = dict(tags)


class StringParmTemplate(ParmTemplate):
    kind = "string"

    def __init__(self, name, label, num_components, default_value=(),
                 string_type=stringParmType.Regular, file_type=fileType.Any, **extra):
        assert num_components == 1
        if not isinstance(default_value, (tuple, list)):
            raise TypeError("StringParmTemplate: default_value is a sequence of strings")
        super().__init__(name, label, (default_value or ("",))[0], extra,
                         string_type=string_type, file_type=file_type)


class IntParmTemplate(ParmTemplate):
    kind = "int"

    def __init__(self, name, label, num_components, default_value=(), min=0, max=10, **extra):
        assert num_components == 1
        if not isinstance(default_value, (tuple, list)):
            raise TypeError("IntParmTemplate: default_value is a sequence of ints")
        super().__init__(name, label, (default_value or (0,))[0], extra, min=min, max=max)


class MenuParmTemplate(ParmTemplate):
    kind = "menu"

    def __init__(self, name, label, menu_items, menu_labels=(), default_value=0, **extra):
        if not isinstance(default_value, int):
            raise TypeError("MenuParmTemplate: default_value is the index of the default item")
        super().__init__(name, label, default_value, extra, items=tuple(menu_items),
                         labels=tuple(menu_labels))


class ToggleParmTemplate(ParmTemplate):
    kind = "toggle"

    def __init__(self, name, label, default_value=False, **extra):
        super().__init__(name, label, bool(default_value), extra)


class ButtonParmTemplate(ParmTemplate):
    kind = "button"

    def __init__(self, name, label, **extra):
        super().__init__(name, label, None, extra)


class SeparatorParmTemplate(ParmTemplate):
    kind = "separator"

    def __init__(self, name, **extra):
        super().__init__(name, "", None, extra)


class ParmTemplateGroup:
    def __init__(self, templates: tuple[ParmTemplate, ...] = ()) -> None:
        self._entries = list(templates)

    def append(self, template: ParmTemplate) -> None:
        if self.find(template.name()) is not None:
            raise OperationFailed(f"duplicate parameter name {template.name()}")
        self._entries.append(template)

    def entries(self) -> tuple[ParmTemplate, ...]:
        return tuple(self._entries)

    def find(self, name: str) -> ParmTemplate | None:
        return next((t for t in self._entries if t.name() == name), None)


class Parm:
    def __init__(self, node: Node, template: ParmTemplate) -> None:
        self._node, self._template = node, template
        self._value = template._default

    def name(self) -> str:
        return self._template.name()

    def node(self) -> Node:
        return self._node

    def parmTemplate(self) -> ParmTemplate:
        return self._template

    def set(self, value: Any) -> None:
        kind = self._template.kind
        if kind in ("string",):
            if not isinstance(value, str):
                raise TypeError(f"{self.name()}: a string parameter takes a str, got {value!r}")
        elif kind == "menu":
            items = self._template.options["items"]
            value = items.index(value) if isinstance(value, str) else int(value)
        elif kind in ("int", "toggle"):
            if isinstance(value, str):
                raise TypeError(f"{self.name()}: an int parameter takes an int, got {value!r}")
            value = int(value)
        elif kind in ("button", "separator"):
            raise OperationFailed(f"{self.name()} holds no value")
        self._value = value
        self._node._dirty = True

    def unexpandedString(self) -> str:
        return str(self._value)

    def eval(self) -> Any:
        if self._template.kind == "string":
            return _session.expand(str(self._value))
        if self._template.kind == "toggle":
            return int(self._value)
        return self._value

    def evalAsString(self) -> str:
        if self._template.kind == "menu":
            return self._template.options["items"][self._value]
        return str(self.eval())

    def pressButton(self) -> None:
        """Run the button's Python callback as Houdini does, with `kwargs`."""
        assert self._template.kind == "button", self.name()
        assert self._template.callback_language == scriptLanguage.Python
        scope = {"kwargs": {"node": self._node, "parm": self, "script_value": "0"},
                 "hou": _module()}
        exec(self._template.callback, scope)  # noqa: S102 - Houdini runs callbacks so


# -- geometry ------------------------------------------------------------------------------------

_SIZES = {numericData.Float32: ("f", 4), numericData.Float64: ("d", 8),
          numericData.Int32: ("i", 4), numericData.Int64: ("q", 8)}


class Geometry:
    """Records what the bulk calls were given; checks sizes the way Houdini does."""

    def __init__(self) -> None:
        self.num_points = 0
        self.polygon_counts: list[int] = []
        self.polygon_starts: list[int] = []
        self.polygons_closed: list[bool] = []
        # (class, name) -> {"default": ..., "values": array or None}
        self.attribs: dict[tuple[str, str], dict[str, Any]] = {
            (attribType.Point, "P"): {"default": (0.0, 0.0, 0.0), "values": None}}
        self.global_values: dict[str, Any] = {}
        self.calls: list[str] = []

    @property
    def num_prims(self) -> int:
        return len(self.polygon_counts)

    def createPoints(self, positions: Any) -> tuple[int, ...]:
        self.calls.append("createPoints")
        count = len(positions)
        if count and len(positions[0]) != 3:
            raise TypeError("createPoints takes a sequence of 3-float positions")
        first = self.num_points
        self.num_points += count
        return tuple(range(first, first + count))  # Houdini returns hou.Point objects

    def createPolygons(self, points: Any, is_closed: bool = True) -> tuple[int, ...]:
        self.calls.append("createPolygons")
        first = len(self.polygon_counts)
        for polygon in points:
            if len(polygon) == 0 or polygon[-1] - polygon[0] != len(polygon) - 1:
                raise OperationFailed("a polygon's points must exist and be given in order")
            if polygon[-1] >= self.num_points:
                raise OperationFailed(f"point {polygon[-1]} does not exist")
            self.polygon_counts.append(len(polygon))
            self.polygon_starts.append(polygon[0])
            self.polygons_closed.append(bool(is_closed))
        return tuple(range(first, len(self.polygon_counts)))

    def addAttrib(self, type: str, name: str, default_value: Any, transform_as_normal=True,
                  create_local_variable=True) -> None:
        self.calls.append("addAttrib")
        if (type, name) in self.attribs:
            raise OperationFailed(f"attribute {name} already exists")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise OperationFailed(f"invalid attribute name {name!r}")
        self.attribs[(type, name)] = {"default": default_value, "values": None}

    def _store(self, type: str, name: str, values: Any, numeric: str, count: int,
               is_float: bool) -> None:
        attrib = self.attribs.get((type, name))
        if attrib is None:
            raise OperationFailed(f"no {type} attribute {name}")
        default = attrib["default"]
        size = len(default) if isinstance(default, tuple) else 1
        if isinstance(default[0] if isinstance(default, tuple) else default, float) != is_float:
            raise OperationFailed(f"{name} is not a {'float' if is_float else 'int'} attribute")
        code, width = _SIZES[numeric]
        data = bytes(values)  # any buffer, as Houdini accepts
        if len(data) != count * size * width:
            raise OperationFailed(f"{name}: {len(data)} bytes for {count} elements of {size} "
                                  f"x {width} bytes")
        attrib["values"] = array(code, data)

    def setPointFloatAttribValuesFromString(self, name, values, float_type=numericData.Float32):
        self.calls.append("setPointFloatAttribValuesFromString")
        self._store(attribType.Point, name, values, float_type, self.num_points, True)

    def setPrimFloatAttribValuesFromString(self, name, values, float_type=numericData.Float32):
        self.calls.append("setPrimFloatAttribValuesFromString")
        self._store(attribType.Prim, name, values, float_type, self.num_prims, True)

    def setPrimIntAttribValuesFromString(self, name, values, int_type=numericData.Int32):
        self.calls.append("setPrimIntAttribValuesFromString")
        self._store(attribType.Prim, name, values, int_type, self.num_prims, False)

    def setGlobalAttribValue(self, name: str, value: Any) -> None:
        self.calls.append("setGlobalAttribValue")
        if (attribType.Global, name) not in self.attribs:
            raise OperationFailed(f"no detail attribute {name}")
        self.global_values[name] = value

    # test accessors (not hou API)
    def values(self, type: str, name: str) -> array:
        return self.attribs[(type, name)]["values"]


# -- nodes ---------------------------------------------------------------------------------------


class NodeTypeCategory:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


_SOP, _OBJ, _LOP, _MGR = (NodeTypeCategory("Sop"), NodeTypeCategory("Object"),
                          NodeTypeCategory("Lop"), NodeTypeCategory("Manager"))


def sopNodeTypeCategory() -> NodeTypeCategory:
    return _SOP


def objNodeTypeCategory() -> NodeTypeCategory:
    return _OBJ


def lopNodeTypeCategory() -> NodeTypeCategory:
    return _LOP


class HDADefinition:
    def __init__(self, type_name: str, path: str, description: str,
                 contents: list[dict[str, Any]], version: str | None) -> None:
        self.type_name, self.path, self.description = type_name, path, description
        self.contents = contents
        self._version = version or ""
        self.ptg = ParmTemplateGroup()
        self.icon = ""
        self.comment = ""

    def setParmTemplateGroup(self, group: ParmTemplateGroup) -> None:
        self.ptg = group
        self._save()

    def parmTemplateGroup(self) -> ParmTemplateGroup:
        return self.ptg

    def setIcon(self, icon: str) -> None:
        self.icon = icon

    def setVersion(self, version: str) -> None:
        self._version = version
        self._save()

    def version(self) -> str:
        return self._version

    def setComment(self, text: str) -> None:
        self.comment = text

    def libraryFilePath(self) -> str:
        return self.path

    def _save(self) -> None:
        """Stand-in for the .hda on disk: a JSON summary; the definition stays in `_library`."""
        Path(self.path).write_text(json.dumps({
            "type": self.type_name, "version": self._version, "contents": self.contents,
            "parms": [t.name() for t in self.ptg.entries()]}))
        _library[str(Path(self.path).resolve())] = self


class NodeType:
    def __init__(self, name: str, category: NodeTypeCategory, child_category=None,
                 parms: tuple[ParmTemplate, ...] = (), definition: HDADefinition | None = None):
        self._name, self._category = name, category
        self.child_category = child_category
        self.parms = parms
        self._definition = definition

    def name(self) -> str:
        return self._name

    def category(self) -> NodeTypeCategory:
        return self._category

    def definition(self) -> HDADefinition | None:
        return self._definition


def _builtin_types() -> dict[tuple[str, str], NodeType]:
    types = [
        NodeType("geo", _OBJ, _SOP),
        NodeType("subnet", _SOP, _SOP),
        NodeType("python", _SOP, None, (StringParmTemplate("python", "Python Code", 1),)),
        NodeType("output", _SOP),
        NodeType("sublayer", _LOP, None, (IntParmTemplate("num_files", "Files", 1, (1,)),
                                          StringParmTemplate("filepath1", "File", 1))),
        NodeType("lopnet", _OBJ, _LOP),
    ]
    return {(t.category().name(), t.name()): t for t in types}


class Node:
    def __init__(self, name: str, node_type: NodeType, parent: Node | None,
                 session: _Session | None = None) -> None:
        self._name, self._type, self._parent = name, node_type, parent
        self._children: dict[str, Node] = {}
        session = session or _session
        self._session_id = next(session.ids)
        session.nodes[self._session_id] = self
        self._parms: dict[str, Parm] = {}
        self._comment = ""
        self._flags: dict[str, bool] = {}
        self._inputs: list[Node | None] = []
        self._errors: tuple[str, ...] = ()
        self._warnings: tuple[str, ...] = ()
        self._geometry = Geometry()
        self._dirty = True
        self.cook_count = 0
        self._apply_type(node_type)

    def _apply_type(self, node_type: NodeType) -> None:
        self._type = node_type
        definition = node_type.definition()
        templates = definition.ptg.entries() if definition else node_type.parms
        self._parms = {t.name(): Parm(self, t) for t in templates}

    # hierarchy
    def name(self) -> str:
        return self._name

    def path(self) -> str:
        if self._parent is None:
            return "/"
        parent = self._parent.path()
        return f"{parent.rstrip('/')}/{self._name}"

    def parent(self) -> Node | None:
        return self._parent

    def children(self) -> tuple[Node, ...]:
        return tuple(self._children.values())

    def node(self, relative: str) -> Node | None:
        current: Node | None = self
        for part in relative.split("/"):
            if current is None:
                return None
            current = current._parent if part == ".." else current._children.get(part)
        return current

    def type(self) -> NodeType:
        return self._type

    def sessionId(self) -> int:
        return self._session_id

    def childTypeCategory(self) -> NodeTypeCategory | None:
        return self._type.child_category

    def createNode(self, type_name: str, node_name: str | None = None,
                   run_init_scripts: bool = True, load_contents: bool = True,
                   exact_type_name: bool = False, force_valid_node_name: bool = False) -> Node:
        category = self._type.child_category
        if category is None:
            raise OperationFailed(f"{self.path()} cannot contain nodes")
        node_type = _session.types.get((category.name(), type_name))
        if node_type is None:
            raise OperationFailed(f"invalid node type name {type_name!r} in {category.name()}")
        base = node_name or f"{type_name}1"
        name = base
        for index in itertools.count(1):
            if name not in self._children:
                break
            name = f"{base.rstrip('0123456789')}{index}"
        node = Node(name, node_type, self)
        self._children[name] = node
        definition = node_type.definition()
        if definition is not None:
            node._build_contents(definition.contents)
        return node

    def _build_contents(self, contents: list[dict[str, Any]]) -> None:
        made: dict[str, Node] = {}
        for item in contents:
            child_type = _session.types[(_SOP.name(), item["type"])]
            child = Node(item["name"], child_type, self)
            self._children[item["name"]] = child
            for parm, value in item["parms"].items():
                child._parms[parm]._value = value
            made[item["name"]] = child
        for item in contents:
            made[item["name"]]._inputs = [made.get(n) for n in item["inputs"]]

    def destroy(self) -> None:
        for child in list(self._children.values()):
            child.destroy()
        if self._parent is not None:
            self._parent._children.pop(self._name, None)
        _session.nodes.pop(self._session_id, None)

    # parameters and display
    def parm(self, name: str) -> Parm | None:
        return self._parms.get(name)

    def parms(self) -> tuple[Parm, ...]:
        return tuple(self._parms.values())

    def setComment(self, text: str) -> None:
        self._comment = text

    def comment(self) -> str:
        return self._comment

    def setGenericFlag(self, flag: str, on: bool) -> None:
        self._flags[flag] = bool(on)

    def isGenericFlagSet(self, flag: str) -> bool:
        return self._flags.get(flag, False)

    def setDisplayFlag(self, on: bool) -> None:
        self._flags[nodeFlag.Display] = bool(on)

    def setRenderFlag(self, on: bool) -> None:
        self._flags[nodeFlag.Render] = bool(on)

    def moveToGoodPosition(self) -> None:
        pass

    def setSelected(self, on: bool, clear_all_selected: bool = False) -> None:
        if clear_all_selected:
            _session.selected.clear()
        if on:
            _session.selected.append(self)

    def setInput(self, index: int, node: Node | None) -> None:
        while len(self._inputs) <= index:
            self._inputs.append(None)
        self._inputs[index] = node

    def inputs(self) -> tuple[Node | None, ...]:
        return tuple(self._inputs)

    # digital assets
    def createDigitalAsset(self, name: str | None = None, hda_file_name: str | None = None,
                           description: str | None = None, min_num_inputs: int | None = None,
                           max_num_inputs: int | None = None, compress_contents: bool = False,
                           comment: str | None = None, version: str | None = None,
                           save_as_embedded: bool = False,
                           ignore_external_references: bool = False,
                           compile_asset: bool = False,
                           change_node_type: bool = True, create_backup: bool = True,
                           install_path: str | None = None) -> Node:
        if not name or not hda_file_name:
            raise OperationFailed("createDigitalAsset needs a name and an hda_file_name here")
        if self._type.name() != "subnet":
            raise OperationFailed("only a subnet becomes a digital asset here")
        contents = [{"type": c.type().name(), "name": c.name(),
                     "parms": {p.name(): p._value for p in c.parms()},
                     "inputs": [i.name() if i else None for i in c.inputs()]}
                    for c in self.children()]
        definition = HDADefinition(name, hda_file_name, description, contents, version)
        definition._save()
        _session.types[(_SOP.name(), name)] = NodeType(name, _SOP, _SOP,
                                                       definition=definition)
        self._apply_type(_session.types[(_SOP.name(), name)])
        return self

    # cooking
    def geometry(self) -> Geometry:
        """The output geometry: an asset cooks its inner Python SOP (if parameters changed)."""
        if self._type.definition() is not None:
            if self._dirty:
                try:
                    self.cook()
                except OperationFailed:
                    pass
            python = next(c for c in self.children() if c.type().name() == "python")
            return python._geometry
        return self._geometry

    def cook(self, force: bool = False) -> None:
        if self._type.definition() is None:
            raise OperationFailed(f"{self.path()}: only asset cooks are modelled")
        python = next(c for c in self.children() if c.type().name() == "python")
        python._geometry = Geometry()
        self._errors, self._warnings = (), ()
        self.cook_count += 1
        _session.pwd.append(python)
        try:
            code = python.parm("python").unexpandedString()
            exec(code, {"hou": _module()})  # noqa: S102 - a Python SOP's cook, as Houdini
        except NodeWarning as exc:
            self._warnings = (str(exc),)
        except NodeError as exc:
            self._errors = (str(exc),)
        except Exception as exc:  # noqa: BLE001 - Houdini shows any Python error on the node
            self._errors = (f"Python error: {type(exc).__name__}: {exc}",)
        finally:
            _session.pwd.pop()
        self._dirty = False
        if self._errors:
            raise OperationFailed("\n".join(self._errors))

    def errors(self) -> tuple[str, ...]:
        return self._errors

    def warnings(self) -> tuple[str, ...]:
        return self._warnings


# -- the session ---------------------------------------------------------------------------------

_library: dict[str, HDADefinition] = {}  # .hda files written in this process (the "disk")


class _Session:
    def __init__(self, hip: Path) -> None:
        self.hip = Path(hip)
        self.ids = itertools.count(1000)
        self.nodes: dict[int, Node] = {}
        self.types = _builtin_types()
        self.root = Node("", NodeType("root", _MGR, None), None, self)
        for name, category in (("obj", _OBJ), ("stage", _LOP)):
            self.root._children[name] = Node(name, NodeType(name, _MGR, category), self.root,
                                             self)
        self.status: list[tuple[str, str]] = []
        self.loop_callbacks: list[Callable[[], None]] = []
        self.pwd: list[Node] = []
        self.selected: list[Node] = []
        self.ui_available = True
        self.next_file = ""
        self.installed_files: list[str] = []

    def expand(self, text: str) -> str:
        def chs(match: re.Match) -> str:
            path, parm = match[1].rsplit("/", 1)
            found = node(path)
            return found.parm(parm).evalAsString() if found and found.parm(parm) else ""

        text = re.sub(r'`chs\("([^"]+)"\)`', chs, text)
        return re.sub(r"\$\{?HIP\}?", self.hip.as_posix(), text)


_session = _Session(Path(os.getcwd()))


def reset(hip: str | os.PathLike[str]) -> None:
    """A new, empty Houdini session whose $HIP is `hip` (the .hda "disk" is kept)."""
    global _session
    _session = _Session(Path(hip))


def session() -> _Session:
    return _session


def _module() -> Any:
    import sys

    return sys.modules[__name__]


def node(path: str) -> Node | None:
    if path == "/":
        return _session.root
    return _session.root.node(path.strip("/"))


def nodeBySessionId(session_id: int) -> Node | None:
    return _session.nodes.get(session_id)


def nodeType(category: NodeTypeCategory, name: str) -> NodeType | None:
    return _session.types.get((category.name(), name))


def pwd() -> Node:
    return _session.pwd[-1]


def selectedNodes() -> tuple[Node, ...]:
    return tuple(_session.selected)


def isUIAvailable() -> bool:
    return _session.ui_available


def expandString(text: str) -> str:
    return _session.expand(text)


text = SimpleNamespace(expandString=expandString)
hipFile = SimpleNamespace(path=lambda: (_session.hip / "untitled.hip").as_posix())


def _install_file(path: str) -> None:
    resolved = str(Path(path).resolve())
    if not Path(path).is_file() or resolved not in _library:
        raise OperationFailed(f"cannot install {path}: not a digital asset library")
    definition = _library[resolved]
    _session.types[(_SOP.name(), definition.type_name)] = NodeType(
        definition.type_name, _SOP, _SOP, definition=definition)
    _session.installed_files.append(path)


hda = SimpleNamespace(installFile=_install_file)


# -- hou.ui --------------------------------------------------------------------------------------


def _set_status(message: str, severity: str = severityType.Message) -> None:
    _session.status.append((message, severity))


def _add_loop(callback: Callable[[], None]) -> None:
    _session.loop_callbacks.append(callback)


def _remove_loop(callback: Callable[[], None]) -> None:
    _session.loop_callbacks.remove(callback)


def _select_file(start_directory: str | None = None, title: str | None = None,
                 collapse_sequences: bool = False, file_type: str = fileType.Any,
                 pattern: str | None = None, default_value: str | None = None,
                 multiple_select: bool = False, image_chooser: bool | None = None,
                 chooser_mode: str = fileChooserMode.ReadAndWrite, width: int = 0,
                 height: int = 0) -> str:
    return _session.next_file


ui = SimpleNamespace(
    setStatusMessage=_set_status,
    addEventLoopCallback=_add_loop,
    removeEventLoopCallback=_remove_loop,
    eventLoopCallbacks=lambda: tuple(_session.loop_callbacks),
    paneTabOfType=lambda kind: None,
    selectFile=_select_file,
)


def run_event_loop(until: Callable[[], bool], timeout: float = 120.0,
                   on_tick: Callable[[], None] | None = None) -> None:
    """Be Houdini's main thread (test helper): run event-loop callbacks until `until()`."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("the event loop condition was not met in time")
        for callback in list(_session.loop_callbacks):
            callback()
        if on_tick:
            on_tick()
        time.sleep(0.01)
