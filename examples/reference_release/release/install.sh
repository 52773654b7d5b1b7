#!/bin/sh
# Installs a refapp release tarball. Never downloads anything: the tarball is a local file.
# POSIX sh on purpose: the target machine has no Python outside the release.
set -eu

NAME=refapp
say() { printf '%s install: %s\n' "$NAME" "$*"; }
fail() {
    printf '%s install: error: %s\n' "$NAME" "$1" >&2
    [ -z "${2:-}" ] || printf '%s install: hint: %s\n' "$NAME" "$2" >&2
    exit "${3:-1}"
}

usage() {
    cat <<EOF
usage: install.sh [--tarball PATH] [--install-dir DIR] [--lib-dir DIR] [-h]

Installs $NAME from a local release tarball, offline.

  --tarball PATH     the release tarball (env REFAPP_TARBALL); default: the one
                     $NAME-v<version>-<arch>-<os>.tar.gz beside this script
  --install-dir DIR  where the '$NAME' launcher goes (env REFAPP_INSTALL_DIR,
                     default ~/.local/bin)
  --lib-dir DIR      where the server, its Python layers and models go
                     (env REFAPP_LIB_DIR, default \${XDG_DATA_HOME:-~/.local/share}/$NAME)
  -h, --help         this text

A checksums.txt beside the tarball is verified when present. The release is
unpacked into a temporary directory next to the lib dir and moved into place
only when complete; a failed install leaves the previous state untouched.
EOF
}

# ---- arguments --------------------------------------------------------------
tarball="${REFAPP_TARBALL:-}"
install_dir="${REFAPP_INSTALL_DIR:-$HOME/.local/bin}"
lib_dir="${REFAPP_LIB_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/$NAME}"
while [ $# -gt 0 ]; do
    case "$1" in
        --tarball) [ $# -ge 2 ] || fail "--tarball needs a path" "" 2; tarball="$2"; shift 2 ;;
        --tarball=*) tarball="${1#*=}"; shift ;;
        --install-dir) [ $# -ge 2 ] || fail "--install-dir needs a path" "" 2; install_dir="$2"; shift 2 ;;
        --install-dir=*) install_dir="${1#*=}"; shift ;;
        --lib-dir) [ $# -ge 2 ] || fail "--lib-dir needs a path" "" 2; lib_dir="$2"; shift 2 ;;
        --lib-dir=*) lib_dir="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; fail "unknown argument: $1" "" 2 ;;
    esac
done

absolute() {
    case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$(pwd)" "$1" ;; esac
}
for path in "$install_dir" "$lib_dir"; do
    case "$path" in
        *"'"*|*'|'*|*'
'*) fail "unsupported character (quote, '|' or newline) in path: $path" ;;
    esac
done
install_dir=$(absolute "$install_dir")
lib_dir=$(absolute "${lib_dir%/}")

# ---- preflight: tools and the tarball ---------------------------------------
missing=""
for tool in tar xz gzip sha256sum mktemp uname sed grep; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -z "$missing" ] || fail "missing required tools:$missing" "install them (Debian: apt-get install tar xz-utils gzip coreutils)"

machine_arch=$(uname -m)
machine_os=$(uname -s | tr '[:upper:]' '[:lower:]')
script_dir=$(cd "$(dirname "$0")" && pwd)

if [ -z "$tarball" ]; then
    found=""
    for candidate in "$script_dir/$NAME"-v*-"$machine_arch-$machine_os".tar.gz; do
        [ -f "$candidate" ] && { [ -z "$found" ] || fail "several tarballs beside install.sh" "pick one with --tarball PATH"; found="$candidate"; }
    done
    [ -n "$found" ] || fail "no release tarball given" \
        "pass --tarball PATH or set REFAPP_TARBALL to $NAME-v<version>-$machine_arch-$machine_os.tar.gz (this installer never downloads)"
    tarball="$found"
fi
[ -e "$tarball" ] || fail "tarball not found: $tarball" "check the path given with --tarball or REFAPP_TARBALL"
[ -f "$tarball" ] && [ -r "$tarball" ] || fail "tarball is not a readable file: $tarball"
tarball=$(absolute "$tarball")

tarball_name=$(basename "$tarball")
name_platform=$(printf '%s\n' "$tarball_name" | sed -n "s/^$NAME-v[^-]*-\\(.*\\)\\.tar\\.gz\$/\\1/p")
if [ -n "$name_platform" ] && [ "$name_platform" != "$machine_arch-$machine_os" ]; then
    fail "$tarball_name is built for $name_platform, this machine is $machine_arch-$machine_os" \
        "use the $NAME-v<version>-$machine_arch-$machine_os.tar.gz release"
fi

say "checking $tarball"
gzip -t "$tarball" 2>/dev/null || fail "$tarball_name is truncated or corrupt (gzip test failed)" \
    "download or copy it again and compare its sha256 with checksums.txt"
checksums="$(dirname "$tarball")/checksums.txt"
if [ -f "$checksums" ]; then
    expected=$(grep "  $tarball_name\$" "$checksums" | sed 's/ .*//' || true)
    [ -n "$expected" ] || fail "checksums.txt has no line for $tarball_name" "use the checksums.txt published with this tarball"
    actual=$(sha256sum "$tarball" | sed 's/ .*//')
    [ "$expected" = "$actual" ] || fail "sha256 mismatch for $tarball_name: expected $expected, got $actual" \
        "the tarball or checksums.txt is stale or damaged; fetch both again"
    say "sha256 verified against checksums.txt"
else
    say "no checksums.txt beside the tarball: sha256 not verified"
fi

# ---- staging: everything happens in a temp dir beside the lib dir -----------
created_root=""
ensure_dir() {
    # mkdir -p, remembering the topmost directory this run created (removed again on failure).
    probe="$1"
    while [ ! -d "$probe" ]; do top="$probe"; probe=$(dirname "$probe"); done
    if [ ! -d "$1" ]; then
        mkdir -p "$1"
        [ -n "$created_root" ] || created_root="$top"
    fi
}

staging=""
backup=""
swapped=""
launcher_tmp=""
finished=""
cleanup() {
    status=$?
    trap - EXIT INT TERM
    if [ -z "$finished" ]; then
        if [ -n "$swapped" ]; then
            rm -rf "$lib_dir"
            [ -z "$backup" ] || mv "$backup" "$lib_dir"
        fi
        [ -z "$launcher_tmp" ] || rm -f "$launcher_tmp"
        [ -z "$created_root" ] || rm -rf "$created_root"
        [ "$status" -ne 0 ] || status=1
        printf '%s install: nothing was installed; the previous state is unchanged\n' "$NAME" >&2
    fi
    [ -z "$staging" ] || rm -rf "$staging"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_dir "$(dirname "$lib_dir")"
staging=$(mktemp -d "$(dirname "$lib_dir")/.$NAME-install.XXXXXX")
say "unpacking into $staging"
mkdir "$staging/unpacked"
tar -xzf "$tarball" -C "$staging/unpacked" --no-same-owner --no-same-permissions 2>"$staging/tar.err" || \
    fail "could not unpack $tarball_name: $(tail -n 3 "$staging/tar.err")" "the tarball is damaged; fetch it again"

manifest="$staging/unpacked/release.env"
[ -f "$manifest" ] || fail "$tarball_name has no release.env: not a $NAME release" "check that this is the right file"
manifest_value() { sed -n "s/^$1=//p" "$manifest" | head -n 1; }
release_version=$(manifest_value VERSION)
release_arch=$(manifest_value ARCH)
release_os=$(manifest_value OS)
release_platform=$(manifest_value PLATFORM)
runtime_layer=$(manifest_value RUNTIME_LAYER)
app_layer=$(manifest_value APP_LAYER)
[ "$(manifest_value NAME)" = "$NAME" ] || fail "$tarball_name is not a $NAME release (release.env names '$(manifest_value NAME)')"
[ "$release_arch-$release_os" = "$machine_arch-$machine_os" ] || \
    fail "$tarball_name contains a $release_arch-$release_os build, this machine is $machine_arch-$machine_os" \
        "use the $NAME-v<version>-$machine_arch-$machine_os.tar.gz release"
[ -n "$runtime_layer" ] && [ -n "$app_layer" ] || fail "release.env of $tarball_name names no RUNTIME_LAYER or APP_LAYER"
for required in "$NAME" server/main.py server/stack_export_prod modelfiles; do
    [ -e "$staging/unpacked/$required" ] || fail "$tarball_name is incomplete: $required is missing"
done

# ---- the lib tree: sources, models and the unpacked venvstacks layers -------
mkdir "$staging/lib"
for part in server modelfiles release.env; do
    mv "$staging/unpacked/$part" "$staging/lib/$part"
done
stack="$staging/lib/server/stack_export_prod"
layers=0
for archive in "$stack"/*.tar.xz; do
    [ -f "$archive" ] || continue
    say "unpacking layer $(basename "$archive")"
    tar -xJf "$archive" -C "$stack" --no-same-owner 2>"$staging/tar.err" || \
        fail "could not unpack layer $(basename "$archive"): $(tail -n 3 "$staging/tar.err")"
    rm -f "$archive"
    layers=$((layers + 1))
done
[ "$layers" -gt 0 ] || fail "$tarball_name has no layer archives in server/stack_export_prod"

runtime_python="$stack/$runtime_layer/bin/python3"
[ -x "$runtime_python" ] || fail "runtime layer $runtime_layer has no bin/python3"
runtime_error=$("$runtime_python" -I -S -c 'import sys' 2>&1) || \
    fail "the runtime layer's Python does not run on this machine: $runtime_error" \
        "this release targets $release_platform; check the machine matches"

# ---- move into place, then post-install (it writes absolute paths) ----------
if [ -e "$lib_dir" ]; then
    backup="$staging/previous"
    mv "$lib_dir" "$backup"
    say "moved the previous install aside (restored if this install fails)"
fi
mv "$staging/lib" "$lib_dir"
swapped=1
stack="$lib_dir/server/stack_export_prod"
runtime_python="$stack/$runtime_layer/bin/python3"
for kind in "$runtime_layer" 'framework-*' 'app-*'; do
    for layer in "$stack"/$kind; do
        [ -f "$layer/postinstall.py" ] || continue
        say "post-install $(basename "$layer")"
        "$runtime_python" "$layer/postinstall.py" >"$staging/postinstall.log" 2>&1 || \
            fail "post-install of $(basename "$layer") failed: $(tail -n 5 "$staging/postinstall.log")"
    done
done
app_python="$stack/$app_layer/bin/python"
check_error=$(cd "$lib_dir" && "$app_python" -c 'import server.main, numpy, fastapi, uvicorn' 2>&1) || \
    fail "the installed server does not import: $check_error"

# ---- the launcher -----------------------------------------------------------
ensure_dir "$install_dir"
launcher_tmp="$install_dir/.$NAME.tmp.$$"
sed_lib_dir=$(printf '%s\n' "$lib_dir" | sed 's/[&\\|]/\\&/g')
sed "s|^REFAPP_INSTALLED_LIB_DIR=.*|REFAPP_INSTALLED_LIB_DIR='$sed_lib_dir'|" "$staging/unpacked/$NAME" >"$launcher_tmp"
chmod 755 "$launcher_tmp"
mv "$launcher_tmp" "$install_dir/$NAME"
launcher_tmp=""

finished=1
[ -z "$backup" ] || rm -rf "$backup"
say "installed $NAME $release_version ($release_arch-$release_os)"
say "  launcher: $install_dir/$NAME"
say "  release:  $lib_dir ($layers layers unpacked and post-installed)"
case ":$PATH:" in
    *":$install_dir:"*) ;;
    *) say "  note: $install_dir is not on PATH; add it, or run $install_dir/$NAME" ;;
esac
say "start the server with: $NAME serve"
