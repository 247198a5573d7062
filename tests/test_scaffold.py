"""`init`: a new project that validates, packages like the built-in item API, and whose tests pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from multiregion import packaging
from multiregion.config import load_config
from multiregion.scaffold import ScaffoldError, init_project

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"
EXPECTED = ["README.md", "app/common.py", "app/get_item.py", "app/put_item.py", "app/requirements.txt",
            "config.schema.json", "config.yaml", "tests/test_app.py"]


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    """The new project's tests as its owner runs them: plain pytest, nothing of this repo on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AWS_ENDPOINT_URL")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_init_writes_the_project_and_copies_the_item_api(tmp_path: Path) -> None:
    project = tmp_path / "new"
    written = init_project(project)
    assert written == [project / name for name in EXPECTED]
    assert listing(project) == EXPECTED
    for name in ("common.py", "get_item.py", "put_item.py"):
        assert (project / "app" / name).read_bytes() == (packaging.HANDLERS_DIR / name).read_bytes()
    assert not (project / "app" / "health.py").exists()  # the health function stays the tool's own
    assert (project / "README.md").read_text().startswith("# ")


def test_the_config_is_the_demo_stack_with_an_app_section(tmp_path: Path) -> None:
    init_project(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    demo = yaml.safe_load(REPO_CONFIG.read_text())
    assert config["endpoint"] == "sandbox" and config["regions"] == ["eu-west-1", "us-east-1"]
    for section in ("domain", "health_check", "routing", "table", "api"):
        assert config[section] == demo[section]
    app = config["app"]
    assert (app["source"], app["requirements"], app["runtime"], app["architecture"]) == (
        "./app", "./app/requirements.txt", "python3.12", "x86_64")
    assert app["routes"] == [
        {"method": "POST", "path": "/item", "handler": "put_item.handler", "table": "write"},
        {"method": "GET", "path": "/item/{id}", "handler": "get_item.handler", "table": "read"}]
    # Everything but `app` validates with today's loader (which does not know `app` yet).
    del config["app"]
    (tmp_path / "without-app.yaml").write_text(yaml.safe_dump(config))
    loaded = load_config(tmp_path / "without-app.yaml")
    assert (loaded.endpoint, list(loaded.regions), loaded.domain.name) == ("sandbox", ["eu-west-1", "us-east-1"],
                                                                          demo["domain"]["name"])


def test_the_new_app_packages_exactly_like_the_builtin_item_api(tmp_path: Path) -> None:
    init_project(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    source = tmp_path / config["app"]["source"]
    builtin = {route.handler: component for component, route in
               zip(("put", "get"), packaging.BUILTIN_ROUTES, strict=True)}
    for route in config["app"]["routes"]:
        packaging.check_handler(source, route["handler"])
        module, _ = packaging.split_handler(route["handler"])
        data = packaging.function_zip(module, packaging.function_files(source, module))
        assert data == packaging.build_zip(builtin[route["handler"]])
    site = packaging.vendor(tmp_path / config["app"]["requirements"], "python3.12", "x86_64", tmp_path / "cache")
    assert list(site.iterdir()) == []  # the commented requirements file vendors nothing


def test_the_new_projects_tests_pass_with_plain_pytest_and_catch_a_broken_handler(tmp_path: Path) -> None:
    init_project(tmp_path)
    passed = run_pytest(tmp_path)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "3 passed" in passed.stdout
    put_item = tmp_path / "app" / "put_item.py"
    put_item.write_text(put_item.read_text().replace("item[common.REGION_FIELD] = common.region()",
                                                     "item[common.REGION_FIELD] = 'nowhere'"))
    broken = run_pytest(tmp_path)
    assert broken.returncode == 1 and "1 failed, 2 passed" in broken.stdout


def test_init_never_overwrites_and_then_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "config.yaml").write_text("mine")
    (tmp_path / "app" / "put_item.py").write_text("mine too")
    with pytest.raises(ScaffoldError) as refused:
        init_project(tmp_path)
    message = str(refused.value)
    assert str(tmp_path / "config.yaml") in message and str(tmp_path / "app" / "put_item.py") in message
    assert "nothing was written" in message
    assert listing(tmp_path) == ["app/put_item.py", "config.yaml"]
    assert (tmp_path / "config.yaml").read_text() == "mine"


def test_init_into_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(ScaffoldError, match="not a directory"):
        init_project(tmp_path / "taken")
