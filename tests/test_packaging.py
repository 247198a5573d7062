"""Deterministic zips: same source, same bytes, same CodeSha256; one zip per function."""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import sys
import zipfile
from pathlib import Path

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
