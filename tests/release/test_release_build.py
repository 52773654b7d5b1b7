"""The tarball: Tiles' layout, a self-contained runtime, reproducible bytes."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

import pytest
from cpu_kernels import default_architecture, numpy_dispatch_disabled, runnable_kernels
from release_support import (
    CORPUS,
    REPO,
    TARBALL_NAME,
    TOOLS_PYTHON,
    TRAIN_SCRIPT,
    BuiltReleases,
    elf_dynamic,
    run_build,
    tar_members,
)

from harness.goldens import golden_path, load_goldens

SOURCE_DATE_EPOCH = 1767225600
# glibc and the GCC runtime: what a minbase Debian 12 guarantees (see README, "Platform").
BASE_SYSTEM = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
               "libresolv.so.2", "ld-linux-x86-64.so.2", "libgcc_s.so.1", "libstdc++.so.6"}


def test_build_prints_the_tarball_paths(built: BuiltReleases) -> None:
    result = run_build()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(built.tarball())]


def test_layout_matches_tiles(built: BuiltReleases) -> None:
    members = tar_members(built.tarball())
    assert members["refapp"].mode == 0o755 and members["refapp"].isfile()
    for required in ("release.env", "server/main.py", "server/api.py", "modelfiles/refchar/Modelfile",
                     "modelfiles/refchar/weights.npz", "server/stack_export_prod/__venvstacks__"):
        assert required in members, required
    layers = sorted(PurePosixPath(n).name for n in members
                    if n.startswith("server/stack_export_prod/") and n.endswith(".tar.xz"))
    assert layers == ["app-server-linux_x86_64-1.tar.xz", "cpython3.11-linux_x86_64-1.tar.xz",
                      "framework-numpy-linux_x86_64-1.tar.xz"]
    assert not [n for n in members if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]


def test_members_are_normalised(built: BuiltReleases) -> None:
    with tarfile.open(built.tarball(), "r:gz") as archive:
        infos = archive.getmembers()
    assert [i.name for i in infos] == sorted(i.name for i in infos)
    assert {(i.uid, i.gid, i.uname, i.gname) for i in infos} == {(0, 0, "", "")}
    assert {i.mtime for i in infos} == {SOURCE_DATE_EPOCH}
    assert all(not i.name.startswith("/") and ".." not in PurePosixPath(i.name).parts for i in infos)
    header = built.tarball().read_bytes()[:10]
    assert header[3] & 0x08 == 0, "gzip header carries a file name"
    assert header[4:8] == b"\0\0\0\0", "gzip header carries an mtime"


def test_checksums_txt_matches(built: BuiltReleases) -> None:
    digest = hashlib.sha256(built.tarball().read_bytes()).hexdigest()
    assert (built.out / "checksums.txt").read_text() == f"{digest}  {TARBALL_NAME}\n"


def test_release_env_states_the_platform(built: BuiltReleases) -> None:
    with tarfile.open(built.tarball(), "r:gz") as archive:
        text = archive.extractfile("release.env").read().decode()  # type: ignore[union-attr]
    fields = dict(line.split("=", 1) for line in text.splitlines())
    assert fields["ARCH"] == "x86_64" and fields["OS"] == "linux"
    assert fields["PLATFORM"] == "debian12-glibc2.36-x86_64"
    assert fields["RUNTIME_LAYER"] == "cpython3.11" and fields["APP_LAYER"] == "app-server"


def _layer_elves(tarball: Path, workdir: Path) -> dict[str, list[Path]]:
    """Unpack every layer; return ELF files per layer."""
    with tarfile.open(tarball, "r:gz") as archive:
        archive.extractall(workdir, filter="data")
    stack = workdir / "server" / "stack_export_prod"
    for layer in stack.glob("*.tar.xz"):
        with tarfile.open(layer, "r:xz") as archive:
            archive.extractall(stack, filter="tar")
    found: dict[str, list[Path]] = {}
    for path in stack.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF":
            found.setdefault(path.relative_to(stack).parts[0], []).append(path)
    return found


def test_every_needed_library_is_shipped_or_base_system(built: BuiltReleases, tmp_path: Path) -> None:
    elves = _layer_elves(built.tarball(), tmp_path)
    assert set(elves) == {"cpython3.11", "framework-numpy", "app-server"}
    shipped = {p.name for paths in elves.values() for p in paths}
    for paths in elves.values():
        for path in paths:
            needed, search_paths = elf_dynamic(path)
            assert set(needed) <= shipped | BASE_SYSTEM, f"{path.name} needs {set(needed) - shipped - BASE_SYSTEM}"
            assert all(p.startswith("$ORIGIN") for entry in search_paths for p in entry.split(":")), \
                f"{path.name} has a non-relative search path {search_paths}"


def test_runtime_bundles_the_libraries_debian_minbase_lacks(built: BuiltReleases, tmp_path: Path) -> None:
    runtime_libs = {p.name for p in _layer_elves(built.tarball(), tmp_path)["cpython3.11"]
                    if p.parent.name == "lib"}
    assert {"libpython3.11.so.1.0", "libssl.so.3", "libcrypto.so.3", "libffi.so.8", "libsqlite3.so.0"} <= runtime_libs


def test_rebundling_is_byte_identical(built: BuiltReleases, tmp_path: Path) -> None:
    """Two builds into fresh output dirs (the stack and model from cache) give identical tarballs."""
    digests = []
    for name in ("first", "second"):
        result = run_build("--variant", "unsafe_member", "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        digests.append([hashlib.sha256((tmp_path / name / rel).read_bytes()).hexdigest()
                        for rel in (TARBALL_NAME, f"variants/unsafe_member/{TARBALL_NAME}")])
    assert digests[0] == digests[1]
    assert digests[0][0] == hashlib.sha256(built.tarball().read_bytes()).hexdigest()


def test_gzip_stream_is_complete(built: BuiltReleases) -> None:
    with gzip.open(built.tarball()) as handle:
        while handle.read(1 << 20):
            pass


# -- the same bytes on every x86_64 CPU ----------------------------------------------------------

PROBE_STEPS = "60"


def _train(python: Path, out: Path, env: dict[str, str]) -> tuple[str, str]:
    """(the BLAS the trainer reports, sha256 of the weights it wrote) for a short training run."""
    result = subprocess.run([str(python), str(TRAIN_SCRIPT), str(CORPUS), str(out), "--steps", PROBE_STEPS],
                            env=env, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, f"training failed:\n{result.stderr[-3000:]}"
    blas = next(line.removeprefix("blas: ") for line in result.stdout.splitlines() if line.startswith("blas: "))
    return blas, hashlib.sha256((out / "refchar" / "weights.npz").read_bytes()).hexdigest()


def test_training_is_identical_across_blas_kernels_and_threads(built: BuiltReleases, tmp_path: Path) -> None:
    """The model's weights do not depend on the BLAS kernel, the thread count or numpy's SIMD paths."""
    kernels = runnable_kernels(TOOLS_PYTHON)
    assert len(kernels) >= 3, f"fewer than three OpenBLAS kernels run on this CPU: {kernels}"
    assert len({k.product_digest for k in kernels}) >= 2, (
        "every kernel computes float32 products to the same bits here, so equal weights below would prove nothing")
    runs: dict[str, str] = {}
    for kernel in kernels[:4]:
        for threads in (1, 2):
            blas, digest = _train(TOOLS_PYTHON, tmp_path / f"{kernel.coretype}-{threads}", kernel.env(threads))
            assert blas == f"openblas {kernel.architecture} x{threads}", f"asked for {kernel}, {threads} threads, ran {blas}"
            runs[blas] = digest
    blas, digest = _train(TOOLS_PYTHON, tmp_path / "numpy-baseline", numpy_dispatch_disabled(TOOLS_PYTHON))
    runs[f"{blas}, numpy baseline SIMD only"] = digest
    assert len(set(runs.values())) == 1, "weights differ between simulated CPUs:\n" + "\n".join(
        f"  {name}: {sha}" for name, sha in runs.items())


@pytest.mark.slow
@pytest.mark.ondemand  # a whole cold build (venvstacks lock/build/publish, training): minutes
def test_clean_rebuild_on_another_cpu_kernel_is_byte_identical(built: BuiltReleases, tmp_path: Path) -> None:
    """From an empty build dir under another OpenBLAS kernel and one thread: seed, venvstacks
    lock/build/publish and training again, and the very same tarball."""
    default = default_architecture(TOOLS_PYTHON)
    other = next((k for k in runnable_kernels(TOOLS_PYTHON) if k.architecture != default), None)
    assert other is not None, f"no OpenBLAS kernel other than {default} runs on this CPU"
    env = {**other.env(threads=1), "REFAPP_BUILD_DIR": str(tmp_path / "build"),
           "REFAPP_TOOLS_VENV": str(TOOLS_PYTHON.parents[1])}
    result = run_build("--out", str(tmp_path / "dist"), env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    training = (tmp_path / "build" / "logs" / "training.log").read_text()
    assert f"blas: openblas {other.architecture} x1" in training, (
        f"the rebuild did not train under {other.architecture}; its training log:\n{training[-3000:]}")
    rebuilt = hashlib.sha256((tmp_path / "dist" / TARBALL_NAME).read_bytes()).hexdigest()
    original = hashlib.sha256(built.tarball().read_bytes()).hexdigest()
    assert rebuilt == original, f"tarball {original} (kernel {default}) became {rebuilt} under {other.architecture}"


def test_reference_goldens_describe_this_build(built: BuiltReleases) -> None:
    """The committed goldens were recorded from the very tarball this checkout builds."""
    golden = load_goldens(golden_path(REPO / "harness" / "profiles" / "goldens", "reference", "linux-x86_64"))
    assert golden.provenance is not None, "the reference goldens do not say which build they describe"
    built_sha = hashlib.sha256(built.tarball().read_bytes()).hexdigest()
    assert golden.provenance.release_sha256 == built_sha, (
        f"the reference goldens describe build {golden.provenance.build}, this checkout builds {built_sha[:12]}: "
        "re-record them with `harness run --update-goldens` after reviewing the change")
