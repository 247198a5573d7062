"""Deterministic zips of Lambda functions: the same source always gives the same bytes.

Lambda reports `CodeSha256` (base64 of the SHA-256 of the zip it holds), so a byte-identical local zip is
how `functions` knows the deployed code is current without uploading it again. Every field that zipfile
would take from the machine is fixed: entry order (sorted), timestamps (1980-01-01, the earliest a zip can
hold), modes (0o644, Unix), and compression (none: deflate's output depends on the zlib build, and the
handlers are a few kilobytes). Line endings of Python sources are normalised so a Windows checkout
packages the same bytes.

Two ways in:
- the built-in item API (`build_zip(component)`, `PACKAGES`): each function's zip holds its handler module
  and the shared `common` module, at the zip's root;
- a team's own app (`function_files`, `function_zip`, `vendor`, `check_handler`): one function per route,
  whose zip holds what that route's handler module needs, found from the source itself.

What `function_files` puts in one function's zip, all at the zip's root as they sit in the source dir:
1. the handler module and the static import closure of local modules: every `import x`, `from x import y`
   and relative import anywhere in a module (inside functions and `if`/`try` too, so both branches of
   `if __package__: from . import common` / `else: import common` count), resolved against the source
   dir; a package brings its `__init__.py` (and its parents'). Imports that resolve to nothing in the
   source dir (the standard library, boto3, vendored packages) are left to the runtime. A module the
   import closure cannot see (`importlib.import_module(name)`) needs `include`;
2. data files: the non-Python files that sit in the same directory as a module of the closure (not in
   its subdirectories). Code opens its data beside itself (`Path(__file__).parent / "rates.json"`,
   `importlib.resources` on its package), so a function gets the data of the code it runs, and a change
   to one package's data changes only the zips of the functions that import that package. Anything in a
   subdirectory that is not a package of the closure (`templates/`, `static/`) goes in through `include`;
3. the `include` globs (relative to the source dir), in every function's zip;
4. the vendored dependencies (`vendor`), at the root, as pip laid them out.
Never packaged, by any of these ways: `__pycache__/`, `*.pyc`/`*.pyo`, hidden files and directories
(`.git`, `.venv`, `.env`, editor state), virtualenvs (any directory holding a `pyvenv.cfg`), tests
(`tests/` and `test/` directories, `test_*.py`, `*_test.py`, `conftest.py`) and `requirements*.txt`
(installed by `vendor`, not read at run time). An import is always followed, even into a module those
rules name, since the function would fail without it.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

HANDLERS_DIR = Path(__file__).resolve().parent / "handlers"
SHARED_MODULES = ("common",)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
UNIX = 3

# Lambda quotas ("Deployment package (.zip file archive) size"): 50 MB zipped when uploaded directly
# through the API or SDKs, 250 MB unzipped. The unzipped figure is the one Lambda's own refusal spells out
# ("Unzipped size must be smaller than 262144000 bytes"). The zipped one is read as 50 MiB: CreateFunction
# refuses requests over 69,905,067 bytes, the base64 of 50 MiB, so a zip within a few kilobytes of it (the
# rest of the request: names, environment) may still be refused; that margin is not modelled here. Zips
# are stored, not deflated, so the zipped limit is the one that binds; larger code needs an S3 upload.
ZIPPED_MAX_BYTES = 50 * 1024 * 1024
UNZIPPED_MAX_BYTES = 262_144_000

# Lambda runtime -> the Python version pip installs for. Both run on Amazon Linux 2023 (Lambda's runtime
# table); AL2023's glibc is 2.34, so manylinux wheels up to 2_34 load there (checked against AL2023's
# package list as reported, not against an AWS page).
RUNTIMES = {"python3.12": "3.12", "python3.13": "3.13"}
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> the wheel platform's
GLIBC_MINORS = range(34, 16, -1)  # manylinux_2_34 ... manylinux_2_17 (= manylinux2014), newest first
# Bumped when what `vendor` leaves in a directory changes, so older cache entries are not reused.
VENDOR_FORMAT = b"multiregion-vendor-1"
PIP_TIMEOUT = 900.0
STDERR_TAIL_LINES = 12

HIDDEN_OR_CACHE = re.compile(r"^(\.|__pycache__$)")
TEST_DIRS = frozenset({"tests", "test"})
TEST_FILE = re.compile(r"^(test_.*\.py|.*_test\.py|conftest\.py)$")
NEVER_FILE = re.compile(r"^(.*\.py[co]|requirements.*\.txt|pyvenv\.cfg)$")


class PackagingError(Exception):
    """Code that cannot be packaged for Lambda as asked: the message says which file or package, and why."""


# ------------------------------------------------------------------------------------- built-in item API


@dataclass(frozen=True)
class Package:
    """One function's code: which component it is, its handler module and its handler string."""

    component: str  # the function is named config.name(component)
    module: str
    route: str

    @property
    def handler(self) -> str:
        return f"{self.module}.handler"

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.module, *SHARED_MODULES)


PACKAGES: dict[str, Package] = {
    "put": Package("put", "put_item", "POST /item"),
    "get": Package("get", "get_item", "GET /item/{id}"),
    "health": Package("health", "health", "GET /health"),
}


@dataclass(frozen=True)
class Route:
    """One route of an app: the function behind `method path` runs `handler`, with `table` access."""

    method: str
    path: str
    handler: str
    table: str  # read | write


# The item API expressed as an app: the same source dir and handlers as PACKAGES, packaged by
# `function_files` into the same bytes as `build_zip`. The health function stays the tool's own.
BUILTIN_SOURCE = HANDLERS_DIR
BUILTIN_ROUTES = (Route("POST", "/item", "put_item.handler", "write"),
                  Route("GET", "/item/{id}", "get_item.handler", "read"))
HEALTH_HANDLER = "health.handler"


def read_source(module: str) -> bytes:
    """The source of one handler module, with Unix line endings."""
    return (HANDLERS_DIR / f"{module}.py").read_bytes().replace(b"\r\n", b"\n")


def build_zip(component: str | None = None) -> bytes:
    """The zip for one function (`put`, `get`, `health`), or, without a name, one holding every handler."""
    if component is None:
        modules = sorted({m for p in PACKAGES.values() for m in p.modules})
    else:
        try:
            modules = sorted(PACKAGES[component].modules)
        except KeyError:
            raise ValueError(f"no function {component!r}; known: {', '.join(PACKAGES)}") from None
    return zip_files({f"{m}.py": read_source(m) for m in modules})


def zip_files(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = UNIX
            info.external_attr = FILE_MODE << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def code_sha256(data: bytes) -> str:
    """What Lambda reports as `CodeSha256` for this zip."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


# ---------------------------------------------------------------------------------------------- handlers


def split_handler(handler: str) -> tuple[str, str]:
    """`a.b.func` (or Lambda's `a/b.func`) -> (`a.b`, `func`); PackagingError when it is not of that form."""
    module, _, func = handler.strip().replace("/", ".").rpartition(".")
    if not module or not func or not all(_is_name(part) for part in (*module.split("."), func)):
        raise PackagingError(f"handler {handler!r} is not of the form module.function (e.g. orders.create, "
                             "api/orders.create): each part must be a Python identifier")
    return module, func


def _is_name(part: str) -> bool:
    import keyword

    return part.isidentifier() and not keyword.iskeyword(part)


def module_file(source_dir: Path, module: str) -> Path | None:
    """Where `a.b` lives in the source dir: `a/b.py`, else `a/b/__init__.py`; None when neither exists."""
    base = Path(source_dir).joinpath(*module.split("."))
    for candidate in (base.parent / f"{base.name}.py", base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def check_handler(source_dir: Path | str, handler: str) -> None:
    """Before anything is deployed: the handler's module is in the source dir and defines the function at top
    level. The module is parsed, never imported: the user's code does not run on this machine."""
    source_dir = Path(source_dir)
    module, func = split_handler(handler)
    path = module_file(source_dir, module)
    if path is None:
        base = source_dir.joinpath(*module.split("."))
        raise PackagingError(f"handler {handler!r}: module {module!r} not found: looked for "
                             f"{base.parent / (base.name + '.py')} and {base / '__init__.py'}")
    if func not in top_level_names(_parse(path)):
        raise PackagingError(f"handler {handler!r}: {path} has no top-level {func!r} (looked for def, async def, "
                             f"an assignment, or an import as {func})")


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        # Parsed by this machine's Python: syntax newer than it (while valid on the runtime) lands here too.
        raise PackagingError(f"{path}:{exc.lineno}: {exc.msg} (parsed with Python "
                             f"{sys.version_info.major}.{sys.version_info.minor})") from None


def top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds when it is imported, including inside top-level `if`, `try` and `with` blocks."""
    names: set[str] = set()
    for node in _top_level_statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(n for target in node.targets for n in _bound_names(target))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            names.update(_bound_names(node.target))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


_BLOCKS = (ast.If, ast.Try, ast.With, ast.AsyncWith, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))


def _top_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        yield node
        if isinstance(node, _BLOCKS):
            for field in ("body", "orelse", "finalbody"):
                yield from _top_level_statements(getattr(node, field, None) or [])
            for handler in getattr(node, "handlers", None) or []:
                yield from _top_level_statements(handler.body)


def _bound_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _bound_names(element)
    elif isinstance(target, ast.Starred):
        yield from _bound_names(target.value)


# --------------------------------------------------------------------------------------- import closure


def import_closure(source_dir: Path, module: str) -> dict[str, Path]:
    """Every local module `module` needs, by name (`a.b`), with its file; the module itself included."""
    source_dir = Path(source_dir)
    start = module_file(source_dir, module)
    if start is None:
        raise PackagingError(f"module {module!r} not found in {source_dir}")
    found: dict[str, Path] = {}
    pending = [module, *_parents(module)]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = module_file(source_dir, name)
        if path is None:  # the standard library, boto3, a vendored package, or a namespace package dir
            continue
        found[name] = path
        for imported in _imports(_parse(path), name, path.name == "__init__.py"):
            pending.extend(n for n in (*_parents(imported), imported) if n not in found)
    return found


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """The absolute names of what a module imports, as candidates: `from a import b` gives `a` and `a.b`
    (b may be a submodule or only a name in a; module_file tells them apart)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.level, node.module)
            if base is None:
                continue
            if base:
                names.add(".".join(base))
            names.update(".".join([*base, alias.name]) for alias in node.names if alias.name != "*")
    return names


def _resolve(package: list[str], level: int, module: str | None) -> list[str] | None:
    """The absolute parts of `from <level dots><module> import ...` in `package`; None past the source root.
    The source root itself counts as a package: `from . import common` in a root module is `common`, as
    the built-in handlers rely on."""
    if level == 0:
        return module.split(".") if module else []
    if level - 1 > len(package):
        return None
    base = package[:len(package) - (level - 1)]
    return base + (module.split(".") if module else [])


# ------------------------------------------------------------------------------------------------ files


def never_packaged(relative: PurePosixPath, source_dir: Path) -> bool:
    """The rule of the module docstring: caches, hidden files, virtualenvs, tests, requirements files."""
    *dirs, name = relative.parts
    if NEVER_FILE.match(name) or TEST_FILE.match(name) or HIDDEN_OR_CACHE.match(name):
        return True
    current = source_dir
    for part in dirs:
        current = current / part
        if HIDDEN_OR_CACHE.match(part) or part in TEST_DIRS or (current / "pyvenv.cfg").exists():
            return True
    return False


def _python_source(path: Path) -> bytes:
    return path.read_bytes().replace(b"\r\n", b"\n")


def _data_files(source_dir: Path, directories: Iterable[Path]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for directory in directories:
        for path in directory.iterdir():
            relative = PurePosixPath(path.relative_to(source_dir).as_posix())
            if path.is_file() and path.suffix != ".py" and not never_packaged(relative, source_dir):
                files[str(relative)] = path.read_bytes()
    return files


def _included_files(source_dir: Path, include: Iterable[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for pattern in include:
        parts = PurePosixPath(pattern).parts
        if not pattern or PurePosixPath(pattern).is_absolute() or ".." in parts:
            raise PackagingError(f"include {pattern!r}: a glob relative to the source dir {source_dir}, "
                                 "inside it, is expected")
        matched = [p for m in sorted(source_dir.glob(pattern)) for p in _files_under(m)]
        kept = {PurePosixPath(p.relative_to(source_dir).as_posix()): p for p in matched}
        kept = {r: p for r, p in kept.items() if not never_packaged(r, source_dir)}
        if not kept:
            what = "only files that are never packaged (caches, hidden, tests)" if matched else "no file"
            raise PackagingError(f"include {pattern!r} matches {what} under {source_dir}")
        for relative, path in kept.items():
            files[str(relative)] = _python_source(path) if path.suffix == ".py" else path.read_bytes()
    return files


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []


def _vendored_files(vendored: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(p for p in vendored.rglob("*") if p.is_file()):
        relative = PurePosixPath(path.relative_to(vendored).as_posix())
        if "__pycache__" in relative.parts or relative.suffix in (".pyc", ".pyo"):
            continue
        files[str(relative)] = path.read_bytes()
    return files


def function_files(source_dir: Path | str, handler_module: str, include: Iterable[str] = (),
                   vendored: Path | str | None = None) -> dict[str, bytes]:
    """What one function's zip holds, by path in the zip: see the module docstring for the rules."""
    source_dir = Path(source_dir)
    modules = import_closure(source_dir, handler_module)
    files = {PurePosixPath(p.relative_to(source_dir).as_posix()).as_posix(): _python_source(p)
             for p in modules.values()}
    files.update(_data_files(source_dir, sorted({p.parent for p in modules.values()})))
    files.update(_included_files(source_dir, include))
    if vendored is not None:
        for name, data in _vendored_files(Path(vendored)).items():
            if name in files:
                raise PackagingError(f"{name} is both in the source dir {source_dir} and among the vendored "
                                     "dependencies: rename the module, or drop the requirement")
            files[name] = data
    return files


def function_zip(function: str, files: dict[str, bytes]) -> bytes:
    """The deterministic zip of `files`, refused (PackagingError) when Lambda would refuse its size."""
    data = zip_files(files)
    unzipped = sum(len(content) for content in files.values())
    if len(data) > ZIPPED_MAX_BYTES or unzipped > UNZIPPED_MAX_BYTES:
        largest = sorted(files, key=lambda n: len(files[n]), reverse=True)[:3]
        raise PackagingError(
            f"function {function}: the zip is {_mb(len(data))} ({_mb(unzipped)} unzipped); Lambda takes at "
            f"most {_mb(ZIPPED_MAX_BYTES)} zipped for a direct upload and {_mb(UNZIPPED_MAX_BYTES)} unzipped. "
            f"Largest files: {', '.join(f'{n} ({_mb(len(files[n]))})' for n in largest)}")
    return data


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB ({size:,} bytes)"


# ------------------------------------------------------------------------------------------- vendoring


def platforms(architecture: str) -> list[str]:
    """The wheel platform tags a Lambda architecture loads, newest glibc first (pip prefers earlier ones).
    pip does not widen `manylinux_2_28` to older tags itself, so each is named; `manylinux2014` it widens
    to manylinux2010 and manylinux1."""
    arch = ARCHITECTURES[architecture]
    return [*(f"manylinux_2_{minor}_{arch}" for minor in GLIBC_MINORS), f"manylinux2014_{arch}"]


def vendor(requirements: Path | str, runtime: str, architecture: str, cache_dir: Path | str) -> Path:
    """The requirements installed for the Lambda platform, in a directory to put at the zip's root.

    pip installs wheels only (`--only-binary=:all:`): a package without a wheel for the platform is an
    error, never an sdist built for this machine by surprise. pip reads PIP_INDEX_URL, PIP_FIND_LINKS,
    PIP_NO_INDEX and its config from the environment as usual. The result is cached under `cache_dir` by a
    hash of the requirements file's content, the runtime and the architecture: only that file's own text
    counts (a file it includes with `-r`, or a new release of an unpinned requirement, does not refresh
    the cache), so pin versions. What pip leaves that carries this machine's paths or times is dropped:
    `__pycache__`/`*.pyc` (not written: `--no-compile`), `bin/` (console scripts whose first line names
    this machine's interpreter; nothing runs them on Lambda), each `*.dist-info/direct_url.json` (where
    the wheel was found), and their lines in `RECORD`."""
    if runtime not in RUNTIMES:
        raise PackagingError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)} is expected")
    if architecture not in ARCHITECTURES:
        raise PackagingError(f"architecture {architecture!r}: one of {', '.join(ARCHITECTURES)} is expected")
    requirements = Path(requirements)
    try:
        content = requirements.read_bytes()
    except OSError as exc:
        raise PackagingError(f"requirements {requirements}: {exc.strerror or exc}") from None
    key = hashlib.sha256(b"\0".join([VENDOR_FORMAT, content, runtime.encode(), architecture.encode()]))
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{runtime}-{architecture}-{key.hexdigest()[:20]}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".vendor-", dir=cache_dir))
    try:
        installed = staging / "site"
        installed.mkdir()
        if _has_requirements(content):
            _pip_install(requirements, installed, runtime, architecture)
            _make_deterministic(installed)
        try:
            installed.rename(target)
        except OSError:
            if not target.is_dir():  # another run filled the same entry meanwhile: take theirs
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _has_requirements(content: bytes) -> bool:
    lines = (line.split(b"#", 1)[0].strip() for line in content.splitlines())
    return any(lines)


def pip_command(requirements: Path, target: Path, runtime: str, architecture: str) -> list[str]:
    platform_args = [arg for tag in platforms(architecture) for arg in ("--platform", tag)]
    return [sys.executable, "-m", "pip", "install", "--requirement", str(requirements.resolve()),
            "--target", str(target), *platform_args, "--implementation", "cp",
            "--python-version", RUNTIMES[runtime], "--only-binary=:all:", "--no-compile",
            "--disable-pip-version-check", "--no-input", "--quiet"]


def _pip_install(requirements: Path, target: Path, runtime: str, architecture: str) -> None:
    where = f"{runtime} on {architecture}"
    try:
        # From the requirements' directory: pip resolves `./local/path` requirements against the cwd.
        result = subprocess.run(pip_command(requirements, target, runtime, architecture), cwd=requirements.parent,
                                capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise PackagingError(f"pip did not finish installing {requirements} for {where} within "
                             f"{PIP_TIMEOUT:.0f} s") from None
    if result.returncode == 0:
        return
    tail = "\n".join(line for line in result.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
    missing = re.findall(r"No matching distribution found for (\S+)", result.stderr)
    if missing:
        raise PackagingError(
            f"no wheel of {', '.join(missing)} for {where} (CPython {RUNTIMES[runtime]}, "
            f"manylinux {ARCHITECTURES[architecture]}); only wheels are installed, sdists are never built: pin "
            f"a version that publishes such a wheel, or drop the requirement. pip said:\n{tail}")
    raise PackagingError(f"pip failed (exit {result.returncode}) installing {requirements} for {where}:\n{tail}")


def _make_deterministic(site: Path) -> None:
    shutil.rmtree(site / "bin", ignore_errors=True)
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    for compiled in [*site.rglob("*.pyc"), *site.rglob("*.pyo")]:
        compiled.unlink()
    for info in sorted(site.glob("*.dist-info")):
        (info / "direct_url.json").unlink(missing_ok=True)
        record = info / "RECORD"
        if record.is_file():
            _rewrite_record(site, record)


def _rewrite_record(site: Path, record: Path) -> None:
    """Keep RECORD's lines for the files still there: the dropped files' lines carry their hashes (and
    direct_url.json's hash depends on where the wheel was found)."""
    kept = []
    for line in record.read_text(encoding="utf-8").splitlines():
        name = line.split(",", 1)[0].strip('"')
        path = Path(os.path.normpath(site / name))
        if path == record or (path.is_file() and site in path.parents):
            kept.append(line)
    record.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
