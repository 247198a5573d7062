"""Deterministic zips of the item API's handlers: the same source always gives the same bytes.

Lambda reports `CodeSha256` (base64 of the SHA-256 of the zip it holds), so a byte-identical local zip is
how `functions` knows the deployed code is current without uploading it again. Every field that zipfile
would take from the machine is fixed: entry order (sorted), timestamps (1980-01-01, the earliest a zip can
hold), modes (0o644, Unix), and compression (none: deflate's output depends on the zlib build, and the
handlers are a few kilobytes). Line endings are normalised so a Windows checkout packages the same bytes.

Each function gets its own zip holding only its handler module and the shared `common` module, at the
zip's root: changing one handler updates exactly that function.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

HANDLERS_DIR = Path(__file__).resolve().parent / "handlers"
SHARED_MODULES = ("common",)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644  # regular file, rw-r--r--
UNIX = 3


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
