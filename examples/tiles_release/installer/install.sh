#!/bin/sh
# STAND-IN for Tiles' scripts/install.sh, written for the harness's own tests from the steps in
# the Tiles release contract (tiles-contract.md, "Installer"). Not Tiles' script.
# One deliberate difference from Tiles' current script: post-install runs with the runtime's
# python, as venvstacks documents (a layer's own bin/python cannot find the stdlib before its
# pyvenv.cfg exists). The wrapper_postinstall variant of this fixture restores Tiles' order.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail

say() { printf 'tiles install: %s\n' "$*"; }
fail() { printf 'tiles install: error: %s\n' "$*" >&2; exit 1; }
usage() {
    cat <<'USAGE'
usage: install.sh [--dev] [--nightly] [--install-dir PATH] [--lib-dir PATH] [--backend X] [-h]
  --dev               install a local tarball: $TILES_DEV_TARBALL, else the newest
                      dist/tiles-v*-<arch>-<os>.tar.gz under the current directory
  --install-dir PATH  where the tiles command goes (default ~/.local/bin; root/macOS /usr/local/bin)
  --lib-dir PATH      where server/, modelfiles/, pi/, vendor/ go
USAGE
}

dev="" install_dir="" lib_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) dev=1; shift ;;
        --nightly) shift ;;
        --install-dir) install_dir="$2"; shift 2 ;;
        --lib-dir) lib_dir="$2"; shift 2 ;;
        --backend) say "warning: --backend is ignored: every GPU backend is inside the tarball"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; fail "unknown argument: $1" ;;
    esac
done
[ -n "$dev" ] || fail "this stand-in installs local tarballs only: pass --dev (it never downloads)"

arch=$(uname -m); os=$(uname -s | tr '[:upper:]' '[:lower:]')
[ "$arch" = aarch64 ] && arch=arm64
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
if [ "$os" = linux ] && [ "$(id -u)" != 0 ]; then
    install_dir="${install_dir:-$HOME/.local/bin}"; lib_dir="${lib_dir:-$data_home/tiles}"
else
    install_dir="${install_dir:-/usr/local/bin}"; lib_dir="${lib_dir:-/usr/local/share/tiles}"
fi

tarball="${TILES_DEV_TARBALL:-}"
if [ -z "$tarball" ]; then
    tarball=$(ls -t dist/tiles-v*-"$arch-$os".tar.gz 2>/dev/null | head -n 1 || true)
fi
[ -n "$tarball" ] && [ -f "$tarball" ] || fail "no tarball: set TILES_DEV_TARBALL or build one into dist/"

gpu="cpu"
command -v nvidia-smi >/dev/null 2>&1 && gpu="cuda"
if [ "$gpu" = cpu ] && ! { ldconfig -p 2>/dev/null | grep -q libvulkan; }; then
    say "warning: no GPU backend found (nvidia-smi, libvulkan); the server will run on the CPU"
fi

tmp=$(mktemp -d /tmp/tiles-install.XXXXXX)
say "unpacking $(basename "$tarball")"
tar -xzf "$tarball" -C "$tmp"

for part in modelfiles pi vendor; do
    [ -d "$tmp/$part" ] && [ -n "$(ls -A "$tmp/$part")" ] || fail "$part/ is missing or empty in $(basename "$tarball")"
done

say "installing the tiles command into $install_dir"
mkdir -p "$install_dir" "$lib_dir"
install -m 755 "$tmp/tiles" "$install_dir/tiles"

for part in modelfiles pi vendor plugins; do
    [ -d "$tmp/$part" ] || continue
    rm -rf "${lib_dir:?}/$part"
    cp -R "$tmp/$part" "$lib_dir/$part"
done

if [ "$os" = linux ] && [ -f "$tmp/tiles-menubar" ]; then
    say "installing the menubar app"
    install -m 755 "$tmp/tiles-menubar" "$lib_dir/tiles-menubar"
    rm -rf "$lib_dir/ui" && cp -R "$tmp/ui" "$lib_dir/ui"
    mkdir -p "$data_home/applications" "$data_home/icons/hicolor/128x128/apps"
    install -m 644 "$tmp/tiles.png" "$data_home/icons/hicolor/128x128/apps/tiles.png"
    printf '[Desktop Entry]\nType=Application\nName=Tiles\nExec=%s\nIcon=tiles\n' \
        "$lib_dir/tiles-menubar" >"$data_home/applications/tiles.desktop"
fi

say "installing the server into $lib_dir/server"
rm -rf "$lib_dir/server"
cp -R "$tmp/server" "$lib_dir/server"
cd "$lib_dir/server/stack_export_prod"
for archive in ./*.tar.xz; do
    say "unpacking layer ${archive#./}"
    tar -xvf "$archive"
    rm -f "$archive"
done
runtime=$(ls -d cpython3.* | head -n 1)
for layer in "$runtime" framework-* app-*; do
    [ -f "$layer/postinstall.py" ] || continue
    say "post-install $layer"
    "$runtime/bin/python" "$layer/postinstall.py"
done

# STAND-IN for the model download Tiles does on first use: this fixture is offline, so it seeds
# the model cache (a directory holding a GGUF file) from the reference model it ships.
model_dir="$data_home/tiles/models/Qwen2.5-0.5B-Instruct-GGUF"
mkdir -p "$model_dir"
cp "$lib_dir/modelfiles/refchar/weights.npz" "$model_dir/qwen2.5-0.5b-instruct-q4_k_m.gguf"
sed 's|^FROM .*|FROM ./qwen2.5-0.5b-instruct-q4_k_m.gguf|' "$lib_dir/modelfiles/refchar/Modelfile" >"$model_dir/Modelfile"

rm -rf "$tmp"
say "Tiles installed successfully!"
