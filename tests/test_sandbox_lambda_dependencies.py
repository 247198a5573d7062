"""A zip's own copies of the runtime's libraries win, as on AWS, while other zips fork from the warm server."""

from __future__ import annotations

import importlib.machinery
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from multiregion.sandbox.lambda_process import top_level_modules
from multiregion.sandbox.lambda_runtime import LambdaRuntime
from multiregion.sandbox.server import Sandbox
from tests.test_sandbox_lambda import call, reuse_clients, zip_of

REPORTS = """
import os
import sys

{imports}


def handler(event, context):
    module = sys.modules[event["module"]]
    return {{"file": module.__file__, "marker": getattr(module, "MARKER", None), "ppid": os.getppid(),
            "cwd": os.getcwd()}}
"""


@pytest.fixture
def aws(aws: Callable[..., Any]) -> Callable[..., Any]:
    return reuse_clients(aws)


@pytest.fixture
def role(aws: Any) -> str:
    from tests.test_sandbox_lambda import create_role

    return create_role(aws)


def run(aws: Any, role: str, name: str, files: dict[str, str], module: str) -> dict[str, Any]:
    aws("lambda", "eu-west-1").create_function(FunctionName=name, Runtime="python3.12", Role=role,
                                               Handler="app.handler", Code={"ZipFile": zip_of(files)})
    return dict(call(aws("lambda", "eu-west-1"), name, {"module": module})[1])


def fork_server_pid(sandbox: Sandbox) -> int:
    server = sandbox.extension(LambdaRuntime)._fork_server
    assert server is not None and server.alive()
    return int(server.proc.pid)


def test_the_fork_server_reports_boto3_and_its_dependencies(aws: Any, role: str, sandbox: Sandbox) -> None:
    run(aws, role, "plain", {"app.py": REPORTS.format(imports="import json")}, "json")
    preloaded = sandbox.extension(LambdaRuntime)._fork_server.preloaded  # type: ignore[union-attr]
    assert {"boto3", "botocore", "urllib3", "six", "dateutil", "jmespath"} <= preloaded
    assert not {"json", "os", "socket"} & preloaded  # the standard library is the runtime's anyway


def test_a_zip_with_its_own_urllib3_gets_its_copy(aws: Any, role: str, sandbox: Sandbox) -> None:
    out = run(aws, role, "own-urllib3", {"app.py": REPORTS.format(imports="import urllib3"),
                                         "urllib3/__init__.py": "MARKER = 'urllib3 from the zip'\n"}, "urllib3")
    assert out["marker"] == "urllib3 from the zip"
    assert out["file"] == os.path.join(out["cwd"], "urllib3", "__init__.py")
    assert out["ppid"] == os.getpid() != fork_server_pid(sandbox)  # spawned fresh by the sandbox


def test_a_zip_with_its_own_six_gets_its_copy(aws: Any, role: str, sandbox: Sandbox) -> None:
    out = run(aws, role, "own-six", {"app.py": REPORTS.format(imports="import six"),
                                     "six.py": "MARKER = 'six from the zip'\n"}, "six")
    assert (out["marker"], out["file"]) == ("six from the zip", os.path.join(out["cwd"], "six.py"))
    assert out["ppid"] == os.getpid()


def test_a_vendored_folder_put_on_sys_path_gets_its_copy(aws: Any, role: str) -> None:
    imports = "sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'vendor'))\nimport urllib3"
    out = run(aws, role, "vendored", {"app.py": REPORTS.format(imports=imports),
                                      "vendor/urllib3/__init__.py": "MARKER = 'vendored'\n"}, "urllib3")
    assert out["marker"] == "vendored" and out["file"].startswith(out["cwd"])


def test_a_zip_without_such_modules_forks_from_the_warm_server(aws: Any, role: str, sandbox: Sandbox) -> None:
    out = run(aws, role, "plain", {"app.py": REPORTS.format(imports="import urllib3"),
                                   "helpers/six.py": "MARKER = 'a submodule, helpers.six'\n",
                                   "helpers/__init__.py": ""}, "urllib3")
    assert out["marker"] is None and not out["file"].startswith(out["cwd"])  # the runtime's urllib3
    assert out["ppid"] == fork_server_pid(sandbox)


def test_top_level_modules_of_a_package(tmp_path: Path) -> None:
    extension = f"_speedups{importlib.machinery.EXTENSION_SUFFIXES[0]}"  # this Python's, which runs the zip
    files = ["app.py", "six.py", extension, "urllib3/__init__.py",
             "urllib3/util/__init__.py", "vendor/jmespath/__init__.py", "vendor/deeper/dateutil.py",
             "mypkg/__init__.py", "mypkg/boto3.py", "urllib3-2.0.dist-info/METADATA", "README.txt"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert top_level_modules(tmp_path) == {"app", "six", "_speedups", "urllib3", "vendor", "jmespath", "deeper",
                                           "dateutil", "mypkg"}
