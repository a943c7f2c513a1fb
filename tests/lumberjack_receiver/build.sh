#!/usr/bin/env bash
# Build the lumberjack receiver (main.go, go-lumber's server) once into the cache and
# print the binary's path. Needs Go >= 1.21 and the Go module proxy (go-lumber and
# klauspost/compress, pinned by go.mod and checked against go.sum); modules and the
# binary live under ~/.cache/wlcg-soc, never in the repository.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${WLCG_SOC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wlcg-soc}

if ! command -v go >/dev/null 2>&1; then
  echo "Go >= 1.21 is needed to build $src (Debian: golang-go from bookworm-backports, or go.dev/dl)" >&2
  exit 1
fi

# The binary's name carries a hash of the sources: an edit rebuilds, nothing else does.
hash=$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)
bin="$cache/bin/lumberjack_receiver-$hash"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache/bin" "$cache/go"
  export GOPATH="$cache/go" GOMODCACHE="$cache/go/pkg/mod" GOCACHE="$cache/go/build"
  # readonly: go.sum must already name every module (no silent re-resolution);
  # local toolchain: never download a Go toolchain.
  export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
  tmp="$bin.tmp.$$"
  (cd "$src" && go build -trimpath -o "$tmp" .)
  mv -f "$tmp" "$bin"
fi
echo "$bin"
