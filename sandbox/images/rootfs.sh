#!/usr/bin/env bash
# Root filesystems of the sandbox's base images, assembled from this machine's own Debian packages
# (nothing can be pulled here).
#
#   rootfs.sh build IMAGE DIR   fill DIR (empty or absent) with the image's files
#   rootfs.sh inputs IMAGE      print the host files the image is made from, one per line
#                               (sandbox/images/__init__.py hashes them: a changed input rebuilds)
#
# busybox: static busybox with its applets in /bin, /etc/passwd (nobody = 65534), /tmp.
# java:    busybox + a jlink'ed JRE 17 in /opt/java (the modules JAVA_MODULES) + the shared libraries it links.
# php:     busybox + /usr/bin/php with its php.ini, conf.d, the extensions those load and their libraries.
# python:  busybox + the host's CPython (SANDBOX_PYTHON_HOME, default the sys.base_prefix of python3) in
#          /opt/python: the interpreter, libpython, the standard library without tests, IDLE, tkinter,
#          ensurepip, __pycache__ and the static library's config-*/ directory, pip (the python recipe installs
#          its wheels with it), debug symbols stripped; plus the ldd closure of the interpreter and lib-dynload
#          and the system libraries manylinux wheels may link (MANYLINUX_LIBS).
# prestop-helper: only /opt/opsportal/bin/http-post, the preStop hook's static HTTP client, compiled from
#          deploys/prestop/http-post.c (the generic Dockerfiles copy it from this image; not a base image).
#
# Environment: SANDBOX_BUSYBOX (default /bin/busybox), JAVA_HOME (default: the JDK of `javac` on PATH),
# SANDBOX_PYTHON_HOME (default: sys.base_prefix of `python3` on PATH; sandbox/images passes its own).
set -euo pipefail

die() { echo "rootfs.sh: $*" >&2; exit 1; }

busybox=${SANDBOX_BUSYBOX:-/bin/busybox}
http_post_c=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../deploys/prestop" && pwd)/http-post.c
IMAGES='^(busybox|java|php|python|prestop-helper)$'
# The service's own needs (HTTP server, JMX/container metrics) plus what TLS clients and the JVM's container
# support use. java.base holds the cgroup code that sizes the heap from the container's memory limit.
JAVA_MODULES=java.base,java.logging,java.management,java.naming,jdk.httpserver,jdk.management,jdk.crypto.ec,jdk.unsupported,jdk.zipfs

java_home() {
  if [[ -n ${JAVA_HOME:-} ]]; then echo "$JAVA_HOME"; return; fi
  local javac
  javac=$(command -v javac) || die "no JDK: javac not on PATH (apt-get install openjdk-17-jdk-headless)"
  dirname "$(dirname "$(readlink -f "$javac")")"
}

php_binary() {
  local php
  php=$(command -v php) || die "php not found (apt-get install php-cli)"
  readlink -f "$php"
}

# The ini directory PHP reads (e.g. /etc/php/8.2/cli) and the extension directory.
php_ini_dir() { "$(php_binary)" -r 'echo dirname(php_ini_loaded_file() ?: PHP_CONFIG_FILE_PATH . "/php.ini");'; }
php_extension_dir() { "$(php_binary)" -r 'echo ini_get("extension_dir");'; }

# Extensions the conf.d files load, as paths.
php_extensions() {
  local ini_dir ext_dir line name
  ini_dir=$(php_ini_dir)
  ext_dir=$(php_extension_dir)
  cat "$ini_dir"/conf.d/*.ini 2>/dev/null | while read -r line; do
    if [[ $line =~ ^[[:space:]]*(zend_)?extension[[:space:]]*=[[:space:]]*\"?([A-Za-z0-9_./-]+)\"? ]]; then
      name=${BASH_REMATCH[2]}
      [[ $name == *.so ]] || name=$name.so
      [[ $name == /* ]] || name=$ext_dir/$name
      echo "$name"
    fi
  done
}

# Every shared library FILE... needs (ldd's closure), with the dynamic loader.
libraries_of() {
  [[ $# -gt 0 ]] || return 0
  # One ldd for all (python's 60 extension modules): it heads each file's list with "FILE:".
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' \
    | sort -u
}

# Copy FILE... into DIR at the same paths, following symlinks (the image must not point back at the host).
copy_into() {
  local dir=$1 file
  shift
  for file in "$@"; do
    mkdir -p "$dir$(dirname "$file")"
    cp -L --preserve=mode "$file" "$dir$file"
  done
}

build_busybox() {
  local dir=$1 applet
  [[ -x $busybox ]] || die "static busybox not found at $busybox (apt-get install busybox-static)"
  # A dynamically linked busybox would fail inside the image for lack of libc.
  if ldd "$busybox" >/dev/null 2>&1; then die "$busybox is dynamically linked; install busybox-static"; fi
  mkdir -p "$dir"/{bin,etc,tmp,root}
  chmod 1777 "$dir/tmp"
  cp "$busybox" "$dir/bin/busybox"
  for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$dir/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

build_java() {
  local dir=$1 home elves
  home=$(java_home)
  [[ -x $home/bin/jlink ]] || die "jlink not found in $home (apt-get install openjdk-17-jdk-headless)"
  build_busybox "$dir"
  mkdir -p "$dir/opt"
  "$home/bin/jlink" --add-modules "$JAVA_MODULES" --strip-debug --no-man-pages --no-header-files \
    --compress=2 --output "$dir/opt/java"
  mapfile -t elves < <(find "$dir/opt/java" -type f \( -name '*.so' -o -path '*/bin/*' \))
  mapfile -t libs < <(libraries_of "${elves[@]}")
  copy_into "$dir" "${libs[@]}"
}

build_php() {
  local dir=$1 php ini_dir ext
  php=$(php_binary)
  ini_dir=$(php_ini_dir)
  build_busybox "$dir"
  mkdir -p "$dir/usr/bin" "$dir/var/www/html" "$dir$ini_dir"
  cp "$php" "$dir/usr/bin/php"
  # conf.d holds symlinks into mods-available: copied as files.
  cp -rL "$ini_dir/." "$dir$ini_dir/"
  mapfile -t exts < <(php_extensions)
  for ext in "${exts[@]}"; do [[ -f $ext ]] || die "$ini_dir/conf.d loads $ext, which does not exist"; done
  copy_into "$dir" "${exts[@]}"
  mapfile -t libs < <(libraries_of "$php" "${exts[@]}")
  copy_into "$dir" "${libs[@]}"
  # Debian's PHP reads the system time zone database; UTC is all a container needs (date.timezone = UTC).
  if [[ -f /usr/share/zoneinfo/Etc/UTC ]]; then copy_into "$dir" /usr/share/zoneinfo/Etc/UTC /usr/share/zoneinfo/UTC; fi
}

python_home() {
  if [[ -n ${SANDBOX_PYTHON_HOME:-} ]]; then echo "$SANDBOX_PYTHON_HOME"; return; fi
  command -v python3 >/dev/null || die "python3 not found (set SANDBOX_PYTHON_HOME to a CPython prefix)"
  python3 -c 'import sys; print(sys.base_prefix)'
}

# X.Y of the CPython in python_home (its lib/pythonX.Y and bin/pythonX.Y).
python_version() {
  local home=$1 lib
  for lib in "$home"/lib/python3.*/os.py; do
    [[ -f $lib ]] && { basename "$(dirname "$lib")" | sed 's/^python//'; return; }
  done
  die "no CPython standard library in $home/lib (set SANDBOX_PYTHON_HOME)"
}

# The standard library's files, without what a service never imports (tests, IDLE, tkinter, ensurepip's
# bundled wheels), byte code caches, the static library's config dir and the host's site-packages.
python_stdlib() {
  local lib=$1
  find "$lib" \( -path "$lib/site-packages" -o -path "$lib/config-*" -o -path "$lib/idlelib" \
    -o -path "$lib/tkinter" -o -path "$lib/turtledemo" -o -path "$lib/ensurepip" -o -name __pycache__ \
    -o -name test -o -name tests -o -name idle_test \) -prune -o -type f \
    ! -name 'turtle.py' ! -name '_tkinter.*' ! -name '_test*.so' ! -name '_xxtestfuzz*' ! -name '_ctypes_test*' \
    -print | sort
}

# pip and its dist-info from the host's site-packages (without byte code).
python_pip() {
  local lib=$1
  [[ -d $lib/site-packages/pip ]] || die "pip not found in $lib/site-packages (python3 -m ensurepip)"
  find "$lib/site-packages/pip" "$lib"/site-packages/pip-*.dist-info -name __pycache__ -prune -o -type f -print | sort
}

# The system libraries a manylinux wheel may link without bundling them (PEP 599's list, less X11/GL):
# libpthread, libdl, librt and libutil are stubs in glibc >= 2.34, but wheels built on older ones still
# name them, and libstdc++/libgcc_s come with C++ extensions. Taken from the directory of the interpreter's
# libc, where present.
MANYLINUX_LIBS="libc.so.6 libm.so.6 libdl.so.2 librt.so.1 libpthread.so.0 libutil.so.1 libresolv.so.2 libnsl.so.1
  libcrypt.so.1 libgcc_s.so.1 libstdc++.so.6 libz.so.1"
python_manylinux_libs() {
  local libc dir name
  libc=$(ldd "$1" | awk '$1 == "libc.so.6" { print $3 }')
  [[ -n $libc ]] || die "$1 does not link libc.so.6"
  dir=$(dirname "$libc")
  for name in $MANYLINUX_LIBS; do
    [[ -e $dir/$name ]] && echo "$dir/$name"
  done
  return 0
}

python_libpython() { ldd "$1" 2>/dev/null | awk '$1 ~ /^libpython/ && $3 ~ /^\// { print $3 }'; }

build_python() {
  local dir=$1 home version lib exe libpython file rel
  home=$(python_home)
  version=$(python_version "$home")
  lib=$home/lib/python$version
  exe=$home/bin/python$version
  [[ -x $exe ]] || die "no interpreter at $exe"
  build_busybox "$dir"
  mkdir -p "$dir/opt/python/bin" "$dir/opt/python/lib" "$dir/usr/lib"
  cp -L --preserve=mode "$exe" "$dir/opt/python/bin/python$version"
  ln -s "python$version" "$dir/opt/python/bin/python3"
  ln -s "python$version" "$dir/opt/python/bin/python"
  libpython=$(python_libpython "$exe")
  if [[ -n $libpython ]]; then
    cp -L --preserve=mode "$libpython" "$dir/opt/python/lib/$(basename "$libpython")"
    # The interpreter's RUNPATH names the host's prefix; the loader's default path finds this link instead.
    ln -s "/opt/python/lib/$(basename "$libpython")" "$dir/usr/lib/$(basename "$libpython")"
  fi
  # One cp for the 1,100 files (-t keeps each path below the prefix).
  { python_stdlib "$lib"; python_pip "$lib"; } | sed "s|^$home/||" \
    | (cd "$home" && xargs -d '\n' cp --parents --preserve=mode -t "$dir/opt/python")
  # pyenv's builds keep their debug info (the interpreter and libpython alone are 40 MB of it).
  if command -v strip >/dev/null; then
    find "$dir/opt/python" -type f \( -name '*.so' -o -name '*.so.*' -o -path '*/bin/python*' \) \
      -exec strip --strip-debug {} +
  fi
  mapfile -t manylinux < <(python_manylinux_libs "$exe")
  mapfile -t libs < <({ libraries_of "$exe" "$dir/opt/python/lib/python$version"/lib-dynload/*.so \
    "${manylinux[@]}" | grep -v -e '/libpython' -e "^$home/"; printf '%s\n' "${manylinux[@]}"; } | sort -u)
  copy_into "$dir" "${libs[@]}"
}

build_prestop_helper() {
  local dir=$1 gcc
  gcc=$(command -v gcc) || die "gcc not found (apt-get install gcc libc6-dev)"
  mkdir -p "$dir/opt/opsportal/bin"
  "$gcc" -static -Os -s -o "$dir/opt/opsportal/bin/http-post" "$http_post_c"
}

inputs() {
  if [[ $1 == prestop-helper ]]; then
    echo "$http_post_c"
    readlink -f "$(command -v gcc)"
    gcc -print-file-name=libc.a
    return
  fi
  echo "$busybox"
  case $1 in
    busybox) ;;
    java)
      local home
      home=$(java_home)
      # The jmods are what jlink reads; release names the exact JDK build.
      echo "$home/release"
      find "$home/jmods" -name '*.jmod' | sort
      libraries_of "$home/bin/java" "$home/lib/server/libjvm.so" "$home"/lib/*.so
      ;;
    python)
      local home version
      home=$(python_home)
      version=$(python_version "$home")
      echo "$home/bin/python$version"
      python_libpython "$home/bin/python$version"
      python_stdlib "$home/lib/python$version"
      python_pip "$home/lib/python$version"
      mapfile -t dynload < <(python_stdlib "$home/lib/python$version" | grep '/lib-dynload/.*\.so$')
      libraries_of "$home/bin/python$version" "${dynload[@]}" | grep -v "^$home/"
      python_manylinux_libs "$home/bin/python$version"
      ;;
    php)
      local php
      php=$(php_binary)
      echo "$php"
      find "$(php_ini_dir)" -name '*.ini' | sort
      php_extensions
      mapfile -t exts < <(php_extensions)
      libraries_of "$php" "${exts[@]}"
      ;;
    *) die "unknown image: $1" ;;
  esac
}

case ${1:-} in
  build)
    [[ $# -eq 3 ]] || die "usage: rootfs.sh build IMAGE DIR"
    [[ $2 =~ $IMAGES ]] || die "unknown image: $2"
    mkdir -p "$3"
    "build_${2//-/_}" "$3"
    ;;
  inputs)
    [[ $# -eq 2 ]] || die "usage: rootfs.sh inputs IMAGE"
    [[ $2 =~ $IMAGES ]] || die "unknown image: $2"
    inputs "$2"
    ;;
  *) die "usage: rootfs.sh build|inputs IMAGE [DIR]" ;;
esac
