#!/usr/bin/env bash
# Installs the Debian 12 packages Apogee needs to build, test and run, then the
# console's build tool (esbuild, from web/package-lock.json).
# Idempotent: packages already present are not reinstalled; apt is only
# touched when something is missing.
set -euo pipefail

# chromium: the headless browser tests/integration/console.test.mjs drives (playwright-core);
# wrk: the HTTP load generator of bench/http_publish.lua.
PKGS=(build-essential cmake pkg-config clang clang-format llvm libclang-rt-14-dev
      libuv1-dev libjansson-dev libyaml-dev zlib1g-dev libssl-dev libcmocka-dev
      libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libhttp-parser-dev
      nodejs npm chromium wrk)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        # nodejs/npm may come from another source (e.g. nodesource); accept the binaries.
        case "$p" in
        nodejs) command -v node >/dev/null && continue ;;
        npm) command -v npm >/dev/null && continue ;;
        esac
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "install-deps: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "install-deps: all packages present"
fi

# The console's build tool: esbuild from web/package-lock.json, which CMakeLists.txt runs to
# minify web/ before embedding it. Installed when absent or when the lockfile is newer than
# the install; a failure (offline) is not fatal: the build then embeds web/ unminified.
web="$(cd "$(dirname "$0")/.." && pwd)/web"
if [ -f "$web/package-lock.json" ] && { [ ! -x "$web/node_modules/.bin/esbuild" ] ||
    [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; }; then
    if ! (cd "$web" && npm ci --no-audit --no-fund --loglevel=error); then
        echo "install-deps: npm ci in web/ failed; the console is embedded unminified"
    fi
fi
