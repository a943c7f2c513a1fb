#!/usr/bin/env bash
# Debian packages the tests use on the controller: memcached (a real server for the
# memcached client tests), shellcheck (ansible-test's shellcheck sanity test), openssl,
# Maven with Java 17 (tests/search fetches Elasticsearch's and OpenSearch's test
# distributions from Maven Central and runs them), and pmacct and softflowd (real flow
# collectors and exporters for the flows pipeline's test).
set -euo pipefail
# Go (not from Debian: bookworm's is too old) builds tests/lumberjack_receiver, the Beats
# protocol server the Filebeat tests ship to, and the benchmarks' latency proxy.
if ! command -v go >/dev/null || ! go version | grep -Eq 'go1[.](2[1-9]|[3-9][0-9])'; then
  echo "the tests need Go >= 1.21 on PATH (https://go.dev/dl/)" >&2; exit 1
fi
need=()
for p in memcached shellcheck openssl maven openjdk-17-jre-headless pmacct softflowd; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
[ "${#need[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "the tests need these Debian packages: ${need[*]} (install them as root)" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
