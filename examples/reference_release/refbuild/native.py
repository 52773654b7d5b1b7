"""Build artefacts only the broken variants need: a C extension and a stale app-layer archive."""

from __future__ import annotations

import io
import lzma
import tarfile
from pathlib import Path

from .cache import cached_dir
from .config import BuildPaths
from .elf import Patchelf
from .hashing import digest_paths, sha256_file
from .seed import PY_XY, seed_source
from .tools import patchelf_path, run

NATIVE_SOURCE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Adler-32 of a bytes object: the "speedup" the server imports at start-up. */
static PyObject *adler32(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    unsigned long a = 1, b = 0;
    const unsigned char *p = view.buf;
    for (Py_ssize_t i = 0; i < view.len; i++) { a = (a + p[i]) % 65521; b = (b + a) % 65521; }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong((b << 16) | a);
}

static PyMethodDef methods[] = {{"adler32", adler32, METH_VARARGS, "Adler-32 checksum."}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"""
NATIVE_FILENAME = f"_native.cpython-{PY_XY.replace('.', '')}-x86_64-linux-gnu.so"
# Not part of the release and not on a minbase Debian 12 (package libyaml-0-2).
FOREIGN_LIBRARY = "libyaml-0.so.2"


def ensure_native_extension(paths: BuildPaths) -> Path:
    """server/_native*.so whose NEEDED list names a library that neither the release nor the base system has."""
    include = seed_source() / "include" / f"python{PY_XY}"
    key = digest_paths([Path(__file__)], extra=[str(include)])

    def produce(tmp: Path) -> None:
        source = tmp / "_native.c"
        source.write_text(NATIVE_SOURCE)
        target = tmp / NATIVE_FILENAME
        run(["gcc", "-shared", "-fPIC", "-O2", "-g0", f"-I{include}", "-o", str(target), str(source)],
            "compiling the variant's C extension", cwd=tmp)
        Patchelf(patchelf_path(paths)).add_needed(target, FOREIGN_LIBRARY)

    return cached_dir(paths.cache("native", key), "C extension for variant foreign_library", produce) / NATIVE_FILENAME


def ensure_stale_app_archive(paths: BuildPaths, app_archive: Path, old_version: str) -> Path:
    """An older build of the app layer: the same files with the server's version set back."""
    key = digest_paths([Path(__file__)], extra=[sha256_file(app_archive), old_version])

    def produce(tmp: Path) -> None:
        out = io.BytesIO()
        with tarfile.open(app_archive, "r:xz") as src, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
            for info in src:
                data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
                if data is not None and info.name.endswith("site-packages/server/__init__.py"):
                    data = data.replace(b'__version__ = "0.1.0"', f'__version__ = "{old_version}"'.encode())
                    info.size = len(data)
                dst.addfile(info, io.BytesIO(data) if data is not None else None)
        (tmp / "app.tar.xz").write_bytes(lzma.compress(out.getvalue(), preset=1))

    return cached_dir(paths.cache("stale-app", key), "stale app-layer archive for variant duplicate_app_layer", produce) / "app.tar.xz"
