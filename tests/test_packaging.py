"""Deterministic zips: same source, same bytes, same CodeSha256; one zip per function."""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from multiregion import packaging


def entries(data: bytes) -> list[zipfile.ZipInfo]:
    return zipfile.ZipFile(io.BytesIO(data)).infolist()


@pytest.mark.parametrize("component", [None, "put", "get", "health"])
def test_building_twice_gives_identical_bytes(component: str | None) -> None:
    first, second = packaging.build_zip(component), packaging.build_zip(component)
    assert first == second
    assert packaging.code_sha256(first) == packaging.code_sha256(second)


def test_code_sha256_is_lambdas_base64_sha256() -> None:
    data = packaging.build_zip("put")
    assert packaging.code_sha256(data) == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_entries_are_sorted_with_fixed_timestamps_modes_and_compression() -> None:
    infos = entries(packaging.build_zip())
    names = [i.filename for i in infos]
    assert names == sorted(names) == ["common.py", "get_item.py", "health.py", "put_item.py"]
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
        assert info.create_system == 3
        assert info.compress_type == zipfile.ZIP_STORED


def test_each_function_gets_only_its_handler_and_the_shared_module() -> None:
    for component, package in packaging.PACKAGES.items():
        assert [i.filename for i in entries(packaging.build_zip(component))] == sorted(
            [f"{package.module}.py", "common.py"])
    assert len({packaging.build_zip(c) for c in packaging.PACKAGES}) == 3


def test_the_zip_holds_the_sources_as_they_are() -> None:
    archive = zipfile.ZipFile(io.BytesIO(packaging.build_zip("health")))
    assert archive.read("health.py") == (packaging.HANDLERS_DIR / "health.py").read_bytes()


def test_changing_one_source_byte_changes_the_sha(monkeypatch: pytest.MonkeyPatch) -> None:
    before = {c: packaging.code_sha256(packaging.build_zip(c)) for c in packaging.PACKAGES}
    original = packaging.read_source

    def edited(module: str) -> bytes:
        source = original(module)
        return source.replace(b"default 200", b"default 201") if module == "health" else source

    monkeypatch.setattr(packaging, "read_source", edited)
    after = {c: packaging.code_sha256(packaging.build_zip(c)) for c in packaging.PACKAGES}
    assert after["health"] != before["health"]
    assert after["put"] == before["put"] and after["get"] == before["get"]


def test_line_endings_do_not_change_the_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = packaging.build_zip("get")
    for name in ("get_item.py", "common.py"):
        source = (packaging.HANDLERS_DIR / name).read_bytes()
        (tmp_path / name).write_bytes(source.replace(b"\n", b"\r\n"))
    monkeypatch.setattr(packaging, "HANDLERS_DIR", tmp_path)
    assert packaging.build_zip("get") == before


def test_unknown_function_is_refused() -> None:
    with pytest.raises(ValueError, match="no function 'delete'"):
        packaging.build_zip("delete")


def test_handlers_import_from_the_zip_root_without_the_package(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    for component, package in packaging.PACKAGES.items():
        root = tmp_path / component
        zipfile.ZipFile(io.BytesIO(packaging.build_zip(component))).extractall(root)
        sys.path.insert(0, str(root))
        try:
            module = importlib.import_module(package.module)
            assert module.__file__ == str(root / f"{package.module}.py")
            assert sys.modules["common"].__file__ == str(root / "common.py")
            assert callable(getattr(module, package.handler.split(".")[1]))
            if component == "health":
                response = module.handler({"httpMethod": "GET", "path": "/health", "resource": "/health"})
                assert response["statusCode"] == 200
        finally:
            sys.path.remove(str(root))
            for name in package.modules:
                sys.modules.pop(name, None)


# ------------------------------------------------------------------------------------ an app of its own


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


APP = {
    "orders.py": ("from lib import db\nimport util.text\nfrom . import shared\n\n\n"
                  "def create(event, context):\n    import lazy\n    return lazy.VALUE\n"),
    "users.py": "import shared\n\nhandler = shared.make()\n",
    "shared.py": "import json\n\n\ndef make():\n    return json.dumps\n",
    "lazy.py": "VALUE = 1\n",
    "unused.py": "import lib.unused\n",
    "prices.json": '{"eur": 1}',
    "lib/__init__.py": "",
    "lib/db.py": "from .models import Order\nimport boto3\n",
    "lib/models.py": "class Order:\n    pass\n",
    "lib/unused.py": "",
    "lib/schema.json": "{}",
    "lib/sql/create.sql": "create table",
    "util/text.py": "",  # util/ is a namespace package: no __init__.py
    "util/words.txt": "a b",
    "templates/page.html": "<p>hi</p>",
    "tests/test_orders.py": "def test():\n    pass\n",
    "test_local.py": "",
    "conftest.py": "",
    "fixtures.json": "not a test: packaged",
    "requirements.txt": "boto3\n",
    ".env": "SECRET=1",
    "__pycache__/orders.cpython-312.pyc": b"\0",
    "stale.pyc": b"\0",
    ".venv/pyvenv.cfg": "home = /usr",
    "env/pyvenv.cfg": "home = /usr",
    "env/lib/data.json": "{}",
}


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "app", APP)


def test_the_builtin_item_api_packages_to_the_same_bytes_as_build_zip() -> None:
    for component, package in packaging.PACKAGES.items():
        files = packaging.function_files(packaging.BUILTIN_SOURCE, package.module)
        assert packaging.function_zip(f"items-{component}", files) == packaging.build_zip(component)
    for route in (*packaging.BUILTIN_ROUTES, packaging.Route("GET", "/health", packaging.HEALTH_HANDLER, "none")):
        packaging.check_handler(packaging.BUILTIN_SOURCE, route.handler)


def test_a_function_gets_its_import_closure_and_the_data_beside_it(app: Path) -> None:
    assert sorted(packaging.function_files(app, "orders")) == [
        "fixtures.json", "lazy.py", "lib/__init__.py", "lib/db.py", "lib/models.py", "lib/schema.json",
        "orders.py", "prices.json", "shared.py", "util/text.py", "util/words.txt"]
    assert sorted(packaging.function_files(app, "users")) == ["fixtures.json", "prices.json", "shared.py", "users.py"]


def test_the_package_relative_import_idiom_of_the_builtin_handlers(tmp_path: Path) -> None:
    idiom = "if __package__:\n    from . import common\nelse:\n    import common\n"
    app = write_tree(tmp_path / "app", {"api/__init__.py": "", "api/orders.py": idiom, "api/common.py": "",
                                        "api/other.py": "", "common.py": "", "top.py": idiom})
    # Both branches count, as nothing runs: in api/ the else branch's `import common` is the root's.
    assert sorted(packaging.function_files(app, "api.orders")) == ["api/__init__.py", "api/common.py",
                                                                    "api/orders.py", "common.py"]
    assert sorted(packaging.function_files(app, "top")) == ["common.py", "top.py"]


def test_include_globs_go_into_every_function(app: Path) -> None:
    for module in ("orders", "users"):
        files = packaging.function_files(app, module, include=["templates/*.html", "lib/sql"])
        assert files["templates/page.html"] == b"<p>hi</p>" and "lib/sql/create.sql" in files


@pytest.mark.parametrize(("pattern", "why"), [("templates/*.txt", "matches no file"),
                                               ("__pycache__/*", "never packaged"),
                                               ("tests/*", "never packaged"),
                                               ("env/lib/*", "never packaged"), (".venv/*", "never packaged"),
                                               ("../outside/*", "inside it"), ("/etc/*", "inside it")])
def test_include_globs_that_bring_nothing_are_refused(app: Path, pattern: str, why: str) -> None:
    with pytest.raises(packaging.PackagingError, match=why):
        packaging.function_files(app, "orders", include=[pattern])


def shas(app: Path, include: tuple[str, ...] = ()) -> dict[str, str]:
    return {m: packaging.code_sha256(packaging.function_zip(m, packaging.function_files(app, m, include)))
            for m in ("orders", "users")}


def test_same_inputs_same_sha_and_a_change_touches_only_the_zips_holding_it(app: Path) -> None:
    before = shas(app)
    assert shas(app) == before
    (app / "lib/models.py").write_text("class Order:\n    id = 1\n")
    after_models = shas(app)
    assert after_models["orders"] != before["orders"] and after_models["users"] == before["users"]
    (app / "shared.py").write_text("import json\n\n\ndef make():\n    return json.loads\n")
    after_shared = shas(app)
    assert all(after_shared[m] != after_models[m] for m in after_shared)
    (app / "unused.py").write_text("CHANGED = 1\n")
    (app / "tests/test_orders.py").write_text("CHANGED = 1\n")
    (app / "__pycache__/orders.cpython-312.pyc").write_bytes(b"\1")
    assert shas(app) == after_shared
    with_templates = shas(app, ("templates/*",))
    (app / "templates/page.html").write_text("<p>changed</p>")
    assert all(shas(app, ("templates/*",))[m] != with_templates[m] for m in with_templates)


def test_python_line_endings_and_file_times_do_not_change_the_zip(app: Path) -> None:
    before = shas(app)
    for name in ("orders.py", "shared.py"):
        path = app / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert shas(app) == before


def test_a_vendored_file_may_not_shadow_a_source_file(app: Path, tmp_path: Path) -> None:
    vendored = write_tree(tmp_path / "site", {"shared.py": "", "dep/__init__.py": "",
                                              "dep/__pycache__/x.pyc": b"\0"})
    with pytest.raises(packaging.PackagingError, match="shared.py is both in the source dir"):
        packaging.function_files(app, "users", vendored=vendored)
    (vendored / "shared.py").unlink()
    files = packaging.function_files(app, "users", vendored=vendored)
    assert "dep/__init__.py" in files and not any("__pycache__" in name for name in files)


def test_zips_over_lambdas_limits_are_refused_with_the_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (packaging.ZIPPED_MAX_BYTES, packaging.UNZIPPED_MAX_BYTES) == (52_428_800, 262_144_000)
    with pytest.raises(packaging.PackagingError) as refused:
        packaging.function_zip("items-orders", {"big.bin": b"\0" * packaging.ZIPPED_MAX_BYTES})
    message = str(refused.value)
    assert message.startswith("function items-orders: the zip is 50.0 MiB")
    assert "50.0 MiB (52,428,800 bytes) zipped" in message and "big.bin" in message
    monkeypatch.setattr(packaging, "ZIPPED_MAX_BYTES", 10**9)
    monkeypatch.setattr(packaging, "UNZIPPED_MAX_BYTES", 1000)
    with pytest.raises(packaging.PackagingError, match=r"\(1,001 bytes\) unzipped"):
        packaging.function_zip("items-orders", {"a.txt": b"x" * 1001})
    assert packaging.function_zip("items-orders", {"a.txt": b"x" * 1000})


# ----------------------------------------------------------------------------------------- handlers


@pytest.mark.parametrize(("source", "handler"), [
    ("def handler(event, context):\n    pass\n", "app.handler"),
    ("async def handler(event, context):\n    pass\n", "app.handler"),
    ("handler = print\n", "app.handler"),
    ("a, (b, handler) = 1, (2, 3)\n", "app.handler"),
    ("handler: object = print\n", "app.handler"),
    ("from json import dumps as handler\n", "app.handler"),
    ("import json as handler\n", "app.handler"),
    ("from json import dumps\n", "app.dumps"),
    ("try:\n    from fast import handler\nexcept ImportError:\n    def handler(e, c):\n        pass\n",
     "app.handler"),
    ("if True:\n    handler = print\n", "app.handler"),
])
def test_check_handler_finds_top_level_definitions(tmp_path: Path, source: str, handler: str) -> None:
    write_tree(tmp_path, {"app.py": source})
    packaging.check_handler(tmp_path, handler)


def test_check_handler_finds_modules_of_packages_in_either_form(tmp_path: Path) -> None:
    write_tree(tmp_path, {"api/__init__.py": "", "api/orders.py": "def create(e, c):\n    pass\n",
                          "api/users/__init__.py": "def fetch(e, c):\n    pass\n"})
    for handler in ("api.orders.create", "api/orders.create", "api.users.fetch"):
        packaging.check_handler(tmp_path, handler)


def test_check_handler_never_imports_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    write_tree(tmp_path, {"app.py": f"open({str(marker)!r}, 'w').close()\n\n\ndef handler(e, c):\n    pass\n"})
    packaging.check_handler(tmp_path, "app.handler")
    assert not marker.exists()


@pytest.mark.parametrize(("files", "handler", "message"), [
    ({}, "orders.create", r"module 'orders' not found: looked for .*/orders\.py and .*/orders/__init__\.py"),
    ({"api/__init__.py": ""}, "api.orders.create",
     r"module 'api.orders' not found: looked for .*/api/orders\.py and .*/api/orders/__init__\.py"),
    ({"orders.py": "def fetch(e, c):\n    pass\n"}, "orders.create",
     r"orders\.py has no top-level 'create' \(looked for def, async def, an assignment, or an import as create\)"),
    ({"orders.py": "class Api:\n    def create(self, e, c):\n        pass\n"}, "orders.create", "no top-level"),
    ({"orders.py": "def outer():\n    def create(e, c):\n        pass\n"}, "orders.create", "no top-level"),
    ({"orders.py": "create: object\n"}, "orders.create", "no top-level"),
    ({"orders.py": "def create(e, c)\n    pass\n"}, "orders.create", r"orders\.py:1: .*\(parsed with Python 3\.\d+\)"),
    ({}, "orders", "not of the form module.function"),
    ({}, "orders.", "not of the form module.function"),
    ({}, "2fa.create", "not of the form module.function"),
])
def test_check_handler_says_which_file_it_looked_at_and_what_was_missing(tmp_path: Path, files: dict[str, str],
                                                                        handler: str, message: str) -> None:
    write_tree(tmp_path, files)
    with pytest.raises(packaging.PackagingError, match=message):
        packaging.check_handler(tmp_path, handler)


# ------------------------------------------------------------------------------------------- vendoring


def write_wheel(directory: Path, name: str, version: str, tag: str = "py3-none-any",
                console_script: bool = False) -> Path:
    """A wheel written by hand (METADATA, WHEEL, RECORD): what pip needs, and nothing from a registry."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n\n\ndef main():\n    return VERSION\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: "
                               f"{'true' if tag.endswith('-any') else 'false'}\nTag: {tag}\n")}
    if console_script:
        files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{name} = {name}:main\n"
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(text.encode())}" for path, text in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local wheel directory that pip uses instead of any index (offline)."""
    directory = tmp_path / "wheels"
    write_wheel(directory, "tinylib", "1.0", console_script=True)
    write_wheel(directory, "armonly", "2.0", tag="cp312-cp312-manylinux_2_28_aarch64")
    write_wheel(directory, "newpy", "1.0", tag="cp313-cp313-manylinux2014_x86_64")
    write_wheel(directory, "macos", "1.0", tag="cp312-cp312-macosx_11_0_arm64")
    (directory / "srconly-1.0.tar.gz").write_bytes(b"not opened: an sdist is never built")
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_REQUIRE_VIRTUALENV", "PIP_TARGET", "PIP_USER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(directory))
    return directory


def requirements(tmp_path: Path, text: str, name: str = "requirements.txt") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_vendor_installs_a_wheel_without_what_carries_this_machine(tmp_path: Path, wheels: Path) -> None:
    site = packaging.vendor(requirements(tmp_path, "tinylib==1.0\n"), "python3.12", "x86_64", tmp_path / "cache")
    files = tree(site)
    assert sorted(files) == ["tinylib-1.0.dist-info/INSTALLER", "tinylib-1.0.dist-info/METADATA",
                             "tinylib-1.0.dist-info/RECORD", "tinylib-1.0.dist-info/REQUESTED",
                             "tinylib-1.0.dist-info/WHEEL", "tinylib-1.0.dist-info/entry_points.txt",
                             "tinylib/__init__.py"]  # no bin/ (a shebang of this machine), no __pycache__
    recorded = {line.split(",")[0] for line in files["tinylib-1.0.dist-info/RECORD"].decode().splitlines()}
    assert recorded == set(files)  # the dropped console script's line is gone too


def test_vendor_drops_direct_url_so_where_the_wheel_was_does_not_matter(tmp_path: Path, wheels: Path) -> None:
    results = []
    for place in ("one", "two"):
        shutil.copy(wheels / "tinylib-1.0-py3-none-any.whl", requirements(tmp_path / place, "").parent)
        reqs = requirements(tmp_path / place, "./tinylib-1.0-py3-none-any.whl\n")
        results.append(tree(packaging.vendor(reqs, "python3.12", "x86_64", tmp_path / place / "cache")))
    assert results[0] == results[1]
    assert not any(name.endswith("direct_url.json") for name in results[0])
    assert b"direct_url.json" not in results[0]["tinylib-1.0.dist-info/RECORD"]


def test_vendor_caches_by_requirements_runtime_and_architecture(tmp_path: Path, wheels: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    reqs = requirements(tmp_path, "tinylib==1.0\n")
    first = packaging.vendor(reqs, "python3.12", "x86_64", tmp_path / "cache")

    def no_pip(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pip ran for a cached entry")

    monkeypatch.setattr(packaging.subprocess, "run", no_pip)
    assert packaging.vendor(reqs, "python3.12", "x86_64", tmp_path / "cache") == first
    monkeypatch.undo()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    others = {packaging.vendor(reqs, "python3.13", "x86_64", tmp_path / "cache"),
              packaging.vendor(reqs, "python3.12", "arm64", tmp_path / "cache")}
    reqs.write_text("tinylib==1.0  # pinned\n")
    others.add(packaging.vendor(reqs, "python3.12", "x86_64", tmp_path / "cache"))
    assert first not in others and len(others) == 3
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([first.name, *(p.name for p in others)])


def test_vendor_installs_for_the_functions_platform_not_this_machines(tmp_path: Path, wheels: Path) -> None:
    reqs = requirements(tmp_path, "armonly==2.0\n")
    site = packaging.vendor(reqs, "python3.12", "arm64", tmp_path / "cache")  # a manylinux_2_28 aarch64 wheel
    assert (site / "armonly/__init__.py").is_file()
    with pytest.raises(packaging.PackagingError, match=r"no wheel of armonly==2.0 for python3.12 on x86_64"):
        packaging.vendor(reqs, "python3.12", "x86_64", tmp_path / "cache")
    newpy = requirements(tmp_path, "newpy\n", "newpy.txt")
    assert (packaging.vendor(newpy, "python3.13", "x86_64", tmp_path / "cache") / "newpy").is_dir()
    with pytest.raises(packaging.PackagingError, match="no wheel of newpy for python3.12"):
        packaging.vendor(newpy, "python3.12", "x86_64", tmp_path / "cache")


@pytest.mark.parametrize("requirement", ["srconly==1.0", "macos"])
def test_a_package_without_a_lambda_wheel_is_an_error_not_an_sdist_build(tmp_path: Path, wheels: Path,
                                                                        requirement: str) -> None:
    with pytest.raises(packaging.PackagingError) as refused:
        packaging.vendor(requirements(tmp_path, f"{requirement}\n"), "python3.12", "x86_64", tmp_path / "cache")
    message = str(refused.value)
    assert f"no wheel of {requirement}" in message and "sdists are never built" in message
    assert "pip said:\nERROR:" in message
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # nothing half-made is left to be reused


def test_pip_failures_carry_the_end_of_its_stderr(tmp_path: Path, wheels: Path) -> None:
    with pytest.raises(packaging.PackagingError, match=r"pip failed \(exit \d+\) installing .*\n.*ERROR"):
        packaging.vendor(requirements(tmp_path, "tinylib==1.0 ; nonsense\n"), "python3.12", "x86_64",
                         tmp_path / "cache")


def test_vendor_without_requirements_runs_no_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaging.subprocess, "run", lambda *a, **k: pytest.fail("pip ran"))
    site = packaging.vendor(requirements(tmp_path, "# none yet\n\n"), "python3.12", "x86_64", tmp_path / "c")
    assert site.is_dir() and list(site.iterdir()) == []


@pytest.mark.parametrize(("runtime", "architecture", "message"), [
    ("python3.9", "x86_64", "runtime 'python3.9'"), ("python3.12", "amd64", "architecture 'amd64'")])
def test_vendor_refuses_runtimes_and_architectures_lambda_does_not_have(tmp_path: Path, runtime: str,
                                                                        architecture: str, message: str) -> None:
    with pytest.raises(packaging.PackagingError, match=message):
        packaging.vendor(requirements(tmp_path, "x\n"), runtime, architecture, tmp_path / "cache")


def test_a_vendored_dependency_imports_from_the_functions_zip(tmp_path: Path, wheels: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    app = write_tree(tmp_path / "app", {"orders.py": "import tinylib\n\n\ndef create(e, c):\n"
                                                     "    return tinylib.main()\n"})
    site = packaging.vendor(requirements(tmp_path, "tinylib==1.0\n"), "python3.12", "x86_64", tmp_path / "cache")
    packaging.check_handler(app, "orders.create")
    data = packaging.function_zip("orders", packaging.function_files(app, "orders", vendored=site))
    root = tmp_path / "extracted"
    zipfile.ZipFile(io.BytesIO(data)).extractall(root)
    monkeypatch.syspath_prepend(str(root))
    try:
        assert importlib.import_module("orders").create({}, None) == "1.0"
    finally:
        for name in ("orders", "tinylib"):
            sys.modules.pop(name, None)
