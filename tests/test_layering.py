"""The layers of the pack, checked on the source: ``stablepose_core`` is plain PyTorch/numpy (no ComfyUI, no other
layer of the pack) and production code (core, host discovery, nodes, training) never imports ``tools/``, ``tests/``,
``harness/`` or ``benchmarks/``, so an installed pack needs none of them. The development folders depend one way
(:data:`DEVELOPMENT_LAYERS`): ``harness`` (the shared host and test models) under ``tools``, ``tools`` under
``benchmarks``, the tests above all, so no import runs both ways. Inside the core, the subsystem packages import only
downwards (:data:`CORE_LAYERS`): poses at the bottom, the model and the detectors on poses, evaluation and the body
model above. Imports are read from the syntax tree, so a function-local or ``importlib`` import counts as well as a
top-level one. The cross-references in production docstrings (``:func:`.tracking.track_people```) name modules and
objects that exist, so a moved or renamed module leaves no stale name behind."""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from stablepose_host import find_comfyui

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("stablepose_core", "stablepose_host", "nodes", "training")
DEVELOPMENT = frozenset({"harness", "tools", "tests", "benchmarks"})
# what each development folder must not import: imports run harness <- tools <- benchmarks <- tests only
DEVELOPMENT_LAYERS = {
    "harness": frozenset({"tools", "benchmarks", "tests"}),
    "tools": frozenset({"benchmarks", "tests"}),
    "benchmarks": frozenset({"tests"}),
}
PACK_LAYERS = frozenset({"stablepose_host", "nodes", "training"}) | DEVELOPMENT
# rank of each part of stablepose_core: a module may import its own part and parts of a lower rank only
CORE_LAYERS = {"atomic": 0, "poses": 1, "model": 2, "detect": 2, "evaluate": 3, "body": 3, "convert": 4}
# ComfyUI's own top-level modules, always forbidden in the core even if the ComfyUI found here lacks one
COMFY_ALWAYS = frozenset({"comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "execution"})


def production_files() -> list[Path]:
    return [ROOT / "__init__.py", *(path for layer in PRODUCTION for path in sorted((ROOT / layer).rglob("*.py")))]


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every import in a file, relative imports resolved against the layout
    under ``root`` (the pack's package), plus ``importlib.import_module("...")``/``__import__``/``import_comfy``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = relative_base(path, node.level, root)
                names = [".".join([*base, node.module or ""]).strip(".")] if node.module else []
                names += [".".join([*base, alias.name]) for alias in node.names] if not node.module else []
                yield from ((node.lineno, name or "<pack root>") for name in names)
            else:
                yield node.lineno, node.module or ""
        elif isinstance(node, ast.Call) and (name := _dynamic_import(node)):
            yield node.lineno, name


def relative_base(path: Path, level: int, root: Path = ROOT) -> list[str]:
    """The package parts a name with ``level`` leading dots starts from, in the file ``path`` under ``root``."""
    package = list(path.relative_to(root).parent.parts)
    return package[: len(package) - level + 1]


def _dynamic_import(call: ast.Call) -> str | None:
    """The module named by ``import_module("x")``, ``__import__("x")`` or ``import_comfy("x")``, else None."""
    func = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    first = call.args[0] if call.args else None
    if func in ("import_module", "__import__", "import_comfy") and isinstance(first, ast.Constant):
        return str(first.value)
    return None


def comfyui_modules() -> frozenset[str]:
    """Top-level module names a ComfyUI checkout provides (``nodes``, ``server``, ``utils``, ``comfy``, ...)."""
    comfy = find_comfyui()
    names = {p.stem for p in comfy.glob("*.py")} | {p.name for p in comfy.iterdir() if (p / "__init__.py").is_file()}
    return frozenset(names) | COMFY_ALWAYS


def violations(files: list[Path], forbidden: frozenset[str], root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line} imports {name}"
        for path in files
        for line, name in imported_modules(path, root)
        if name.split(".")[0] in forbidden
    ]


def test_production_code_never_imports_tools_or_tests() -> None:
    assert violations(production_files(), DEVELOPMENT) == []


def development_violations(root: Path = ROOT) -> list[str]:
    """Imports of a development folder from a folder above it in :data:`DEVELOPMENT_LAYERS` (``tools`` ->
    ``tests``, ``harness`` -> ``tools``...), and of a test module by another (shared helpers live in ``harness/``,
    shared fixtures in a ``conftest.py``)."""
    test_modules = [
        f"{path.relative_to(root)}:{line} imports the test module {name}"
        for path in sorted((root / "tests").rglob("*.py"))
        for line, name in imported_modules(path, root)
        if name.startswith("tests.") and name.split(".")[-1].startswith("test_")
    ]
    return test_modules + [
        found
        for folder, forbidden in DEVELOPMENT_LAYERS.items()
        for found in violations(sorted((root / folder).rglob("*.py")), forbidden, root)
    ]


def test_development_folders_import_one_way() -> None:
    assert development_violations() == []


def test_core_imports_no_comfyui_and_no_other_layer_of_the_pack() -> None:
    core = sorted((ROOT / "stablepose_core").rglob("*.py"))
    assert core, "no stablepose_core sources found"
    assert violations(core, comfyui_modules() | PACK_LAYERS) == []


def core_part(path: Path, root: Path = ROOT) -> str:
    """The part of the core a file belongs to: its package under ``stablepose_core``, or its module name."""
    parts = path.relative_to(root / "stablepose_core").parts
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def wrong_way_imports(root: Path = ROOT) -> list[str]:
    """Imports from one part of the core to a part of the same or a higher rank (``model`` -> ``evaluate``...)."""
    found = []
    for path in sorted((root / "stablepose_core").rglob("*.py")):
        part = core_part(path, root)
        if part == "__init__":
            continue
        for line, name in imported_modules(path, root):
            target = name.split(".")
            if target[0] != "stablepose_core" or len(target) < 2 or target[1] == part:
                continue
            if CORE_LAYERS.get(target[1], 99) >= CORE_LAYERS.get(part, -1):
                found.append(f"{path.relative_to(root)}:{line} ({part}) imports {name}")
    return found


def test_every_part_of_the_core_has_a_rank() -> None:
    parts = {core_part(path) for path in (ROOT / "stablepose_core").rglob("*.py")} - {"__init__"}
    assert parts <= set(CORE_LAYERS), f"give {sorted(parts - set(CORE_LAYERS))} a rank in CORE_LAYERS"


def test_core_subsystems_import_only_downwards() -> None:
    assert wrong_way_imports() == []


@pytest.mark.parametrize(
    ("where", "source", "wrong"),
    [
        ("stablepose_core/poses/x.py", "from ..model.adapter import StablePoseAdapter\n", True),
        ("stablepose_core/model/x.py", "from ..detect import backends\n", True),
        ("stablepose_core/detect/x.py", "def f():\n    from stablepose_core.evaluate.oks import oks_matrix\n", True),
        ("stablepose_core/evaluate/x.py", "from ..body import fit\n", True),
        ("stablepose_core/body/x.py", "from ..poses.keypoints import PoseKeypoints\n", False),
        ("stablepose_core/evaluate/x.py", "from .oks import oks_matrix\n", False),
        ("tools/x.py", "from tests.conftest import models_dir\n", True),
        ("harness/x.py", "def f():\n    from tools.run_workflow import apply_override\n", True),
        ("benchmarks/x.py", "import tests.test_video\n", True),
        ("tests/test_x.py", "from tests.test_body import photo_poses\n", True),
        ("tests/hostile/test_x.py", "from .test_sequence_inputs import keyframes\n", True),
        ("tests/hostile/test_x.py", "from .corpus import png_header_only\n", False),
        ("tools/x.py", "from harness.comfy_host import ComfyHost\n", False),
        ("tests/x.py", "from tools.make_workflows import build_workflows\n", False),
    ],
)
def test_the_direction_checks_fail_on_a_wrong_way_import(tmp_path: Path, where: str, source: str, wrong: bool) -> None:
    path = tmp_path / where
    path.parent.mkdir(parents=True)
    path.write_text(source)
    assert bool(wrong_way_imports(tmp_path) + development_violations(tmp_path)) == wrong


@pytest.mark.parametrize(
    ("source", "where", "found"),
    [
        ("from harness.comfy_host import ComfyHost\n", "training/x.py", "harness.comfy_host"),
        ("def f():\n    from ..harness import browser\n", "nodes/x.py", "harness"),
        ("import importlib\nimportlib.import_module('comfy.sd')\n", "stablepose_core/x.py", "comfy.sd"),
        ("from . import nodes\n", "stablepose_core/x.py", "stablepose_core.nodes"),
    ],
)
def test_the_scan_sees_every_kind_of_import(tmp_path: Path, source: str, where: str, found: str) -> None:
    path = tmp_path / where
    path.parent.mkdir()
    path.write_text(source)
    assert found in [name for _line, name in imported_modules(path, tmp_path)]


# a Sphinx cross-reference: role, leading dots (relative to the module's package), dotted target
REFERENCE = re.compile(r":(?:func|class|meth|attr|data|mod|exc):`~?(\.*)([\w.]+)`")


def defined_names(path: Path) -> set[str]:
    """Names a module defines at top level or in its classes' bodies: functions, classes, assignments, imports."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = [*tree.body, *(node for top in tree.body if isinstance(top, ast.ClassDef) for node in top.body)]
    names = set()
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def reference_resolves(path: Path, dots: str, target: str, root: Path = ROOT) -> bool:
    """Whether a docstring reference in ``path`` names something that exists: a module (relative with leading dots,
    or under the pack's root) and a name it defines, a name of ``path`` itself, or an installed package's object."""
    parts = target.split(".")
    if not dots and not (root / parts[0]).is_dir():
        return parts[0] in defined_names(path) or importlib.util.find_spec(parts[0]) is not None
    prefix = relative_base(path, len(dots), root) if dots else []
    for cut in range(len(parts), -1 if dots else 0, -1):
        base = root.joinpath(*prefix, *parts[:cut])
        module = next((m for m in (base.with_suffix(".py"), base / "__init__.py") if m.is_file()), None)
        if module is not None:
            return cut == len(parts) or parts[cut] in defined_names(module)
    return False


def stale_references(files: list[Path], root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{text[: found.start()].count(chr(10)) + 1}: {found.group(0)}"
        for path in files
        for text in [path.read_text()]
        for found in REFERENCE.finditer(text)
        if not reference_resolves(path, *found.groups(), root)
    ]


def test_docstring_references_name_what_exists() -> None:
    assert stale_references(production_files()) == []


@pytest.mark.parametrize(
    ("reference", "resolves"),
    [
        (":func:`.sequence.sequence_from_frames`", True),
        (":class:`..poses.keypoints.PoseKeypoints`", True),
        (":meth:`PoseKeypoints.flip`", False),  # not defined in this module
        (":attr:`ROLE`", True),
        (":func:`.pose_tracking.track_people`", False),  # the module's name before the layout of subsystems
        (":func:`.sequence.no_such_function`", False),
        (":func:`.core_function`", True),  # defined in the package's __init__.py
        (":func:`numpy.interp`", True),
        (":mod:`sequence`", False),  # a sibling module needs its leading dot
    ],
)
def test_the_reference_check_fails_on_a_stale_name(tmp_path: Path, reference: str, resolves: bool) -> None:
    (tmp_path / "core" / "poses").mkdir(parents=True)
    (tmp_path / "core" / "poses" / "sequence.py").write_text("def sequence_from_frames(): ...\n")
    (tmp_path / "core" / "poses" / "keypoints.py").write_text("class PoseKeypoints: ...\n")
    (tmp_path / "core" / "poses" / "__init__.py").write_text("def core_function(): ...\n")
    path = tmp_path / "core" / "poses" / "tracking.py"
    path.write_text(f'"""{reference}"""\nROLE = 1\n')
    assert (stale_references([path], tmp_path) == []) == resolves
