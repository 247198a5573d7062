"""Run the sandbox in the background and find it again: a state file with its pid and port.

The state lives in `$MULTIREGION_HOME` (default `~/.multiregion`), so tests and parallel users can keep
sandboxes apart.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiregion.sandbox import moto_compat, timing

DEFAULT_PORT = 4599
TIMING_PROFILES = timing.PROFILES  # what `serve --timing` accepts
HOME_ENV = "MULTIREGION_HOME"


class SandboxError(Exception):
    pass


def home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".multiregion")


def state_file() -> Path:
    return home() / "sandbox.json"


def log_file() -> Path:
    return home() / "sandbox.log"


@dataclass(frozen=True)
class SandboxInfo:
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ping(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The sandbox's own description, or None when nothing (or something else) answers there."""
    try:
        with urllib.request.urlopen(f"{url}/_sandbox/health", timeout=timeout) as resp:
            data = json.loads(resp.read())
            return data if data.get("sandbox") == "multiregion" else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def read_state() -> SandboxInfo | None:
    try:
        data = json.loads(state_file().read_text())
        return SandboxInfo(int(data["pid"]), int(data["port"]))
    except (OSError, ValueError, KeyError):
        return None


def write_state(info: SandboxInfo) -> None:
    home().mkdir(parents=True, exist_ok=True)
    state_file().write_text(json.dumps({"pid": info.pid, "port": info.port, "url": info.url}))


def clear_state(pid: int | None = None) -> None:
    info = read_state()
    if info and (pid is None or info.pid == pid):
        state_file().unlink(missing_ok=True)


def running() -> SandboxInfo | None:
    """The background sandbox of the state file, if that very process answers at its port."""
    info = read_state()
    if info:
        health = ping(info.url)
        if health and health.get("pid") == info.pid:
            return info
    return None


def start(port: int = DEFAULT_PORT, time_scale: float | None = None, timeout: float = 60.0,
          extra_args: tuple[str, ...] = (), timing: str | None = None, strict: bool | None = None) -> SandboxInfo:
    """Start a sandbox process in the background and wait until it answers. `timing` (a profile of
    timing.PROFILES) and `strict` are SandboxOptions'; None leaves the server's defaults. A sandbox
    that already runs is returned as it is, whatever its options (see `options_differ`)."""
    if timing is not None and timing not in TIMING_PROFILES:
        raise SandboxError(f"unknown timing profile {timing!r}; known: {', '.join(TIMING_PROFILES)}")
    if info := running():
        return info
    if not moto_compat.installed():
        raise SandboxError("the sandbox needs its extra: pip install 'multiregion[sandbox]'")
    home().mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "multiregion", "sandbox", "serve", "--port", str(port), "--write-state"]
    if time_scale is not None:
        args += ["--time-scale", str(time_scale)]
    if timing is not None:
        args += ["--timing", timing]
    if strict is not None:
        args.append("--strict" if strict else "--no-strict")
    args += list(extra_args)
    with open(log_file(), "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SandboxError(f"the sandbox exited with code {proc.returncode}; see {log_file()}")
        info = read_state()
        if info and info.pid == proc.pid and ping(info.url):
            return info
        time.sleep(0.2)
    proc.kill()
    raise SandboxError(f"the sandbox did not answer within {timeout:.0f}s; see {log_file()}")


def options_differ(health: dict[str, Any] | None, time_scale: float | None = None, timing: str | None = None,
                   strict: bool | None = None) -> list[str]:
    """What a running sandbox (its /_sandbox/health answer) has other than what a start asked for: the
    options' names. Unasked options (None) are never a difference."""
    if not health:
        return []
    wanted: dict[str, Any] = {"time_scale": time_scale, "timing": timing, "strict": strict}
    return [name for name, value in wanted.items() if value is not None and health.get(name) != value]


def stop(timeout: float = 10.0) -> SandboxInfo | None:
    info = read_state()
    if info is None:
        return None
    if running() is None:
        # After a crash or a reboot the pid may be another program's: only forget the state.
        clear_state()
        return None
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        clear_state()
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(info.pid):
            break
        time.sleep(0.1)
    else:
        os.kill(info.pid, signal.SIGKILL)
        _exited(info.pid)
    clear_state()
    return info


def _exited(pid: int) -> bool:
    """Whether the process is gone; reaps it when it is our own child (started in this process)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
