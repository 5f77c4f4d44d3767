#!/usr/bin/env bash
# README command 1: install what is missing, build, start `apogee standalone`
# (NameServer on 127.0.0.1:9876, broker on 127.0.0.1:10911, data in ./data; pass
# --bindAddress=0.0.0.0 to listen on every interface). Extra arguments go to
# apogee, e.g. scripts/start.sh --listenPort=10921.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# A build tree scripts/test.sh configured keeps -Werror in its cache; warnings
# never stop this one.
scripts/build.sh build -DAPOGEE_WERROR=OFF
exec ./build/apogee standalone "$@"
