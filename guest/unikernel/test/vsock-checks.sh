#!/bin/bash
# The unikernel's vsock checks against QEMU's vhost-vsock-device, with
# vsock-peer.py as the host side over AF_VSOCK. Needs /dev/kvm and
# /dev/vhost-vsock (or the vhost_vsock module: pass its directory as
# MODDIR to insmod it and its dependencies). Runs inside tests/l1/run:
#   tests/l1/run -- guest/unikernel/test/vsock-checks.sh UNIKERNEL_ELF [MODDIR]
set -u
elf=$1
moddir=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
qemu=${QEMU:-qemu-system-x86_64}
peer=$here/vsock-peer.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

if [ ! -c /dev/vhost-vsock ]; then
	modprobe vhost_vsock 2>/dev/null
	if [ ! -c /dev/vhost-vsock ] && [ -n "$moddir" ]; then
		for m in net/vmw_vsock/vsock.ko drivers/vhost/vhost_iotlb.ko drivers/vhost/vhost.ko \
			net/vmw_vsock/vmw_vsock_virtio_transport_common.ko drivers/vhost/vhost_vsock.ko; do
			insmod "$moddir/kernel/$m" 2>/dev/null
		done
	fi
fi
if [ ! -c /dev/vhost-vsock ] || [ ! -c /dev/kvm ]; then
	echo "SKIP vsock checks: need /dev/vhost-vsock and /dev/kvm"
	exit 77
fi

cid=3
machine=(-M microvm,x-option-roms=off,rtc=off,acpi=off -global virtio-mmio.force-legacy=false
	 -accel kvm -cpu host -m 256 -display none -monitor none -serial stdio -no-reboot
	 -device i8042 -device pvpanic -kernel "$elf" -device "vhost-vsock-device,guest-cid=$cid")

# scenario NAME "GUEST CMDLINE" PEER_WAIT_FOR PEER ARGS...: the peer starts
# first; the guest starts once the peer's output has PEER_WAIT_FOR (or at once
# when empty). The guest's CHECK line must equal the peer's summary, prefixed.
scenario() {
	local name=$1 append=$2 wait_for=$3
	shift 3
	case " ${ONLY:-$name} " in *" $name "*) ;; *) return ;; esac
	local t0=$(date +%s)
	python3 "$peer" "$@" >"$tmp/$name.peer" 2>&1 &
	local pp=$! i
	if [ -n "$wait_for" ]; then
		for i in $(seq 300); do
			grep -q "$wait_for" "$tmp/$name.peer" && break
			sleep 0.2
		done
	fi
	timeout 300 "$qemu" "${machine[@]}" -append "$append" >"$tmp/$name.out" 2>&1
	wait $pp
	local prc=$?
	local want got
	want=$(sed -n 's/^peer: \(conns=.*\|bytes=.*\)$/\1/p' "$tmp/$name.peer")
	got=$(sed -n "s/^CHECK [a-z_]* PASS \(.*\)\r*$/\1/p" "$tmp/$name.out")
	if [ $prc = 0 ] && [ -n "$want" ] && [ "$want" = "$got" ] && grep -q "ember-unikernel: done" "$tmp/$name.out"; then
		printf 'ok   %-22s %3ss %s\n' "$name" $(($(date +%s) - t0)) "$(grep '^CHECK' "$tmp/$name.out")"
		grep -E '^vsock: (sent|accepted)' "$tmp/$name.out" | sed 's/^/     /'
		grep -E '^peer: port' "$tmp/$name.peer" | sed 's/^/     /'
	else
		printf 'FAIL %-22s %3ss (peer rc=%s, peer says "%s", guest says "%s")\n' "$name" $(($(date +%s) - t0)) "$prc" "$want" "$got"
		sed 's/^/  guest | /' "$tmp/$name.out"
		sed 's/^/  peer  | /' "$tmp/$name.peer"
		failures=$((failures + 1))
	fi
}

mib=$((1 << 20))
scenario client-echo "check=vsock_client vsock_bytes=$((16 * mib))" listening listen 1234 $((16 * mib))
scenario client-sink "check=vsock_client vsock_bytes=$((4 * mib)) vsock_sink=1 vsock_port=1240" listening listen 1240 $((4 * mib)) sink
scenario client-irq "check=vsock_client vsock_bytes=$((2 * mib)) virtio_irq=1 virtio_event_idx=0" listening listen 1234 $((2 * mib))
scenario server-8x1m "check=vsock_server vsock_expect=8 vsock_secs=120" "" connect $cid 1234 8 $mib
scenario server-64x64k-irq "check=vsock_server vsock_expect=64 vsock_secs=120 virtio_irq=1" "" connect $cid 1234 64 65536
scenario server-halfclose "check=vsock_server vsock_expect=3 vsock_secs=120" "" connect $cid 1234 3 200000 halfclose
scenario server-4-noevidx "check=vsock_server vsock_expect=4 vsock_secs=120 virtio_event_idx=0 vsock_port=999" "" connect $cid 999 4 300000

[ $failures = 0 ] && echo "all unikernel vsock scenarios passed"
exit $((failures > 0))
