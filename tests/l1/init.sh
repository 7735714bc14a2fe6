#!/bin/busybox sh
# Stage-1 init of the L1 VM (see tests/l1/README.md).  Runs as PID 1 from the
# initramfs built by tests/l1/run, under busybox-static.  It:
#   1. loads the modules listed in /modules.boot.<bus> (virtio, 9p) and, in
#      the background, those in /modules.extra (kvm_amd, tun, ext4, ...),
#   2. mounts the host root (9p tag "hostroot", read-only) on /newroot, puts
#      fresh /proc /sys /dev /tmp /run on top, then the read-write shares,
#   3. runs /run/ember-l1/cmd.sh (written by the host) chrooted in /newroot,
#      with stdout/stderr on the virtio-serial ports "l1.stdout"/"l1.stderr",
#   4. writes the exit status to the run directory and powers off.
# Parameters come from the run directory (9p tag "l1run"): spec.sh is sourced
# here, cmd.sh runs inside the chroot.
# Every process costs tens of milliseconds under TCG: keep them few.

export PATH=/bin

say() { echo "l1: $*" >/dev/console; }
debug=0
dbg() { [ $debug = 0 ] || { read -r up _ </proc/uptime; say "[$up] $*"; }; }
die() {
	say "FATAL: $*"
	echo "$*" >/l1run/error 2>/dev/null
	sync
	reboot -f
	while :; do sleep 1; done
}
# Lines of "file.ko [params]", in dependency order (made on the host with
# modprobe --show-depends).
load() {
	while read -r ko args; do
		# shellcheck disable=SC2086
		insmod "/mods/$ko" $args || say "insmod $ko failed"
		dbg "insmod $ko"
	done <"$1"
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
bus=mmio
for a in $(cat /proc/cmdline); do
	case "$a" in
	l1.debug) debug=1 ;;
	l1.bus=*) bus=${a#l1.bus=} ;;
	esac
done

load /modules.boot.$bus
# The other modules (kvm_amd, tun, ext4, ...) load while the shares mount.
load /modules.extra &
extra=$!

msize=262144
o=trans=virtio,version=9p2000.L,msize=$msize
mount -t 9p -o $o,cache=none l1run /l1run ||
	die "cannot mount the run directory (9p tag l1run)"
[ -r /l1run/spec.sh ] || die "no /l1run/spec.sh"
. /l1run/spec.sh

R=/newroot
mount -t 9p -o $o,cache=loose,ro hostroot $R ||
	die "cannot mount the host root (9p tag hostroot)"
mount -t proc proc $R/proc || die "mount /proc"
mount -t sysfs sysfs $R/sys || die "mount /sys"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
mount -t devtmpfs devtmpfs $R/dev || die "mount /dev"
mkdir -p $R/dev/pts $R/dev/shm $R/dev/net
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || die "mount /tmp"
mount -t tmpfs -o mode=755 tmpfs $R/run || die "mount /run"
mkdir -p $R/run/ember-l1
mount --bind /l1run $R/run/ember-l1 || die "bind the run directory"
dbg "root mounted"

# The Debian kernel's own modules (extracted in the host's cache, visible
# through the root share): the kernel's module autoloading (veth, bridge,
# fs-ext4, ...) runs the chroot's kmod modprobe on them; inside, use
# `modprobe -d "$EMBER_L1_MODROOT" NAME`, or plain modprobe where the host
# has a /lib/modules to mount them on.
if [ -n "$L1_MODROOT" ] && [ -d "$R$L1_MODROOT/lib/modules/$L1_KVER" ]; then
	echo /bin/l1-modprobe >/proc/sys/kernel/modprobe
	if [ -d $R/usr/lib/modules ]; then
		mount -t tmpfs -o mode=755 tmpfs $R/usr/lib/modules &&
			mkdir -p "$R/usr/lib/modules/$L1_KVER" &&
			mount --bind "$R$L1_MODROOT/lib/modules/$L1_KVER" "$R/usr/lib/modules/$L1_KVER"
	fi
fi

# Read-write shares: L1_RW_<i> is the absolute path, tag "rw<i>".
i=0
while :; do
	eval "p=\${L1_RW_$i-}"
	[ -n "$p" ] || break
	[ -d "$R$p" ] || mkdir -p "$R$p" 2>/dev/null
	mount -t 9p -o $o,cache=mmap "rw$i" "$R$p" ||
		die "cannot mount read-write share $p (9p tag rw$i)"
	i=$((i + 1))
done

hostname "${L1_HOSTNAME:-ember-l1}"
ip link set lo up

wait $extra

# virtio-serial ports, found by name (named asynchronously after the
# virtio_console probe: give it a moment).
out= err= n=0
while :; do
	for p in /sys/class/virtio-ports/*; do
		read -r name <"$p/name" 2>/dev/null || continue
		case "$name" in
		l1.stdout) out=/dev/${p##*/} ;;
		l1.stderr) err=/dev/${p##*/} ;;
		esac
	done
	[ -n "$out" ] && [ -n "$err" ] && [ -c "$out" ] && [ -c "$err" ] && break
	n=$((n + 1))
	if [ $n -ge 200 ]; then
		say "warning: virtio-serial ports not found, using the console"
		out=/dev/console err=/dev/console
		break
	fi
	usleep 20000
done
[ -e $R/dev/net/tun ] || mknod -m 666 $R/dev/net/tun c 10 200
chmod 666 $R/dev/net/tun $R/dev/kvm

read -r up _ </proc/uptime
say "boot done in ${up}s, running the command"
echo "$up" >/l1run/booted

# (The subshell's 2>/dev/null takes the shell's own "Killed" notice when CMD
# dies by a signal, which would otherwise land in CMD's stderr.)
(env -i chroot $R /bin/sh /run/ember-l1/cmd.sh </dev/null >"$out" 2>"$err") 2>/dev/null
rc=$?
dbg "command exited with status $rc"
sync
echo "$rc" >/l1run/status.tmp && mv /l1run/status.tmp /l1run/status
dbg "status written, rebooting"
reboot -f
while :; do sleep 1; done
