"""Rules of the code's shape that the import contracts (``make lint``) cannot state: no import
cycles anywhere, and no Kubernetes write outside the change path (and the sandbox, which is a
cluster of its own)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
# The kubernetes client's methods that change objects (``patch_namespaced_deployment``,
# ``create_cluster_custom_object``, ``delete_collection_namespaced_pod``, ``patch_node``, ...)
# and its raw request methods, unless the request's method is written out as "GET".
WRITE_CALL = re.compile(
    r"^(create|patch|replace|delete)_(namespaced_|cluster_custom_object|collection_|namespace|node)"
    r"|^call_api$|^param_serialize$"
)
ALLOWED_WRITERS = ("backend/changes/", "backend/sandbox/")


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("backend", "opsconsole", exclude_type_checking_imports=True)
    cycles = [
        f"{module} -> {imported}"
        for module in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if graph.chain_exists(importer=imported, imported=module)
    ]
    assert cycles == []


def _write_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return [
        f"{name}:{node.lineno} {node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and WRITE_CALL.search(node.func.attr)
        and not _reads(node)
    ]


def _reads(call: ast.Call) -> bool:
    """A raw request whose method is the literal ``"GET"``."""
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and first.value == "GET"


def test_only_the_change_path_writes_to_kubernetes() -> None:
    calls = []
    for path in sorted((ROOT / "backend").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if not relative.startswith(ALLOWED_WRITERS):
            calls += _write_calls(path)
    assert calls == []


def test_the_write_scan_finds_a_write(tmp_path: Path) -> None:
    """The scan above would see a write, were one added; a raw GET is a read."""
    sample = ROOT / "backend" / "changes" / "kube.py"
    assert any("param_serialize" in call for call in _write_calls(sample))
    written = tmp_path / "raw.py"
    written.write_text(
        'api.call_api("GET", url)\napi.call_api(method, url)\napi.param_serialize("PATCH", p)\n'
    )
    calls = [call.split(" ", 1)[1] for call in _write_calls(written)]
    assert calls == ["call_api", "param_serialize"]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_tests_never_import_the_benchmarks() -> None:
    """The benchmarks use the tests' shared fixtures (``tests/support``), never the other way
    round: a test must not break because a benchmark changed."""
    importing = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if "bench" in _imported_packages(path)
    ]
    assert importing == []
