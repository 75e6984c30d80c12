"""The rooms of ARCHITECTURE.md's "Boundaries worth keeping", checked on the source.

- a collector imports no other collector, and no web, report or CLI module;
- no module outside exporter/collectors/ names a field of a collector's reading, except
  exporter/readings.py, the typed accessors sizing reads through;
- every collector module is imported at start, so none imports a heavy library at its top.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

from exporter import collectors

EXPORTER = Path(collectors.__file__).parent.parent
ACCESSORS = EXPORTER / "readings.py"
NOT_FOR_COLLECTORS = {"web", "webconfig", "webtls", "report", "statuspage", "cli", "exposition"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imported(module: Path) -> set[str]:
    """Dotted names a collector module imports, resolved against exporter.collectors."""
    out = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = {0: "", 1: "exporter.collectors", 2: "exporter"}[node.level]
            stem = ".".join(p for p in (base, node.module or "") if p)
            out |= {stem} | {f"{stem}.{a.name}" for a in node.names}
    return out


def test_a_collector_imports_no_other_collector_nor_a_view():
    bad = {}
    for name, module in collectors.MODULES.items():
        others = {f"exporter.collectors.{n}" for n in collectors.MODULES if n != name}
        views = {f"exporter.{v}" for v in NOT_FOR_COLLECTORS}
        wrong = _imported(Path(module.__file__)) & (others | views)
        if wrong:
            bad[name] = sorted(wrong)
    assert not bad


def reading_fields() -> set[str]:
    """Fields of every dataclass a collector module defines (its reading and the parts of it)."""
    names = set()
    for module in collectors.MODULES.values():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and dataclasses.is_dataclass(cls):
                names |= {f.name for f in dataclasses.fields(cls)}
    return names


def _defined(tree: ast.Module) -> set[str]:
    """Attribute names a module gives its own classes and objects: fields, methods, self.x = ..."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.Assign):
                    names |= {t.id for t in item.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.attr for t in targets if isinstance(t, ast.Attribute)}
    return names


def _used(tree: ast.Module) -> set[str]:
    """Attribute names read: x.name and getattr(x, "name")."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            names.add(node.attr)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
            names.add(node.args[1].value)
    return names


def reaching_into_readings(sources: list[Path]) -> dict[Path, list[str]]:
    """Module -> reading fields it names. A name that non-collector code also gives its own objects
    (Verdict.detail, Status.error, the accessors' usable_cpus()) is ambiguous and left out."""
    trees = {p: _tree(p) for p in sources}
    own = set().union(*(_defined(t) for t in trees.values()))
    distinctive = reading_fields() - own
    named = {path: sorted(_used(tree) & distinctive) for path, tree in trees.items() if path != ACCESSORS}
    return {path: fields for path, fields in named.items() if fields}


def outside_collectors() -> list[Path]:
    return [p for p in sorted(EXPORTER.rglob("*.py")) if "collectors" not in p.relative_to(EXPORTER).parts]


def test_only_the_accessors_name_a_readings_fields():
    assert reaching_into_readings(outside_collectors()) == {}


def test_the_check_catches_sizing_reaching_into_a_reading(tmp_path):
    """Not vacuous: sizing written the old way, by attribute name, is caught."""
    old = tmp_path / "sizing_old.py"
    old.write_text("def observe(r):\n    return r['memory'].total_bytes, getattr(r['cpu'], 'busy_window_seconds')\n")
    assert reaching_into_readings([*outside_collectors(), old]) == {old: ["busy_window_seconds", "total_bytes"]}


def test_every_collector_module_is_imported_without_the_docker_sdk_or_requests():
    """Registration imports every module; the heavy libraries wait until a collector that needs them runs."""
    code = ("import sys\nfrom exporter import cli, config\n"
            "sampler, _, _ = cli.build(config.Config())\n"
            "print(sorted({'docker', 'requests'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=EXPORTER.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
