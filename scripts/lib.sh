# Shared by the scripts: package installs and the build directory.
# shellcheck shell=bash

# Builds go to one directory outside the clone, so a fresh clone (CI) reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/calldock/target}"

# Debian packages every build needs: a C compiler for the bundled SQLite and for ring (TLS),
# CMake for libopus (opusic-sys builds the source it bundles), ALSA's headers (cpal's Linux
# backends link libasound), and libclang for bindgen: nokhwa's V4L2 backend generates its
# bindings to <linux/videodev2.h> at build time (v4l2-sys-mit), and has no option that avoids it.
# The desktop shell (Tauri 2) links WebKitGTK 4.1, GTK 3, libsoup 3 and librsvg (icons), loads
# libayatana-appindicator at run time for the tray, and links libdbus (the keychain, through the
# Secret Service); libssl-dev builds tauri-cli for scripts/package-deb.
BUILD_PACKAGES=(gcc libc6-dev pkg-config ca-certificates cmake libasound2-dev libclang-dev libvpx-dev
    libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev librsvg2-dev libayatana-appindicator3-dev
    libdbus-1-dev libssl-dev)

# need_packages PKG...: installs what is missing (as root), or says exactly what to run.
need_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "calldock: installing ${missing[*]}" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    else
        echo "calldock: missing Debian packages. Install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

# link_libvpx_statically: the build links libvpx (VP8) into the binary, as libopus is, so the
# app needs no libvpx of one particular soname at run time (Debian 12 and Ubuntu 22.04 ship
# libvpx7, Ubuntu 24.04 libvpx9) and the .deb depends on nothing more for video. It must go
# through VPX_LIB_DIR: through pkg-config, env-libvpx-sys links a library under /usr
# dynamically whatever VPX_STATIC says (pkg-config-rs keeps system libraries shared).
link_libvpx_statically() {
    local archive
    archive=$(gcc -print-file-name=libvpx.a)
    [ -f "$archive" ] || return 0 # no static libvpx (libvpx-dev): linked dynamically
    VPX_LIB_DIR=$(cd "$(dirname "$archive")" && pwd)
    VPX_INCLUDE_DIR=$(pkg-config --variable=includedir vpx)
    VPX_VERSION=$(pkg-config --modversion vpx)
    export VPX_LIB_DIR VPX_INCLUDE_DIR VPX_VERSION VPX_STATIC=1
}

need_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "calldock: Rust is not installed. Install it from https://rustup.rs (rustup), then run this again." >&2
        exit 1
    fi
}
