"""The import graph shows one direction: each package imports only its own layer or lower ones.

    integrations < opsportal (kernel) < observability < projects < clusters < configs < deploys < alerting
    < wiring

The wiring (settings, URLs, ASGI/Celery apps, routing, the portal-wide pages and API) may import any app.
Nothing in the application imports ``sandbox``; the sandbox and the tests may import anything.
The log proxy (``logproxy/``) is a separate program with its own image: it imports only itself, the
standard library and its own requirements (logproxy/requirements.txt).
Read from the source (AST), function-level imports included, so a lazy import cannot hide a cycle.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = [
    "integrations",
    "opsportal",
    "observability",
    "projects",
    "clusters",
    "configs",
    "deploys",
    "alerting",
    "wiring",
]
WIRING = {
    "opsportal.settings",
    "opsportal.settings_test",
    "opsportal.urls",
    "opsportal.asgi",
    "opsportal.celery",
    "opsportal.routing",
    "opsportal.api",
    "opsportal.views",
    "opsportal.cockpit",
    "opsportal.dora",
    "opsportal.dora_api",
    "opsportal.context_processors",
    "opsportal.tokens",
    "opsportal.admin_auth",
}
# Modules whose layer is not their package's. The Run mechanics audit and read the project, so they sit
# just above projects, below the apps whose work they run.
# Live-socket revocation reacts to membership changes, so it reads ProjectMember and sits above projects
# with the consumers that use it (to clean: let projects register it, as it registers stream kinds).
MODULE_LAYERS: dict[str, str] = {
    "opsportal.runs": "projects",
    "observability.revocation": "projects",
    "observability.consumers": "projects",
}
APPLICATION = [
    "integrations",
    "opsportal",
    "observability",
    "projects",
    "clusters",
    "configs",
    "deploys",
    "alerting",
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    for name, layer in MODULE_LAYERS.items():
        if module == name or module.startswith(f"{name}."):
            return layer
    if module in WIRING or any(module.startswith(f"{w}.") for w in WIRING):
        return "wiring"
    top = module.split(".")[0]
    return top if top in LAYERS or top == "sandbox" else None


def _imports(path: Path):
    """(line, imported module, imported names) for every absolute import in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def _application_files():
    for package in APPLICATION:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_application_code_imports_only_its_own_or_lower_layers():
    wrong = []
    for path in _application_files():
        here = _layer(_module_name(path))
        for line, module, _names in _imports(path):
            there = _layer(module)
            if there is None or there == here:
                continue
            if there == "sandbox" or LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports {module} ({there})")
    assert wrong == []


def test_no_private_name_is_imported_from_another_app():
    wrong = []
    for path in _application_files():
        here = _module_name(path).split(".")[0]
        for line, module, names in _imports(path):
            if _layer(module) is None or module.split(".")[0] == here:
                continue
            private = [name for name in names if name.startswith("_")] + [
                part for part in module.split(".") if part.startswith("_") and part != "__init__"
            ]
            if private:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {private} from {module}")
    assert wrong == []


def test_tests_import_helpers_never_test_modules_or_private_names():
    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for line, module, names in _imports(path):
            leaf = module.split(".")[-1]
            if module.startswith("tests.") and leaf.startswith("test_"):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports the test module {module}")
            elif _layer(module) is not None and any(name.startswith("_") for name in names):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports private {names} from {module}")
    assert wrong == []


# The log proxy's requirements (logproxy/requirements.txt) by import name; uvloop and cramjam (lz4/zstd
# compression) are used when installed.
LOGPROXY_THIRD_PARTY = {"aiokafka", "hiredis", "prometheus_client", "uvloop", "cramjam"}


def test_the_log_proxy_imports_only_itself_the_standard_library_and_its_requirements():
    allowed = {"logproxy", *LOGPROXY_THIRD_PARTY, *sys.stdlib_module_names}
    wrong = []
    for path in sorted((ROOT / "logproxy").rglob("*.py")):
        for line, module, _names in _imports(path):
            if module.split(".")[0] not in allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert wrong == []
    assert (ROOT / "logproxy" / "__main__.py").is_file()


def test_the_checks_see_a_violation(tmp_path):
    """The reader finds lazy imports and names their layers, so the tests above can fail."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from deploys.tasks import _run_step\n    import sandbox.kube.cluster\n")
    found = list(_imports(sample))
    assert found == [(2, "deploys.tasks", ["_run_step"]), (3, "sandbox.kube.cluster", [])]
    assert [_layer(module) for _, module, _ in found] == ["deploys", "sandbox"]
    assert LAYERS.index(_layer("deploys.tasks")) > LAYERS.index(_layer("clusters.tasks"))
    assert _layer("opsportal.urls") == "wiring" and _layer("opsportal.errors") == "opsportal"
