#!/bin/bash
# Self-test of the L1 harness (tests/l1/run).  Builds the two smoke programs
# on the host, then checks through tests/l1/run that:
#   - CMD's exit status comes back (exit 7 -> 7, SIGKILL -> 137),
#   - /dev/kvm runs a real guest (kvm_smoke: KVM_EXIT_IO 'K', KVM_EXIT_HLT),
#   - an -fsanitize=address,undefined binary runs, and ASan catches a bug,
#   - ip netns / ip tuntap work,
#   - stdout and stderr come back separately and byte-exact (no \r),
#   - files written in a --rw share come back; --timeout gives 124.
# Usage: tests/l1/selftest/run.sh   (exit 0 = all passed)

set -u
here=$(cd "$(dirname "$0")" && pwd)
l1=$here/../run
w=$(mktemp -d "${TMPDIR:-/tmp}/l1-selftest.XXXXXX") || exit 1
trap 'rm -rf "$w"' EXIT
fails=0
ok() { echo "PASS: $*"; }
bad() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

cc -O2 -Wall -Wextra -o "$w/kvm_smoke" "$here/kvm_smoke.c" || exit 1
cc -g -O1 -fsanitize=address,undefined -o "$w/asan_smoke" "$here/asan_smoke.c" || exit 1
head -c 1000000 /dev/urandom >"$w/random.bin"
seq 1 20000 >"$w/seq.txt"

# One boot for most checks; the script's own exit status is 42.
cat >"$w/inside.sh" <<'EOF'
w=$1
set -x
ls -l /dev/kvm /dev/net/tun >&2
"$w/kvm_smoke" >"$w/kvm.out" 2>&1; echo "kvm_smoke rc=$?" >>"$w/kvm.out"
"$w/asan_smoke" >"$w/asan.out" 2>&1; echo "asan_smoke rc=$?" >>"$w/asan.out"
"$w/asan_smoke" overflow >"$w/asan-bug.out" 2>&1; echo "rc=$?" >>"$w/asan-bug.out"
{ ip netns add x && ip tuntap add dev tap0 mode tap && ip link show tap0 && echo NET-OK; } >"$w/net.out" 2>&1
set +x
cat "$w/random.bin"
cat "$w/seq.txt" >&2
echo from-inside >"$w/written"
exit 42
EOF
"$l1" --quiet --rw "$w" -- sh "$w/inside.sh" "$w" >"$w/stdout" 2>"$w/stderr"
rc=$?
[ $rc = 42 ] && ok "exit status 42" || bad "exit status $rc, want 42"
grep -q 'KVM_EXIT_IO: out port 0x3f8 size 1 count 1 data .K.' "$w/kvm.out" &&
	grep -q 'KVM_EXIT_HLT' "$w/kvm.out" && grep -q 'kvm_smoke rc=0' "$w/kvm.out" &&
	ok "kvm_smoke: $(tr '\n' ' ' <"$w/kvm.out")" || bad "kvm_smoke: $(cat "$w/kvm.out" 2>&1)"
grep -q 'asan_smoke rc=0' "$w/asan.out" && ok "ASan+UBSan binary runs" || bad "asan: $(cat "$w/asan.out" 2>&1)"
grep -q 'heap-buffer-overflow' "$w/asan-bug.out" && ! grep -q 'rc=0' "$w/asan-bug.out" &&
	ok "ASan catches a heap overflow inside L1" || bad "asan overflow: $(cat "$w/asan-bug.out" 2>&1)"
grep -q NET-OK "$w/net.out" && ok "ip netns add / ip tuntap add" || bad "net: $(cat "$w/net.out" 2>&1)"
cmp -s "$w/stdout" "$w/random.bin" && ok "stdout byte-exact (1 MB random)" || bad "stdout differs"
grep -v '^+' "$w/stderr" | grep -v '^crw' | cmp -s - "$w/seq.txt" &&
	ok "stderr separate and exact" || bad "stderr differs: $(head -5 "$w/stderr")"
grep -q "$(printf '\r')" "$w/stderr" && bad "\\r in stderr" || ok "no \\r added"
[ "$(cat "$w/written" 2>/dev/null)" = from-inside ] && ok "rw share write came back" || bad "rw share"

"$l1" --quiet -- sh -c 'kill -9 $$'
rc=$?
[ $rc = 137 ] && ok "SIGKILL -> 137" || bad "SIGKILL gave $rc"
"$l1" --quiet --timeout 5 -- sleep 600 2>/dev/null
rc=$?
[ $rc = 124 ] && ok "--timeout -> 124" || bad "--timeout gave $rc"

[ $fails = 0 ] && echo "l1 selftest: all passed" || echo "l1 selftest: $fails failed"
[ $fails = 0 ]
