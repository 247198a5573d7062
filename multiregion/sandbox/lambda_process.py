"""How the sandbox starts execution environment processes: spawned, or forked from a warm fork server.

A handler's first `import boto3` costs more than half a second of CPU, and the sandbox starts environments
often (every configuration change, every reset between tests). So a fork server (`lambda_bootstrap.py
--fork-server`) imports boto3 once and forks environments on request: the sandbox sends it the
environment's variables and working directory together with the two pipe ends the environment will use
as stdin and stdout (SCM_RIGHTS), and gets back the pid. The fork server alone reaps its children, and
kills only children it has not reaped yet, so a pid is never signalled after it could have been reused.

On AWS a zip's own copy of a library wins over the runtime's (the zip comes first on sys.path, and the
runtime has imported none of them). A forked environment has everything the fork server imported already in
sys.modules: boto3, botocore and their dependencies (urllib3, six, dateutil, jmespath, s3transfer...),
which the fork server lists when it starts. So a zip that brings its own copy of any of those modules is
spawned directly (`python -I lambda_bootstrap.py`); so is everything where fork or fd passing is unavailable.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import socket
import subprocess
import sys
import threading
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")


class ProcessGone(Exception):
    pass


class EnvironmentProcess:
    """A running environment: its pid, the pipe to its stdin and the fd of its stdout.

    `terminate` may be called from any thread: it kills the process, so a reader sees EOF. Only the thread
    that uses the pipes calls `close`, so an fd is never closed (and its number reused) under a reader.
    """

    pid: int
    stdin: IO[bytes]
    stdout_fd: int
    _closed = False

    def terminate(self) -> str:
        """Kill the process if it still runs; how it ended ("exit status 1", "signal: 9")."""
        raise NotImplementedError

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # A pipe to a killed process may fail to flush; it is gone either way.
        with suppress(OSError):
            self.stdin.close()
        with suppress(OSError):
            os.close(self.stdout_fd)


def describe_status(code: int | None) -> str:
    if code is None:
        return "unknown"
    return f"signal: {-code}" if code < 0 else f"exit status {code}"


class SpawnedProcess(EnvironmentProcess):
    def __init__(self, env: dict[str, str], cwd: Path):
        self.proc = subprocess.Popen([sys.executable, "-I", str(BOOTSTRAP)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=cwd, env=env, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.pid, self.stdin = self.proc.pid, self.proc.stdin
        self.stdout_fd = os.dup(self.proc.stdout.fileno())
        self.proc.stdout.close()

    def terminate(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            return describe_status(self.proc.wait(timeout=5.0))
        except subprocess.TimeoutExpired:  # SIGKILL was sent; the kernel will finish it
            return "unknown"


class ForkedProcess(EnvironmentProcess):
    def __init__(self, server: ForkServer, pid: int, stdin: IO[bytes], stdout_fd: int):
        self.server, self.pid, self.stdin, self.stdout_fd = server, pid, stdin, stdout_fd
        self._status: str | None = None
        self._lock = threading.Lock()

    def terminate(self) -> str:
        with self._lock:
            if self._status is None:
                self._status = self.server.kill(self.pid)
            return self._status


class ForkServer:
    """The warm parent of forked environments; one per sandbox, started on first use."""

    def __init__(self, env: dict[str, str]):
        self._lock = threading.Lock()
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", str(BOOTSTRAP), "--fork-server", str(child.fileno())],
                                         stdin=subprocess.DEVNULL, pass_fds=(child.fileno(),), env=env)
        finally:
            child.close()
        self._buf = b""
        self._broken = False
        self._sock.settimeout(60.0)
        ready = self._receive()
        if not ready.get("ready"):
            raise ProcessGone("the fork server did not start")
        # Top-level modules its children start with; a zip that has its own copy of one is spawned instead.
        self.preloaded: frozenset[str] = frozenset(ready.get("preloaded") or ())

    @staticmethod
    def usable() -> bool:
        return hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")

    def alive(self) -> bool:
        return not self._broken and self.proc.poll() is None

    def _break(self) -> None:
        """After any protocol error the replies can no longer be matched to requests (a late answer would
        be read by the next one): this fork server is retired and the next use starts another."""
        self._broken = True
        with suppress(OSError):
            self._sock.close()

    def spawn(self, env: dict[str, str], cwd: Path) -> ForkedProcess:
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        try:
            with self._lock:
                message = json.dumps({"op": "spawn", "env": env, "cwd": str(cwd)}).encode() + b"\n"
                socket.send_fds(self._sock, [message], [stdin_r, stdout_w])
                pid = int(self._receive()["pid"])
        except (OSError, ValueError, KeyError, ProcessGone) as exc:
            self._break()
            for fd in (stdin_w, stdout_r):
                os.close(fd)
            raise ProcessGone(f"the fork server is gone: {exc}") from exc
        finally:
            os.close(stdin_r)
            os.close(stdout_w)
        return ForkedProcess(self, pid, os.fdopen(stdin_w, "wb"), stdout_r)

    def kill(self, pid: int) -> str:
        try:
            with self._lock:
                self._sock.sendall(json.dumps({"op": "kill", "pid": pid}).encode() + b"\n")
                return str(self._receive().get("status", "unknown"))
        except (OSError, ValueError, ProcessGone):
            self._break()
            # Without its parent the environment reads EOF on stdin (closed by the caller) and exits.
            return "unknown"

    def _receive(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise ProcessGone("the fork server closed its socket")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> None:
        # On EOF the fork server kills the environments it still has, then exits.
        with suppress(OSError):
            self._sock.close()
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def top_level_modules(code_dir: Path, depth: int = 3) -> frozenset[str]:
    """The module names a deployment package could make importable without a package prefix.

    Those of its root (on sys.path on AWS), and, to be safe, those of any folder that is not a package:
    such a folder (`vendor/`, `python/`, `lib/`) is where dependencies are vendored and put on sys.path
    by the handler. A package's own submodules are not counted: they are only importable as `pkg.sub`."""
    suffixes = sorted(importlib.machinery.all_suffixes(), key=len, reverse=True)
    names: set[str] = set()

    def scan(folder: Path, level: int) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                if entry.name.isidentifier():
                    names.add(entry.name)  # a package, or a namespace package
                if level < depth and not (entry / "__init__.py").exists():
                    scan(entry, level + 1)
                continue
            suffix = next((s for s in suffixes if entry.name.endswith(s)), None)
            if suffix is not None and entry.name[:-len(suffix)].isidentifier():
                names.add(entry.name[:-len(suffix)])

    scan(code_dir, 0)
    return frozenset(names)
