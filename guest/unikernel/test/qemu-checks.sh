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


machine=(-M microvm,x-option-roms=off,rtc=off -m 256 -display none -monitor none -serial stdio
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

[ $failures = 0 ] && echo "all unikernel QEMU scenarios passed"
exit $((failures > 0))
