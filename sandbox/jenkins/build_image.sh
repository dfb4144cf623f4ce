#!/usr/bin/env bash
# Build an image from CONTEXT_DIR's Dockerfile/Containerfile and push it to IMAGE_REF, with no daemon.
#
#   build_image.sh CONTEXT_DIR IMAGE_REF        e.g. build_image.sh src 127.0.0.1:5000/go-hello:v1.0.0
#
# Nothing can be pulled from outside, so a FROM line names either
#   * an image in a registry on this machine (127.0.0.1:PORT/…, localhost:PORT/…): the sandbox's base images
#     (sandbox/images, named in OPSPORTAL_BASE_IMAGES) are pulled from the sandbox registry (plain HTTP);
#   * localhost/sandbox/busybox:latest, made locally from the host's static busybox (package busybox-static)
#     the first time a Dockerfile names it (sandbox/images/rootfs.sh); or `FROM scratch`.
# Anything else fails: the build never reaches outside the machine. Compiling is the build shell's job (the
# portal's recipes compile before they call this); this script only builds the image and pushes it.
# buildah runs rootless-style storage (vfs) with chroot isolation, so it needs no daemon, no overlayfs and
# no user namespaces. The registry is plain HTTP (--tls-verify=false).
#
# Environment: SANDBOX_BUILDAH_ROOT (storage, default ~/.local/share/sandbox-buildah), SANDBOX_BUSYBOX
# (static busybox, default /bin/busybox), DIGEST_FILE (optional: the pushed manifest digest is written there).
# Last line of output on success: "pushed IMAGE_REF@sha256:...".
set -euo pipefail

die() { echo "build_image.sh: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: build_image.sh CONTEXT_DIR IMAGE_REF"
context=$(cd "$1" && pwd) || die "no such context directory: $1"
image_ref=$2
[[ $image_ref =~ ^[A-Za-z0-9.:-]+(/[a-z0-9._-]+)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$ ]] \
  || die "invalid image reference: $image_ref"
command -v buildah >/dev/null || die "buildah not found (apt-get install buildah)"

local_busybox=localhost/sandbox/busybox:latest
rootfs_sh=$(cd "$(dirname "${BASH_SOURCE[0]}")/../images" && pwd)/rootfs.sh
storage_root=${SANDBOX_BUILDAH_ROOT:-${HOME:-/root}/.local/share/sandbox-buildah}
mkdir -p "$storage_root"
export BUILDAH_ISOLATION=chroot
bah() { buildah --storage-driver vfs --root "$storage_root/storage" --runroot "$storage_root/run" "$@"; }

ensure_local_busybox() {
  # Two concurrent builds must not both create it.
  exec 9>"$storage_root/base.lock"
  flock 9
  if ! bah inspect --type image "$local_busybox" >/dev/null 2>&1; then
    local rootfs ctr
    rootfs=$(mktemp -d)
    bash "$rootfs_sh" build busybox "$rootfs"
    ctr=$(bah from --pull=never scratch)
    bah copy "$ctr" "$rootfs" / >/dev/null
    bah config --env PATH=/bin --cmd /bin/sh --label org.opencontainers.image.title=sandbox-busybox "$ctr"
    bah commit --rm --quiet "$ctr" "$local_busybox" >/dev/null
    rm -rf "$rootfs"
    echo "created base image $local_busybox"
  fi
  flock -u 9
}

# The Dockerfile's base images, made available locally; `buildah build --pull=never` then uses only those.
prepare_base_images() {
  local dockerfile=$context/Dockerfile base
  [[ -f $dockerfile ]] || dockerfile=$context/Containerfile
  [[ -f $dockerfile ]] || die "no Dockerfile or Containerfile in $context"
  # FROM [--flags] IMAGE [AS stage]; a later FROM naming an earlier stage is no image to fetch, and an image
  # two stages start from (the python recipe's) is fetched once.
  for base in $(awk 'toupper($1) == "FROM" {
      for (i = 2; i <= NF && $i ~ /^--/; i++) {}
      if (!($i in stages) && !seen[$i]++) print $i
      if (toupper($(i + 1)) == "AS") stages[$(i + 2)] = 1
    }' "$dockerfile"); do
    if [[ $base == scratch ]]; then
      continue
    elif [[ $base == "$local_busybox" ]]; then
      ensure_local_busybox
    elif [[ $base =~ ^(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost):[0-9]+/ ]]; then
      echo "pulling base image $base"
      bah pull --tls-verify=false --quiet "$base" >/dev/null
    else
      die "base image $base is not in a registry on this machine (the sandbox pulls nothing from outside)"
    fi
  done
}

prepare_base_images

labels=()
if revision=$(git -C "$context" rev-parse HEAD 2>/dev/null); then
  labels+=(--label "org.opencontainers.image.revision=$revision")
fi
bah build --pull=never --isolation chroot --layers=false --quiet "${labels[@]}" -t "$image_ref" "$context" >/dev/null
digest_file=$(mktemp)
bah push --tls-verify=false --quiet --digestfile "$digest_file" "$image_ref" "docker://$image_ref"
digest=$(cat "$digest_file")
rm -f "$digest_file"
# vfs keeps full copies of every layer; the pushed image is not needed locally any more.
bah rmi "$image_ref" >/dev/null
if [[ -n ${DIGEST_FILE:-} ]]; then printf '%s\n' "$digest" >"$DIGEST_FILE"; fi
echo "pushed $image_ref@$digest"
