#!/usr/bin/env bash
# Prepare this machine to run real systemd test hosts (Molecule and the lab):
# podman from Debian, a host configuration that works without CAP_SYS_RESOURCE and on a
# hybrid cgroup layout, and a Debian 12 systemd image built with debootstrap (no
# container registry needed). Idempotent: a second run only checks.
#
# Environment: WLCG_SOC_IMAGE (image name), WLCG_SOC_MIRROR (Debian mirror; defaults to
# the one this machine's apt uses), WLCG_SOC_IMAGE_CACHE (a podman-save tarball reused
# across fresh machines, e.g. a CI cache directory), WLCG_SOC_HOSTS_DIR (where the
# controller's SSH key and client configuration for the test hosts are kept).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

IMAGE=${WLCG_SOC_IMAGE:-localhost/wlcg-soc-debian12:latest}
# Bump when the image content below changes; an image with another revision is rebuilt.
IMAGE_REV=3
CACHE=${WLCG_SOC_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wlcg-soc/debian12-systemd-r$IMAGE_REV.tar}

HOSTS_DIR=${WLCG_SOC_HOSTS_DIR:-$HOME/.cache/wlcg-soc/hosts}

log() { printf '[test-hosts] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (podman with systemd containers, debootstrap)"; exit 1
fi

mirror() {
  local m=${WLCG_SOC_MIRROR:-}
  if [ -z "$m" ]; then
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  fi
  if [ -z "$m" ]; then
    m=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# 1. Host packages. runc: crun rejects a hybrid cgroup layout.
need=()
for p in podman runc debootstrap netavark aardvark-dns iptables uidmap openssh-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. Podman configuration: the default nofile limit (1048576) needs CAP_SYS_RESOURCE,
#    which this machine may lack, and podman caps nproc at 32768 itself.
mkdir -p /etc/containers
conf=$(cat <<CONF
# Written by wlcg.soc tests/hosts/setup.sh
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
)
if [ "$(cat /etc/containers/containers.conf 2>/dev/null)" != "$conf" ]; then
  log "writing /etc/containers/containers.conf"
  printf '%s\n' "$conf" > /etc/containers/containers.conf.tmp
  mv /etc/containers/containers.conf.tmp /etc/containers/containers.conf
fi

# 3. A stale aardvark-dns pid file. When aardvark-dns is killed (not stopped by netavark)
#    its pid file stays; netavark later sends SIGHUP ("reload") to whatever process has
#    reused that pid, which has killed test runs. Only remove it when the pid is not an
#    aardvark-dns process.
pidfile=/run/containers/networks/aardvark-dns/aardvark.pid
if [ -f "$pidfile" ]; then
  pid=$(tr -dc 0-9 < "$pidfile")
  if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != aardvark-dns ]; then
    log "removing stale $pidfile (pid ${pid:-none} is not aardvark-dns)"
    rm -f "$pidfile"
  fi
fi

# 4. vm.max_map_count is the host kernel's, not the container's, and read-only inside:
#    the elasticsearch role's hosts need at least 262144 (only ever raised here).
if [ "$(cat /proc/sys/vm/max_map_count)" -lt 262144 ]; then
  log "raising vm.max_map_count to 262144 (Elasticsearch test hosts)"
  sysctl -q -w vm.max_map_count=262144
fi

# 5. SSH to the test hosts, as Ansible reaches a site's hosts: pipelining over one
#    multiplexed connection per host costs a fraction of the podman connection's
#    per-task `podman exec` calls. Each connection starts `sshd -i` inside the container
#    (inetd style, so hosts that share a network namespace need no ports of their own),
#    which takes the controller's public key from the command line: no key is baked
#    into the image or written into a host.
mkdir -p "$HOSTS_DIR" && chmod 700 "$HOSTS_DIR"
if [ ! -s "$HOSTS_DIR/id_ed25519" ]; then
  log "making the controller's SSH key for the test hosts"
  ssh-keygen -q -t ed25519 -N '' -C wlcg-soc-test-hosts -f "$HOSTS_DIR/id_ed25519"
fi
ssh_config=$(cat <<CONF
# Written by wlcg.soc tests/hosts/setup.sh: SSH to the test hosts by container name.
Host *
  User root
  IdentityFile $HOSTS_DIR/id_ed25519
  IdentitiesOnly yes
  ProxyCommand podman exec -i %h /usr/sbin/sshd -i -o "AuthorizedKeysCommand /usr/bin/echo $(cat "$HOSTS_DIR/id_ed25519.pub")" -o AuthorizedKeysCommandUser=nobody
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
CONF
)
if [ "$(cat "$HOSTS_DIR/ssh_config" 2>/dev/null)" != "$ssh_config" ]; then
  printf '%s\n' "$ssh_config" > "$HOSTS_DIR/ssh_config.tmp" && mv "$HOSTS_DIR/ssh_config.tmp" "$HOSTS_DIR/ssh_config"
fi

# 6. The image.
image_rev() { podman image inspect --format '{{ index .Config.Labels "org.wlcg-soc.image-rev" }}' "$IMAGE" 2>/dev/null || true; }
if [ "$(image_rev)" = "$IMAGE_REV" ]; then
  log "image $IMAGE (rev $IMAGE_REV) present"
  exit 0
fi
if [ -s "$CACHE" ]; then
  log "loading $IMAGE from $CACHE"
  podman load -q -i "$CACHE" >/dev/null
  if [ "$(image_rev)" = "$IMAGE_REV" ]; then exit 0; fi
  log "cached image has another revision; rebuilding"
fi

MIRROR=$(mirror); MIRROR=${MIRROR%/}
SECMIRROR=${MIRROR%/debian}/debian-security
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
log "building $IMAGE with debootstrap from $MIRROR (about a minute)"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates,gnupg,openssh-server \
  bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }
cat > "$rootfs/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECMIRROR bookworm-security main
SRC
chroot "$rootfs" apt-get update -qq
chroot "$rootfs" apt-get clean
# Units that make no sense in a container or would race the tests (apt timers).
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
         e2scrub_reap.service fstrim.timer getty@tty1.service systemd-pstore.service \
         console-getty.service systemd-firstboot.service; do
  chroot "$rootfs" systemctl mask "$u" >/dev/null 2>&1 || true
done
# sshd is installed but not started: each connection starts its own (see 5), and a role
# that needs the service (misp_sync's receiver) enables it.
chroot "$rootfs" systemctl disable ssh.service ssh.socket >/dev/null 2>&1 || true
echo 'd /run/sshd 0755 root root -' > "$rootfs/etc/tmpfiles.d/wlcg-soc-sshd.conf"
: > "$rootfs/etc/machine-id"   # a unique id per container, made at boot
rm -f "$rootfs/etc/hostname"
tar -C "$rootfs" -c . | podman import -q \
  --change 'CMD=["/sbin/init"]' --change 'STOPSIGNAL=SIGRTMIN+3' \
  --change "LABEL org.wlcg-soc.image-rev=$IMAGE_REV" - "$IMAGE" >/dev/null
mkdir -p "$(dirname "$CACHE")"
podman save -q -o "$CACHE.tmp" "$IMAGE" && mv "$CACHE.tmp" "$CACHE"
log "image $IMAGE built and cached in $CACHE"
