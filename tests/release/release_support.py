"""Helpers for the reference release's own tests: build it, install it into a throw-away HOME with a
PATH that has no Python (like the clean target), drive the launcher, talk to the server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

REPO = Path(__file__).resolve().parents[2]
RELEASE_DIR = REPO / "examples" / "reference_release"
BUILD_SCRIPT = RELEASE_DIR / "build.py"
TRAIN_SCRIPT = RELEASE_DIR / "refbuild" / "train_model.py"
CORPUS = RELEASE_DIR / "corpus" / "dialogues.txt"
# The build's own venv (numpy, venvstacks), where build.py makes it (REFAPP_* relocate it).
TOOLS_PYTHON = Path(os.environ.get("REFAPP_TOOLS_VENV")
                    or Path(os.environ.get("REFAPP_BUILD_DIR") or RELEASE_DIR / "build") / ".tools-venv") / "bin" / "python"
TARBALL_NAME = "refapp-v0.1.0-x86_64-linux.tar.gz"

# What a minbase Debian 12 offers the installer and the launcher. Deliberately no python, curl, wget.
CLEAN_TOOLS = (
    "sh", "bash", "tar", "xz", "gzip", "sha256sum", "mktemp", "uname", "sed", "grep", "tr", "cat",
    "mkdir", "rm", "mv", "cp", "chmod", "dirname", "basename", "head", "tail", "sleep", "nohup",
    "ls", "env", "readlink", "rmdir", "touch",
)
BUILD_TIMEOUT_S = 1800
INSTALL_TIMEOUT_S = 300


@dataclass(frozen=True)
class BuiltReleases:
    out: Path
    manifest: dict[str, object]

    def directory(self, label: str = "good") -> Path:
        return self.out if label == "good" else self.out / "variants" / label

    def tarball(self, label: str = "good") -> Path:
        return self.directory(label) / TARBALL_NAME

    def installer(self, label: str = "good") -> Path:
        return self.directory(label) / "install.sh"


def run_build(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BUILD_SCRIPT), *args], capture_output=True, text=True, check=False,
                          timeout=BUILD_TIMEOUT_S, env=env)


def build_all(out: Path) -> BuiltReleases:
    result = run_build("--all-variants", "--out", str(out))
    assert result.returncode == 0, f"build.py failed:\n{result.stderr[-4000:]}"
    return BuiltReleases(out, json.loads((out / "manifest.json").read_text()))


def make_clean_path(directory: Path) -> Path:
    """A PATH directory of symlinks to the minbase tools only."""
    directory.mkdir(parents=True, exist_ok=True)
    for tool in CLEAN_TOOLS:
        found = shutil.which(tool)
        assert found, f"host lacks {tool}, needed to emulate a clean system"
        (directory / tool).symlink_to(found)
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def tar_members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball, "r:gz") as archive:
        return {m.name: m for m in archive.getmembers()}


def tar_bytes(tarball: Path, name: str) -> bytes:
    with tarfile.open(tarball, "r:gz") as archive:
        handle = archive.extractfile(name)
        assert handle is not None, f"{name} is not a file in {tarball}"
        return handle.read()


@dataclass(frozen=True)
class ReleaseHome:
    """A throw-away HOME in which install.sh and the launcher run as on the clean target."""

    home: Path
    clean_path: Path
    install_output: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": str(self.clean_path), "LANG": "C.UTF-8"}

    @property
    def launcher(self) -> Path:
        return self.home / ".local" / "bin" / "refapp"

    @property
    def lib(self) -> Path:
        return self.home / ".local" / "share" / "refapp"

    @property
    def config(self) -> Path:
        return self.home / ".config" / "refapp"

    def install(self, installer: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(installer), *args], capture_output=True, text=True, check=False,
                              env=self.env, cwd=self.home, timeout=INSTALL_TIMEOUT_S)

    def refapp(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.launcher), *args], capture_output=True, text=True, check=False,
                              env=self.env, cwd=self.home, timeout=timeout)

    def server_pid(self) -> int | None:
        pid_file = self.config / "server.pid"
        return int(pid_file.read_text()) if pid_file.exists() else None

    @contextmanager
    def serving(self, port: int) -> Iterator[ServerClient]:
        started = self.refapp("serve", "--port", str(port), "--timeout", "90")
        pid = self.server_pid()
        try:
            assert started.returncode == 0, f"refapp serve failed:\n{started.stdout}\n{started.stderr}"
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                yield ServerClient(http)
        finally:
            self.refapp("stop", "--timeout", "10")
            if pid is not None and _alive(pid):
                os.kill(pid, 9)  # backstop: never leak a server, even when `stop` is what broke


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class ServerClient:
    http: httpx.Client

    def complete(self, prompt: str, **fields: object) -> dict[str, object]:
        body = {"model": "refchar", "messages": [{"role": "user", "content": prompt}], **fields}
        response = self.http.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def text(self, prompt: str, **fields: object) -> str:
        choice = self.complete(prompt, **fields)["choices"][0]  # type: ignore[index]
        return str(choice["message"]["content"])

    def stream(self, prompt: str, **fields: object) -> list[str]:
        """The raw `data:` payloads of a streamed completion, [DONE] included."""
        body = {"model": "refchar", "messages": [{"role": "user", "content": prompt}], "stream": True, **fields}
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def streamed_text(payloads: list[str]) -> str:
    chunks = [json.loads(p) for p in payloads if p != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)


def elf_dynamic(path: Path) -> tuple[list[str], list[str]]:
    """NEEDED entries and RUNPATH/RPATH entries of an ELF file."""
    with path.open("rb") as handle:
        dynamic = ELFFile(handle).get_section_by_name(".dynamic")
        assert isinstance(dynamic, DynamicSection), f"{path} has no dynamic section"
        tags = [(t.entry.d_tag, t) for t in dynamic.iter_tags()]
        # pyelftools sets `needed`, `runpath` or `rpath` on a tag according to its kind.
        needed = [str(t.needed) for kind, t in tags if kind == "DT_NEEDED"]  # type: ignore[attr-defined]
        search = [str(getattr(t, "runpath" if kind == "DT_RUNPATH" else "rpath")) for kind, t in tags
                  if kind in ("DT_RUNPATH", "DT_RPATH")]
    return needed, search
