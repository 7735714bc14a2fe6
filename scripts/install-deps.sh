#!/bin/sh
# Install what Ember needs to build, test and benchmark, from Debian 12's packages.
set -eu
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
PACKAGES="
  build-essential pkg-config meson ninja-build python3 clang-format
  libseccomp-dev liburing-dev libprotobuf-c-dev protobuf-c-compiler libcriterion-dev
  qemu-system-x86 busybox-static cpio kmod iproute2 clang e2fsprogs
  linux-source-6.1 flex bison bc libelf-dev libssl-dev xz-utils
"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PACKAGES
