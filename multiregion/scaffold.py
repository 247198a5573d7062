"""`init`: a new project directory with a working config, the item API as editable source, and its tests.

The handlers are copied from this package's `handlers/` when `init` runs, so the project starts from the
code the built-in item API deploys (and packages to the same zips) without a second copy in this
repository. The health function is not copied: it stays the tool's own (the failover switch). The other
files come from `templates/init/`, and the config's JSON Schema from the model that validates it. Nothing is
overwritten: if any file to be written exists, nothing is written and the error lists them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

# Target path in the project -> template file name under templates/init/.
TEMPLATES = {
    "config.yaml": "config.yaml",
    "README.md": "README.md",
    "app/requirements.txt": "requirements.txt",
    "tests/test_app.py": "test_app.py.tmpl",
}
# Target path in the project -> module of multiregion/handlers/ copied as it is.
HANDLERS = {
    "app/common.py": "common.py",
    "app/get_item.py": "get_item.py",
    "app/put_item.py": "put_item.py",
}


class ScaffoldError(Exception):
    """`init` refused: the message says which files are in the way."""


# Beside config.yaml, which names it in its first line (`# yaml-language-server: $schema=config.schema.json`),
# so that editors complete and check the file offline.
SCHEMA_FILE = "config.schema.json"


def schema_text() -> str:
    """The config's JSON Schema as `multiregion schema` prints it (and as the repository commits it)."""
    from multiregion.config import json_schema

    return json.dumps(json_schema(), indent=2) + "\n"


def project_files() -> dict[str, bytes]:
    """What `init` writes, by path relative to the project directory."""
    package = resources.files("multiregion")
    files = {target: (package / "templates" / "init" / name).read_bytes() for target, name in TEMPLATES.items()}
    files.update({target: (package / "handlers" / name).read_bytes() for target, name in HANDLERS.items()})
    files[SCHEMA_FILE] = schema_text().encode("utf-8")
    return dict(sorted(files.items()))


def init_project(target_dir: Path | str) -> list[Path]:
    """Write a new project into `target_dir` (created if needed); the paths written, in order."""
    target = Path(target_dir)
    files = project_files()
    existing = [target / name for name in files if (target / name).exists() or (target / name).is_symlink()]
    if existing:
        raise ScaffoldError(f"{target} already has {', '.join(str(p) for p in existing)}; nothing was written "
                            "(init never overwrites: move them away or choose another directory)")
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a directory; nothing was written")
    written: list[Path] = []
    for name, content in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as out:  # exclusive: a file that appeared meanwhile is not overwritten
            out.write(content)
        written.append(path)
    return written
