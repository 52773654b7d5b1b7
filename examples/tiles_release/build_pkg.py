#!/usr/bin/env python3
"""Build the Tiles-shaped macOS installer package: `.venv/bin/python examples/tiles_release/build_pkg.py [--out DIR]`.

A STAND-IN for Tiles' signed product archive, written on Linux for the harness's own tests
(tiles-contract.md, "How Tiles ships today", macOS `.pkg`), from the Tiles-shaped tarball that
build.py writes (built first if missing): its server, layers and modelfiles, placed as
`pkg/build.sh` and `productbuild` place Tiles'. The scripts are this fixture's own, not Tiles'.
The binaries are hand-made Mach-O headers (no Apple toolchain here), nothing is signed.

Product archive (Distribution: choices `app` and `model`, `customize="never"`,
`hostArchitectures="arm64,x86_64"`):
  tiles-unsigned.pkg    com.tilesprivacy.tiles, install-location /, BundleIsRelocatable false:
                        /usr/local/bin/tiles, /usr/local/share/tiles/{pi,modelfiles,server}/...,
                        /Applications/Tiles.app/Contents/{Info.plist,MacOS/Tiles};
                        postinstall: sudoers rule, LaunchDaemon, layers extracted and post-installed
  tiles-model_gguf.pkg  com.tilesprivacy.tiles_models_gguf: a model tarball split into
                        <name>.tar.gz.part.aa, .ab, ... (--part-size); postinstall joins and unpacks

Outputs under <out> (default examples/tiles_release/dist/pkg):
  current/tiles-v0.4.20-canary.1-arm64-darwin.pkg    the good form
  variants/<name>/tiles-v0.4.20-canary.1-arm64-darwin.pkg   broken forms (see VARIANTS)
Needs libarchive-c (the harness's venv). Cached like build.py: unchanged inputs, no rebuild.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import time
from dataclasses import replace
from pathlib import Path

import build  # the tarball builder beside this file
from harness.testing import macho_writer, pkg_writer
from harness.testing.macho_writer import make_macho_slice
from harness.testing.pkg_writer import ComponentSpec, PayloadFile, write_pkg

HERE = Path(__file__).resolve().parent
VERSION = "0.4.20-canary.1"
PKG_NAME = f"tiles-v{VERSION}-arm64-darwin.pkg"
TARBALL = f"current/tiles-v{VERSION}-x86_64-linux.tar.gz"
LIB = "./usr/local/share/tiles"
APP_ID, MODEL_ID = "com.tilesprivacy.tiles", "com.tilesprivacy.tiles_models_gguf"
APP_PKG, MODEL_PKG = "tiles-unsigned.pkg", "tiles-model_gguf.pkg"
MODEL_VERSION = "2.0"  # pkg/build_model.sh's version
MODEL_NAME = "models--refapp--refchar"  # Hugging Face hub cache layout, models--<org>--<repo>
HUB = f"{LIB}/models/huggingface/hub"
# Broken forms: name -> (what is wrong, the rule that must catch it).
VARIANTS = {
    "no_host_architectures": ("the Distribution declares no hostArchitectures (Tiles' own, their issue 105)",
                              "pkg.rosetta_prompt"),
    "missing_component": ("the `model` choice names tiles-model.pkg / com.tilesprivacy.tiles_models (Tiles' "
                          "distribution.xml) while the archive holds tiles-model_gguf.pkg", "pkg.missing_component"),
    "postinstall_not_executable": ("the app's postinstall lost its executable bit", "pkg.script_not_executable"),
    "parent_reference": ("a payload member named ../../private/etc/tiles escapes the install-location",
                         "archive.parent_reference"),
    "x86_64_cli": ("the CLI is an x86_64-only build: Rosetta on Apple Silicon", "macho.rosetta_required"),
}

APP_POSTINSTALL = r"""#!/bin/bash
# Stand-in postinstall (run as root by the Installer): what Tiles' does, in this fixture's words.
set -eu
lib=/usr/local/share/tiles
rule=$(mktemp)
printf '%%staff ALL=(root) NOPASSWD: /usr/bin/pmset -a disablesleep 1, /usr/bin/pmset -a disablesleep 0\n' >"$rule"
if /usr/sbin/visudo -cf "$rule" >/dev/null; then
    install -m 0440 -o root -g wheel "$rule" /private/etc/sudoers.d/tiles
fi
rm -f "$rule"
cat >/Library/LaunchDaemons/com.tilesprivacy.tiles.sleep-guard.plist <<'PLIST'
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>Label</key><string>com.tilesprivacy.tiles.sleep-guard</string>
  <key>ProgramArguments</key><array><string>/bin/sh</string><string>-c</string>
    <string>/usr/bin/pmset -a disablesleep 0</string></array>
  <key>RunAtLoad</key><true/>
</dict></plist>
PLIST
cd "$lib/server/stack_export_prod"
for archive in *.tar.xz; do tar -xf "$archive"; done
rm -f ./*.tar.xz
# The layers' post-install runs with the runtime's python (venvstacks' documented way).
for layer in */; do
    layer=${layer%/}
    if [ -f "$layer/postinstall.py" ]; then ./cpython3.13/bin/python "$layer/postinstall.py"; fi
done
"""

MODEL_POSTINSTALL = f"""#!/bin/bash
# Stand-in postinstall: join the split model tarball, unpack it into the hub cache, drop the parts.
set -e
cd /usr/local/share/tiles/models/huggingface/hub
cat {MODEL_NAME}.tar.gz.part.* >{MODEL_NAME}.tar.gz
tar -xzf {MODEL_NAME}.tar.gz
rm -f {MODEL_NAME}.tar.gz.part.* {MODEL_NAME}.tar.gz
"""

INFO_PLIST = (b'<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict>'
              b"<key>CFBundleIdentifier</key><string>com.tilesprivacy.tiles.menubar</string>"
              b"<key>CFBundleExecutable</key><string>Tiles</string><key>LSUIElement</key><true/>"
              b"</dict></plist>\n")


def distribution(host_architectures: str = "arm64,x86_64", model_pkg: str = MODEL_PKG,
                 model_id: str = MODEL_ID) -> str:
    host = f' hostArchitectures="{host_architectures}"' if host_architectures else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
    <title>Tiles</title>
    <welcome file="welcome.html"/>
    <conclusion file="conclusion.html"/>
    <options customize="never"{host}/>
    <choices-outline><line choice="app"/><line choice="model"/></choices-outline>
    <choice id="app" title="Tiles"><pkg-ref id="{APP_ID}"/></choice>
    <choice id="model" title="Tiles offline model"><pkg-ref id="{model_id}"/></choice>
    <pkg-ref id="{APP_ID}" version="{VERSION}">#{APP_PKG}</pkg-ref>
    <pkg-ref id="{model_id}" version="{MODEL_VERSION}">#{model_pkg}</pkg-ref>
</installer-gui-script>
"""


def app_component(tarball: dict[str, build.Member], cli_arch: str = "arm64") -> ComponentSpec:
    payload: dict[str, PayloadFile] = {}
    for name, member in sorted(tarball.items()):
        if name.startswith(("server/", "modelfiles/", "pi/")) and name != "server/bin/llama-server" and not member.link:
            payload[f"{LIB}/{name}"] = PayloadFile(member.data, member.mode)
    executable = 2  # MH_EXECUTE
    payload[f"{LIB}/server/bin/llama-server"] = PayloadFile(
        make_macho_slice("arm64", filetype=executable, dylibs=("@loader_path/libllama.dylib", "/usr/lib/libSystem.B.dylib"),
                         minos="13.0"), 0o755)
    payload[f"{LIB}/server/bin/libllama.dylib"] = PayloadFile(
        make_macho_slice("arm64", install_id="@loader_path/libllama.dylib", minos="13.0"), 0o755)
    payload["./usr/local/bin/tiles"] = PayloadFile(make_macho_slice(cli_arch, filetype=executable, minos="13.0"), 0o755)
    payload["./Applications/Tiles.app/Contents/Info.plist"] = PayloadFile(INFO_PLIST)
    payload["./Applications/Tiles.app/Contents/MacOS/Tiles"] = PayloadFile(
        make_macho_slice("arm64", filetype=executable, minos="13.0"), 0o755)
    return ComponentSpec(APP_PKG, APP_ID, VERSION, payload, {"postinstall": PayloadFile(APP_POSTINSTALL.encode(), 0o755)})


def model_tarball(tarball: dict[str, build.Member]) -> bytes:
    """The reference model in the hub cache layout, tarred and gzipped (deterministically)."""
    files = {f"{MODEL_NAME}/snapshots/main/{Path(n).name}": m for n, m in tarball.items()
             if n.startswith("modelfiles/refchar/")}
    raw = build.write_tar(files, "w", prefix="", owner=0)
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw)
    return out.getvalue()


def split_suffixes() -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [a + b for a in letters for b in letters]  # split(1)'s default: aa, ab, ... zz


def model_component(tarball: dict[str, build.Member], part_size: int) -> ComponentSpec:
    data = model_tarball(tarball)
    parts = [data[i:i + part_size] for i in range(0, len(data), part_size)]
    if len(parts) > len(split_suffixes()):
        sys.exit(f"build_pkg.py: --part-size {part_size} makes {len(parts)} parts; split(1) names at most 676")
    payload = {f"{HUB}/{MODEL_NAME}.tar.gz.part.{suffix}": PayloadFile(part)
               for suffix, part in zip(split_suffixes(), parts)}
    return ComponentSpec(MODEL_PKG, MODEL_ID, MODEL_VERSION, payload,
                         {"postinstall": PayloadFile(MODEL_POSTINSTALL.encode(), 0o755)})


def forms(tarball: dict[str, build.Member], part_size: int) -> dict[str, tuple[list[ComponentSpec], str]]:
    """The good form ("current") and each broken form: components and Distribution."""
    app, model = app_component(tarball), model_component(tarball, part_size)
    good = distribution()
    lax = replace(app, scripts={"postinstall": PayloadFile(APP_POSTINSTALL.encode(), 0o644)})
    escaping = replace(app, payload={**app.payload, "./../../private/etc/tiles": PayloadFile(b"escapes\n")})
    return {
        "current": ([app, model], good),
        "no_host_architectures": ([app, model], distribution(host_architectures="")),
        "missing_component": ([app, model], distribution(model_pkg="tiles-model.pkg", model_id="com.tilesprivacy.tiles_models")),
        "postinstall_not_executable": ([lax, model], good),
        "parent_reference": ([escaping, model], good),
        "x86_64_cli": ([app_component(tarball, cli_arch="x86_64"), model], good),
    }


def output(out: Path, form: str) -> Path:
    return out / ("current" if form == "current" else f"variants/{form}") / PKG_NAME


def inputs_digest(source: Path, part_size: int) -> str:
    digest = hashlib.sha256(build.inputs_digest(source).encode() + str(part_size).encode())
    for module in (pkg_writer, macho_writer):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


def source_tarball() -> Path:
    path = build.HERE / "dist" / TARBALL
    if not path.is_file():
        build.main([])
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_pkg.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "dist" / "pkg")
    parser.add_argument("--part-size", type=int, default=128 << 10,
                        help="bytes per model tarball part (Tiles splits at 2048m; small here for tests)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    source = source_tarball()
    stamp = args.out / ".inputs"
    inputs = inputs_digest(source, args.part_size)
    if stamp.is_file() and stamp.read_text() == inputs and all(output(args.out, f).is_file() for f in ["current", *VARIANTS]):
        print(f"build_pkg.py: {args.out} is current (inputs unchanged)", file=sys.stderr)
        return 0
    tarball = {name.removeprefix("./"): m for name, m in build.read_tar(source.read_bytes(), "r:gz").items()}
    built = []
    for form, (components, dist) in forms(tarball, args.part_size).items():
        path = output(args.out, form)
        path.parent.mkdir(parents=True, exist_ok=True)
        built.append(write_pkg(path, components, dist))
    stamp.write_text(inputs)
    for path in built:
        print(path)
    print(f"build_pkg.py: {len(built)} packages in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
