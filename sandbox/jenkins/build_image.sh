#!/usr/bin/env bash
# Build an image from CONTEXT_DIR's Dockerfile/Containerfile and push it to IMAGE_REF, with no daemon.
#
#   build_image.sh CONTEXT_DIR IMAGE_REF        e.g. build_image.sh src 127.0.0.1:5000/go-hello:v1.0.0
#
# Nothing can be pulled here, so:
#   * the base image localhost/sandbox/busybox:latest is made locally from the host's static busybox
#     (package busybox-static) the first time it is needed; `FROM scratch` works as well;
#   * a context with go.mod is compiled on the host first (CGO_ENABLED=0, GOTOOLCHAIN=local) into
#     CONTEXT_DIR/bin/app, which the Dockerfile COPYs; there is no golang builder image.
# buildah runs rootless-style storage (vfs) with chroot isolation, so it needs no daemon, no overlayfs and
# no user namespaces. The registry is plain HTTP (--tls-verify=false).
#
# Environment: SANDBOX_BUILDAH_ROOT (storage, default ~/.local/share/sandbox-buildah), SANDBOX_BUSYBOX
# (static busybox, default /bin/busybox), GO (go binary, default `go` on PATH, else /usr/local/go/bin/go),
# DIGEST_FILE (optional: the pushed manifest digest is written there).
# Last line of output on success: "pushed IMAGE_REF@sha256:...".
set -euo pipefail

die() { echo "build_image.sh: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: build_image.sh CONTEXT_DIR IMAGE_REF"
context=$(cd "$1" && pwd) || die "no such context directory: $1"
image_ref=$2
[[ $image_ref =~ ^[A-Za-z0-9.:-]+(/[a-z0-9._-]+)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$ ]] \
  || die "invalid image reference: $image_ref"
command -v buildah >/dev/null || die "buildah not found (apt-get install buildah)"

base_image=localhost/sandbox/busybox:latest
storage_root=${SANDBOX_BUILDAH_ROOT:-${HOME:-/root}/.local/share/sandbox-buildah}
mkdir -p "$storage_root"
export BUILDAH_ISOLATION=chroot
bah() { buildah --storage-driver vfs --root "$storage_root/storage" --runroot "$storage_root/run" "$@"; }

ensure_base_image() {
  # Two concurrent builds must not both create the base image.
  exec 9>"$storage_root/base.lock"
  flock 9
  if bah inspect --type image "$base_image" >/dev/null 2>&1; then
    flock -u 9
    return
  fi
  local busybox=${SANDBOX_BUSYBOX:-/bin/busybox}
  [[ -x $busybox ]] || die "static busybox not found at $busybox (apt-get install busybox-static)"
  # A dynamically linked busybox would fail inside the image for lack of libc.
  if ldd "$busybox" >/dev/null 2>&1; then die "$busybox is dynamically linked; install busybox-static"; fi
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,etc,tmp,root}
  chmod 1777 "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  local ctr
  ctr=$(bah from --pull=never scratch)
  bah copy "$ctr" "$rootfs" / >/dev/null
  bah config --env PATH=/bin --cmd /bin/sh --label org.opencontainers.image.title=sandbox-busybox "$ctr"
  bah commit --rm --quiet "$ctr" "$base_image" >/dev/null
  rm -rf "$rootfs"
  echo "created base image $base_image from $busybox"
  flock -u 9
}

compile_go() {
  local go_bin=${GO:-}
  if [[ -z $go_bin ]]; then go_bin=$(command -v go || echo /usr/local/go/bin/go); fi
  [[ -x $go_bin ]] || die "go not found (set GO=/path/to/go)"
  # Go needs a build cache directory; build shells started without HOME would otherwise fail.
  if [[ -z ${HOME:-} && -z ${GOCACHE:-} ]]; then export GOCACHE=$storage_root/go-build; fi
  echo "compiling $(cd "$context" && "$go_bin" list -m) with $("$go_bin" version)"
  (cd "$context" && CGO_ENABLED=0 GOTOOLCHAIN=local "$go_bin" build -trimpath -ldflags='-s -w' -o bin/app .)
}

ensure_base_image
if [[ -f $context/go.mod ]]; then compile_go; fi

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
