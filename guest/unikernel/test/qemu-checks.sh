#!/bin/bash
# Boots the test unikernel under QEMU's microvm machine (TCG is enough) and
# asserts on its console: through the PVH note directly, and through the ELF
# entry (Linux 64-bit boot protocol) by way of linux64-shim.
#   qemu-checks.sh UNIKERNEL_ELF SHIM_ELF
set -u
elf=$1
shim=$2
qemu=${QEMU:-qemu-system-x86_64}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

head -c 100000 /dev/urandom >"$tmp/initrd"
crc=$(python3 -c 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read()))' "$tmp/initrd")
entry=$(readelf -h "$elf" | awk '/Entry point/ { print $4 }')


machine=(-M microvm,x-option-roms=off,rtc=off,acpi=off -global virtio-mmio.force-legacy=false -m 256 -display none -monitor none -serial stdio
	 -no-reboot -device i8042 -device pvpanic -action panic=exit-failure)
pvh=(-kernel "$elf")
linux64=(-kernel "$shim" -device "loader,file=$elf" -device "loader,addr=0x6ff8,data=$entry,data-len=8")
extra="console=ttyS0 reboot=k panic=1 pci=off nomodules virtio_mmio.device=4K@0xc0001000:5"

# scenario NAME WANT_RC TIMEOUT EXPECTED_LINES(|-separated) -- QEMU ARGS...
scenario() {
	local name=$1 want_rc=$2 limit=$3 expect=$4
	shift 5
	local start end rc line ok=1
	start=$(date +%s%N)
	timeout "$limit" "$qemu" "${machine[@]}" "$@" <"${stdin_file:-/dev/null}" >"$tmp/$name.out" 2>&1
	rc=$?
	end=$(date +%s%N)
	if [ "$want_rc" != any ] && [ "$rc" != "$want_rc" ]; then
		ok=0
	fi
	IFS='|' read -ra lines <<<"$expect"
	for line in "${lines[@]}"; do
		grep -qF -- "$line" "$tmp/$name.out" || { ok=0; echo "  missing: $line"; }
	done
	if [ "$want_rc" = 0 ] && grep -q "FAIL" "$tmp/$name.out"; then
		ok=0
	fi
	if [ $ok = 1 ]; then
		printf 'ok   %-16s rc=%-3s %4d ms\n' "$name" "$rc" $(((end - start) / 1000000))
	else
		printf 'FAIL %-16s rc=%-3s %4d ms\n' "$name" "$rc" $(((end - start) / 1000000))
		sed 's/^/  | /' "$tmp/$name.out"
		failures=$((failures + 1))
	fi
}

all=hello,bootinfo,timer,smp,mem
scenario pvh-smp1 0 60 "CHECK hello PASS hello from pvh entry|proto=pvh|crc32=$crc|CHECK timer PASS|CHECK smp PASS cpus=1 apic_ids=0|CHECK mem PASS|ember-unikernel: done" -- \
	"${pvh[@]}" -cpu max -smp 1 -initrd "$tmp/initrd" -append "check=$all cpus=1 $extra"
scenario pvh-smp2 0 60 "CHECK hello PASS hello from pvh entry|crc32=$crc|CHECK timer PASS|CHECK smp PASS cpus=2 apic_ids=0,1|CHECK mem PASS|ember-unikernel: done" -- \
	"${pvh[@]}" -cpu max -smp 2 -initrd "$tmp/initrd" -append "check=$all cpus=2 $extra"
scenario pvh-2m-pages 0 60 "CHECK timer PASS|CHECK smp PASS cpus=2 apic_ids=0,1|CHECK mem PASS mib=64|ember-unikernel: done" -- \
	"${pvh[@]}" -cpu max,pdpe1gb=off -smp 2 -append "check=$all cpus=2 mem_mib=64"
scenario linux64-smp1 0 60 "CHECK hello PASS hello from linux64 entry|proto=linux64|crc32=$crc|CHECK timer PASS|CHECK smp PASS cpus=1|CHECK mem PASS|ember-unikernel: done" -- \
	"${linux64[@]}" -cpu max -smp 1 -initrd "$tmp/initrd" -append "check=$all $extra"
# No cpus=: the count comes from the MP table (QEMU's qboot writes one at 0x9fc10).
scenario linux64-mptable 0 60 "CHECK hello PASS hello from linux64 entry|mp_cpus=2|crc32=$crc|CHECK smp PASS cpus=2 apic_ids=0,1|ember-unikernel: done" -- \
	"${linux64[@]}" -cpu max,pdpe1gb=off -smp 2 -initrd "$tmp/initrd" -append "check=$all $extra"
scenario panic any 60 "CHECK panic FAIL requested" -- \
	"${pvh[@]}" -cpu max -append "check=hello,panic"
scenario unknown-check any 60 "CHECK nosuch FAIL unknown check" -- \
	"${pvh[@]}" -cpu max -append "check=nosuch"
# TCG reads zeros at 0xc0100000, so this ends in the exception path instead
# of KVM's emulation failure.
scenario exception any 60 "CHECK emufail FAIL exception vector=13" -- \
	"${pvh[@]}" -cpu max -append "check=emufail"
scenario triplefault 0 60 "triplefault: empty IDT" -- \
	"${pvh[@]}" -cpu max -smp 2 -d cpu_reset -D "$tmp/triplefault.log" -append "check=triplefault"
grep -q "Triple fault" "$tmp/triplefault.log" || { echo "FAIL triplefault: QEMU logged no triple fault"; failures=$((failures + 1)); }
printf 'ping-from-host\n' >"$tmp/echo.in"
stdin_file=$tmp/echo.in scenario echo 0 60 'CHECK echo PASS line="ping-from-host"|ember-unikernel: done' -- \
	"${pvh[@]}" -cpu max -append "check=echo"
scenario counter 124 2 "counter: addr=0x1ff000" -- \
	"${pvh[@]}" -cpu max -append "check=counter"
counts=$(sed -n 's/^counter: \([0-9][0-9]*\)\r*$/\1/p' "$tmp/counter.out")
if [ "$(echo "$counts" | wc -l)" -lt 3 ] || [ "$(echo "$counts" | sort -n | tr '\n' ' ')" != "$(echo "$counts" | tr '\n' ' ')" ]; then
	echo "FAIL counter: want 3 or more increasing counter lines, got: $counts"
	failures=$((failures + 1))
fi

# virtio-mmio devices: QEMU appends virtio_mmio.device= tokens for them
# (acpi=off), at 0xfeb00000 + n * 0x200 with their own IRQs; modern
# (version 2) only with force-legacy=false.
here=$(cd "$(dirname "$0")" && pwd)
py() { python3 -c "$@"; }
head -c $((8 << 20)) /dev/urandom >"$tmp/disk.img"
cp "$tmp/disk.img" "$tmp/disk.orig"
read_crc=$(py 'import sys, zlib; print("%08x" % zlib.crc32(open(sys.argv[1], "rb").read(64 * 512)))' "$tmp/disk.img")
blk=(-device virtio-blk-device,drive=d0,serial=ember-test-disk -drive "id=d0,file=$tmp/disk.img,format=raw,if=none")
scenario blk 0 60 "virtio: blk at 0xfeb0|CHECK blk PASS capacity=16384 read_crc32=$read_crc wrote=64 flushed=1 id=\"ember-test-disk\" ro=0|ember-unikernel: done" -- \
	"${pvh[@]}" -cpu max "${blk[@]}" -append "check=blk $extra"
# The pattern landed where asked: byte i of the region = i * 31 + seed.
check_disk() { # AT SECTORS SEED
	py 'import sys
d = open(sys.argv[1], "rb").read()
o = open(sys.argv[2], "rb").read()
at, n, seed = (int(x) for x in sys.argv[3:6])
want = bytes((i * 31 + seed) & 255 for i in range(n * 512))
ok = d[at * 512:(at + n) * 512] == want and d[:at * 512] == o[:at * 512] and d[(at + n) * 512:] == o[(at + n) * 512:]
sys.exit(0 if ok else 1)' "$tmp/disk.img" "$tmp/disk.orig" "$@" ||
		{ echo "FAIL blk: the disk does not hold the pattern at [$1, +$2) seed $3, or other sectors changed"; failures=$((failures + 1)); }
}
check_disk 64 64 1
cp "$tmp/disk.img" "$tmp/disk.orig"
# Interrupts instead of polling, no EVENT_IDX, a write split over two requests.
scenario blk-irq 0 60 "CHECK blk PASS capacity=16384 read_crc32=$read_crc wrote=300 flushed=1|blk: interrupts=|ember-unikernel: done" -- \
	"${pvh[@]}" -cpu max "${blk[@]}" -append "check=blk virtio_irq=1 virtio_event_idx=0 blk_write_at=1000 blk_write_sectors=300 blk_seed=9"
check_disk 1000 300 9
scenario blk-ro 0 60 "CHECK blk PASS capacity=16384 read_crc32=$read_crc id=\"\" ro=1 write_refused=1|ember-unikernel: done" -- \
	"${pvh[@]}" -cpu max -device virtio-blk-device,drive=d0 -drive "id=d0,file=$tmp/disk.img,format=raw,if=none,readonly=on" \
	-append "check=blk"
scenario blk-bench 0 60 "CHECK blk_bench PASS seq_read_mbs=|ember-unikernel: done" -- \
	"${pvh[@]}" -cpu max "${blk[@]}" -append "check=blk_bench blk_bench_mib=8"
grep -h '^CHECK blk_bench\|^blk_bench:' "$tmp/blk-bench.out" | sed 's/^/     /'
scenario blk-missing any 60 "virtio: nothing at 0xc0001000|CHECK blk FAIL no virtio blk device" -- \
	"${pvh[@]}" -cpu max -append "check=blk $extra"

# net: net-peer.py plays the LAN over QEMU's UDP socket backend.
net_scenario() { # NAME GUEST_ARGS PEER_ARGS...
	local name=$1 args=$2 p1=$((20000 + RANDOM % 20000)) want
	shift 2
	local p2=$((p1 + 1))
	python3 "$here/net-peer.py" $p1 $p2 "$@" >"$tmp/$name.peer" 2>&1 &
	local pp=$!
	scenario "$name" 0 120 "net: ready|CHECK net PASS|ember-unikernel: done" -- \
		"${pvh[@]}" -cpu max -device virtio-net-device,netdev=n0,mac=aa:fc:00:00:00:01 \
		-netdev socket,id=n0,udp=127.0.0.1:$p1,localaddr=127.0.0.1:$p2 -append "check=net net_secs=60 $args"
	wait $pp || { echo "FAIL $name: the peer saw wrong answers"; sed 's/^/  peer | /' "$tmp/$name.peer"; failures=$((failures + 1)); }
	want=$(sed -n 's/^peer: \(arp=.*\)$/mac=aa:fc:00:00:00:01 \1/p' "$tmp/$name.peer")
	grep -qF "CHECK net PASS $want" "$tmp/$name.out" ||
		{ echo "FAIL $name: guest counts differ from the peer's ($want)"; grep '^CHECK' "$tmp/$name.out"; failures=$((failures + 1)); }
}
net_scenario net ""
net_scenario net-irq "virtio_irq=1 virtio_event_idx=0 ip=10.0.2.99::10.0.2.2:255.255.255.0::eth0:off udp_port=5555" 10.0.2.99 5555
# Two devices, two tokens: each check finds its own.
scenario blk-and-net 0 60 "virtio: blk at|virtio: net at|CHECK blk PASS|CHECK net PASS mac=aa:fc:00:00:00:02 arp=0 icmp=0 udp=0|ember-unikernel: done" -- \
	"${pvh[@]}" -cpu max "${blk[@]}" -device virtio-net-device,netdev=n0,mac=aa:fc:00:00:00:02 -netdev user,id=n0 \
	-append "check=blk,net net_secs=1"

# vsock needs vhost-vsock (and KVM): test/vsock-checks.sh, run where they exist.
if [ -c /dev/vhost-vsock ] && [ -c /dev/kvm ]; then
	"$here/vsock-checks.sh" "$elf" || failures=$((failures + 1))
else
	echo "skip vsock           (no /dev/vhost-vsock or /dev/kvm here; run test/vsock-checks.sh in tests/l1/run)"
fi

[ $failures = 0 ] && echo "all unikernel QEMU scenarios passed"
exit $((failures > 0))
