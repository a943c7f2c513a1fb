#!/usr/bin/env bash
# Build the stand-in "filebeat" package on the controller:
#   build-package.sh VERSION TESTS_DIR PYLOGBEAT KAFKA_PACKAGE OUT_DIR
# Elastic's layout: the binary /usr/share/filebeat/bin/filebeat (here the Filebeat stand-in,
# tests/filebeat_standin/filebeat.py, with filebeat_reference.py, pylogbeat.py and the
# kafka-python package (kafka/, pure Python; KAFKA_PACKAGE is its directory) beside it), the vendor's unit in /lib/systemd/system, the default /etc/filebeat/filebeat.yml
# (root's, 0600), the /usr/bin/filebeat wrapper. Prints the path of the .deb.
set -euo pipefail
version=$1 tests=$2 pylogbeat=$3 kafka=$4 out=$5
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tree=$out/tree
deb=$out/filebeat_${version}_all.deb

rm -rf "$tree"
install -d -m 0755 "$tree/DEBIAN" "$tree/usr/share/filebeat/bin" "$tree/usr/bin" "$tree/lib/systemd/system" \
  "$tree/etc/filebeat"
# The stand-in has no shebang in the repository (a plain test module there): the package's
# binary gets Debian's python3.
{ echo '#!/usr/bin/python3'; cat "$tests/filebeat_standin/filebeat.py"; } > "$tree/usr/share/filebeat/bin/filebeat"
chmod 0755 "$tree/usr/share/filebeat/bin/filebeat"
install -m 0644 "$tests/filebeat_reference.py" "$pylogbeat" "$tree/usr/share/filebeat/bin/"
cp -r "$kafka" "$tree/usr/share/filebeat/bin/kafka"
find "$tree/usr/share/filebeat/bin/kafka" -name __pycache__ -prune -exec rm -rf {} +
chmod -R u=rwX,go=rX "$tree/usr/share/filebeat/bin/kafka"
install -m 0644 "$here/filebeat.service" "$tree/lib/systemd/system/filebeat.service"

# Elastic's /usr/bin/filebeat (elastic/beats, dev-tools/packaging/templates/linux/beatname.sh.tmpl).
cat >"$tree/usr/bin/filebeat" <<'EOF'
#!/usr/bin/env bash

# Script to run Filebeat in foreground with the same path settings that
# the init script / systemd unit file would do.

exec /usr/share/filebeat/bin/filebeat \
  --path.home /usr/share/filebeat \
  --path.config /etc/filebeat \
  --path.data /var/lib/filebeat \
  --path.logs /var/log/filebeat \
  "$@"
EOF
chmod 0755 "$tree/usr/bin/filebeat"

# The start of Elastic's default filebeat.yml; the role replaces it.
cat >"$tree/etc/filebeat/filebeat.yml" <<'EOF'
###################### Filebeat Configuration Example #########################
filebeat.inputs:
- type: filestream
  id: my-filestream-id
  enabled: false
  paths:
    - /var/log/*.log
output.elasticsearch:
  hosts: ["localhost:9200"]
EOF
chmod 0600 "$tree/etc/filebeat/filebeat.yml"

echo /etc/filebeat/filebeat.yml >"$tree/DEBIAN/conffiles"
cat >"$tree/DEBIAN/control" <<EOF
Package: filebeat
Version: $version
Architecture: all
Maintainer: wlcg.soc tests <tests@example.invalid>
Depends: python3, python3-yaml, python3-lz4
Section: default
Priority: extra
Homepage: https://www.elastic.co/beats/filebeat
Description: Stand-in for Filebeat (wlcg.soc tests)
 Filebeat's package layout and unit; the binary is the Filebeat stand-in of
 the wlcg.soc tests, which runs the same filebeat.yml and command line.
EOF
# As Elastic's package: the unit is installed, neither enabled nor started.
cat >"$tree/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
fi
EOF
chmod 0755 "$tree/DEBIAN/postinst"
chmod 0644 "$tree/DEBIAN/conffiles" "$tree/DEBIAN/control"

dpkg-deb --root-owner-group --build "$tree" "$deb" >/dev/null
echo "$deb"
