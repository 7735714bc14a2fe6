#!/bin/sh
# Install dependencies, build Ember and its test unikernel, and boot the unikernel as a demo
# microVM that prints its boot time. Where this host has no /dev/kvm, the demo runs inside an L1
# VM with real (nested) KVM under QEMU's emulator, which is slow: its times are not Ember's.
set -eu
cd "$(dirname "$0")/.."
[ "${1:-}" = "--no-install" ] || scripts/install-deps.sh
[ -d build ] || meson setup build --buildtype=release
ninja -C build
set -- ./build/ember run --kernel build/guest/unikernel/ember-unikernel.elf \
	--cmdline "check=hello,bootinfo" --boot-timer
if [ -e /dev/kvm ]; then
	exec "$@"
fi
echo "demo: no /dev/kvm on this host; booting inside an L1 VM with nested KVM (slow)" >&2
exec tests/l1/run --quiet --timeout 300 -- "$@"
