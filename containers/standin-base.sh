#!/usr/bin/env bash
# Build a STAND-IN for the official python base image, for machines that cannot pull from a registry.
#
#   containers/standin-base.sh TAG [CACHE_DIR]
#
# The Dockerfiles start FROM the official `python:<version>-slim-bookworm`. Where no registry is reachable
# (air-gapped machines, this project's CI), this script builds a root filesystem of the same Debian release
# with debootstrap from the Debian mirror apt already uses, lays Python out as the official image does
# (`python` and `pip` on PATH, pip usable as root, LANG=C.UTF-8) and imports it under TAG, so the
# Dockerfiles' FROM resolves without a pull. What differs from the official image: Debian's Python 3.11.2
# in /usr/bin (the official image builds its own 3.11.x into /usr/local), Debian's pip and venv packages,
# and a few more Debian packages (python3-pip pulls in its dependencies): it is about 300 MB against about
# 130 MB. Needs root, debootstrap and podman. The root filesystem is kept as a tarball in CACHE_DIR
# (default ~/.cache/resnet18-inference/images), so later runs only re-import it.
set -euo pipefail
tag=${1:?usage: containers/standin-base.sh TAG [CACHE_DIR]}
cache=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/resnet18-inference/images}
podman=(${PODMAN:-podman})
suite=bookworm
tarball="$cache/standin-$suite-python3.tar"

if [[ ! -s $tarball ]]; then
  command -v debootstrap >/dev/null || { echo "standin-base: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
  mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "standin-base: debootstrap $suite from $mirror (about a minute)" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
  # As the official image: `python` and `pip` on PATH, and pip may install as root (no PEP 668 marker).
  ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
  ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  chmod 0755 "$root"  # mktemp made it private; it becomes the image's /
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi
"${podman[@]}" import --quiet --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' --message "stand-in for $tag built with debootstrap ($suite)" \
  "$tarball" "$tag" >/dev/null
echo "standin-base: $tag is a stand-in built from Debian $suite packages" >&2
