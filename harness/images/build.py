"""Builds one base image from a recipe: debootstrap -> configure in a chroot -> verify ->
ext4 file system (``mkfs.ext4 -d``, no loop devices) -> qcow2, plus kernel, initrd and login key
for direct boot.

Everything happens in ``<image root>/.build-<hash>-<pid>/``; only a complete, verified result is
renamed to ``<image root>/<hash>/`` so a reader never sees half an image. The caller holds the
per-image build lock (``ImageStore.ensure``).
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.errors import InfrastructureError, UsageError
from harness.hashing import sha256_file
from harness.host.tools import require_tool
from harness.images.recipe import BUILDER_VERSION, Recipe
from harness.images.store import MANIFEST_FILE, BuiltImage, Progress, utc_now

DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "HARNESS_DEBIAN_MIRROR"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
TAIL_LINES = 40
STEP_TIMEOUT_S = 30 * 60.0


# ---------------------------------------------------------------- mirror


def apt_mirror_for(suite: str, sources: Sequence[Path] = APT_SOURCES) -> str | None:
    """The Debian archive URI this host's apt uses for ``suite`` (one-line and deb822 formats)."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(source.glob("*.list")) + sorted(source.glob("*.sources")))
        elif source.is_file():
            files.append(source)
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        found = _deb822_mirror(text, suite) if path.suffix == ".sources" else _one_line_mirror(text, suite)
        if found:
            return found
    return None


def _is_main_archive(uri: str) -> bool:
    return uri.rstrip("/").endswith("/debian")


def _one_line_mirror(text: str, suite: str) -> str | None:
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite and _is_main_archive(words[1]):
            return words[1]
    return None


def _deb822_mirror(text: str, suite: str) -> str | None:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        if suite in fields.get("suites", "").split():
            for uri in fields.get("uris", "").split():
                if _is_main_archive(uri):
                    return uri
    return None


def choose_mirror(suite: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(MIRROR_ENV) or apt_mirror_for(suite) or DEFAULT_MIRROR


# ---------------------------------------------------------------- steps


@dataclass
class BuildLog:
    """All step output in one file, kept on failure next to the image's builds."""

    path: Path
    progress: Progress

    def run(self, step: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
            timeout_s: float = STEP_TIMEOUT_S) -> str:
        """Run one build step; InfrastructureError naming the step and its output tail on failure."""
        started = time.monotonic()
        self.progress(f"[{step}] {' '.join(argv[:3])}{' ...' if len(argv) > 3 else ''}")
        with self.path.open("a") as log:
            log.write(f"\n=== {step}: {' '.join(argv)}\n")
        try:
            done = subprocess.run(
                list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=dict(env) if env is not None else None,
                timeout=timeout_s, text=True, errors="replace", check=False,
            )
            output, code = done.stdout, done.returncode
        except subprocess.TimeoutExpired as exc:
            output = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
            self._append(output)
            raise self.failure(step, f"timed out after {timeout_s:.0f}s", output) from exc
        self._append(output)
        if code != 0:
            raise self.failure(step, f"exited with status {code}", output)
        self.progress(f"[{step}] done in {time.monotonic() - started:.1f}s")
        return output

    def failure(self, step: str, what: str, output: str) -> InfrastructureError:
        tail = "\n".join(output.rstrip().splitlines()[-TAIL_LINES:])
        return InfrastructureError(
            f"image build step '{step}' {what}",
            hint=f"fix the cause shown below and rerun; full log: {self.path}",
            detail=f"--- last lines of '{step}' ---\n{tail}",
        )

    def _append(self, output: str) -> None:
        with self.path.open("a") as log:
            log.write(output)


def _chroot_env(extra: Mapping[str, str]) -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "HOME": "/root",
        **extra,
    }


def _mount_points_below(path: Path) -> list[Path]:
    """Mounts under ``path`` (debootstrap mounts /proc, /sys and sometimes /dev in the target)."""
    prefix = str(path.resolve()).rstrip("/") + "/"
    mounts: list[Path] = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point.startswith(prefix):
                mounts.append(Path(mount_point))
    return sorted(mounts, key=lambda p: len(p.parts), reverse=True)


def remove_build_dir(path: Path) -> None:
    """Delete a build directory without ever descending into a mount (a bound host /dev!)."""
    if not path.exists():
        return
    for mount_point in _mount_points_below(path):
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False, capture_output=True)
    if _mount_points_below(path):
        raise InfrastructureError(
            f"cannot remove {path}: something is still mounted below it",
            hint=f"unmount it by hand (findmnt | grep {path}) and rerun",
        )
    shutil.rmtree(path)


def make_login_key(private_path: Path) -> str:
    """A fresh ed25519 key pair (OpenSSH format); returns the public key line."""
    key = Ed25519PrivateKey.generate()
    private_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption(),
    ))
    private_path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} portability-harness"
    private_path.with_name(private_path.name + ".pub").write_text(line + "\n")
    return line


def copy_tree_over(source: Path, target: Path) -> None:
    """Copy the recipe's ``rootfs/`` onto the bootstrapped root, as root:root."""
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        if destination.is_symlink():
            destination.unlink()  # e.g. /etc/resolv.conf may be a link; replace, never follow
        shutil.copy2(path, destination)
        os.chown(destination, 0, 0)


# ---------------------------------------------------------------- verification


def forbidden_packages(installed: Sequence[str], patterns: Sequence[str]) -> list[str]:
    return [name for name in installed if any(fnmatch.fnmatchcase(name, p) for p in patterns)]


def forbidden_files(root: Path, patterns: Sequence[str]) -> list[str]:
    """Files (not directories) whose name matches a pattern, anywhere but /proc, /sys, /dev."""
    hits: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        if Path(directory) == root:
            dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
        for filename in filenames:
            if any(fnmatch.fnmatchcase(filename, p) for p in patterns):
                hits.append("/" + str(Path(directory, filename).relative_to(root)))
    return sorted(hits)



# ---------------------------------------------------------------- the pipeline


def check_can_build() -> dict[str, str]:
    if os.geteuid() != 0:
        raise UsageError(
            "building a base image needs root (debootstrap and chroot)",
            hint="run 'sudo harness images build <name>' once; VMs themselves need no root",
        )
    if platform.machine() not in ("x86_64", "amd64"):
        raise UsageError(f"image recipes target amd64; this host is {platform.machine()}")
    purpose = "build a base image"
    return {tool: require_tool(tool, purpose) for tool in ("debootstrap", "chroot", "mkfs.ext4", "qemu-img")}


def build_image(recipe: Recipe, image_root: Path, progress: Progress) -> BuiltImage:
    """Build ``recipe`` into ``image_root/<hash>/``; the caller holds the build lock."""
    tools = check_can_build()
    content_hash = recipe.content_hash
    image_root.mkdir(parents=True, exist_ok=True)
    for leftover in image_root.glob(".build-*"):  # crashed builders; we hold the lock
        remove_build_dir(leftover)
    work = image_root / f".build-{content_hash}-{os.getpid()}"
    rootfs, out = work / "rootfs", work / "out"
    out.mkdir(parents=True)
    log = BuildLog(out / "build.log", progress)
    started = time.monotonic()
    try:
        manifest = _build_into(recipe, tools, rootfs, out, log)
        manifest["build_seconds"] = round(time.monotonic() - started, 1)
        (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        final = image_root / content_hash
        if final.exists():  # a forced rebuild replaces the old build of the same hash
            shutil.rmtree(final)
        out.rename(final)
        progress(f"built {recipe.name} {content_hash} in {manifest['build_seconds']}s -> {final}")
    except BaseException:
        if log.path.exists():
            shutil.copyfile(log.path, image_root / "last-failed-build.log")
        raise
    finally:
        remove_build_dir(work)
    built = BuiltImage.load(final)
    assert built is not None
    return built


def _build_into(recipe: Recipe, tools: Mapping[str, str], rootfs: Path, out: Path,
                log: BuildLog) -> dict[str, object]:
    mirror = choose_mirror(recipe.suite)
    deb_cache = out.parents[1] / ".debs"
    deb_cache.mkdir(exist_ok=True)
    log.run("debootstrap", [
        tools["debootstrap"], f"--variant={recipe.variant}", f"--arch={recipe.arch}",
        f"--include={','.join(recipe.packages)}", f"--cache-dir={deb_cache}",
        recipe.suite, str(rootfs), mirror,
    ])

    progress_step = "copy recipe files"
    log.progress(f"[{progress_step}]")
    copy_tree_over(recipe.directory / "rootfs", rootfs)
    public_key = make_login_key(out / "id_ed25519")
    script = rootfs / "harness-configure.sh"
    shutil.copyfile(recipe.directory / "configure.sh", script)
    log.run("configure", [tools["chroot"], str(rootfs), "/bin/sh", "-eu", "/harness-configure.sh"],
            env=_chroot_env({"HARNESS_USER": recipe.user, "HARNESS_PUBKEY": public_key}))
    script.unlink()

    packages = _verify(recipe, tools, rootfs, log)
    kernel_version = _copy_boot_files(rootfs, out)

    raw = out.parent / "root.raw"
    with raw.open("wb") as handle:
        handle.truncate(recipe.disk_size_mb * 1024 * 1024)
    log.run("mkfs.ext4", [tools["mkfs.ext4"], "-q", "-F", "-L", "harness-root", "-d", str(rootfs), str(raw)])
    disk = out / "image.qcow2"
    log.run("qemu-img convert", [tools["qemu-img"], "convert", "-O", "qcow2", str(raw), str(disk)])
    raw.unlink()
    disk.chmod(0o444)  # clones use it as a read-only backing file; nothing may write to it

    return {
        "name": recipe.name,
        "content_hash": recipe.content_hash,
        "builder_version": BUILDER_VERSION,
        "built_at": utc_now(),
        "description": recipe.description,
        "suite": recipe.suite,
        "arch": recipe.arch,
        "mirror": mirror,
        "user": recipe.user,
        "kernel_version": kernel_version,
        "kernel_cmdline": recipe.kernel_cmdline,
        "disk_size_mb": recipe.disk_size_mb,
        "image_bytes": disk.stat().st_size,
        "image_sha256": sha256_file(disk),
        "packages": packages,
    }


def _verify(recipe: Recipe, tools: Mapping[str, str], rootfs: Path, log: BuildLog) -> list[str]:
    """The image's promises, checked before it is sealed: no Python, a bootable initrd."""
    listing = log.run("list packages", [
        tools["chroot"], str(rootfs), "dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
    ], env=_chroot_env({}))
    packages = sorted(line for line in listing.splitlines() if line.strip())
    bad = forbidden_packages([p.split()[0] for p in packages], recipe.forbidden_packages)
    files = forbidden_files(rootfs, recipe.forbidden_binaries)
    if bad or files:
        raise log.failure("verify no python", "found forbidden software",
                          "packages: " + (", ".join(bad) or "-") + "\nfiles: " + (", ".join(files) or "-"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if len(initrds) != 1:
        raise log.failure("verify initrd", f"expected one initrd, found {len(initrds)}", "")
    contents = log.run("list initrd", [
        tools["chroot"], str(rootfs), "lsinitramfs", f"/boot/{initrds[0].name}",
    ], env=_chroot_env({}))
    modules = {Path(line).name.split(".ko")[0] for line in contents.splitlines() if ".ko" in line}
    missing = [m for m in recipe.initrd_must_contain if m not in modules]
    if missing:
        raise log.failure("verify initrd", "lacks kernel modules " + ", ".join(missing), "")
    return packages


def _copy_boot_files(rootfs: Path, out: Path) -> str:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise InfrastructureError(f"expected one kernel in the image, found {len(kernels)}",
                                  hint="the recipe must install exactly one linux-image package")
    version = kernels[0].name.removeprefix("vmlinuz-")
    shutil.copyfile(kernels[0], out / "vmlinuz")
    shutil.copyfile(rootfs / "boot" / f"initrd.img-{version}", out / "initrd.img")
    return version
