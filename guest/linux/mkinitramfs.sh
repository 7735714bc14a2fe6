#!/bin/bash
# Builds guest/linux/init.c statically and packs it as a gzip'd newc cpio
# initramfs:
#   /init (0755), /dev, /dev/console (c 5,1), /dev/mem (c 1,1),
#   /dev/null (c 1,3), /proc, /sys
# The archive is written by this script itself (newc headers from printf), so
# it needs neither root (device nodes are only archive entries) nor the cpio
# tool, and it is byte-for-byte reproducible: uid/gid 0, mtime 0 (or
# $SOURCE_DATE_EPOCH), gzip -n.
#
# Usage: mkinitramfs.sh OUT [--init PATH]
#   OUT          the initramfs to write (e.g. initramfs.cpio.gz)
#   --init PATH  also keep the static init binary at PATH
# Environment: CC (default cc). Needs: a C compiler with static libc
# (build-essential), gzip.
set -euo pipefail

die() { echo "mkinitramfs.sh: error: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=""
keep_init=""
while [ $# -gt 0 ]; do
    case "$1" in
    --init) [ $# -ge 2 ] || die "--init needs a path"; keep_init=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 0 ;;
    -*) die "unknown option: $1" ;;
    *) [ -z "$out" ] || die "only one OUT allowed"; out=$1; shift ;;
    esac
done
[ -n "$out" ] || die "usage: mkinitramfs.sh OUT [--init PATH]"
command -v gzip >/dev/null || die "gzip not found"
cc=${CC:-cc}
command -v "$cc" >/dev/null || die "C compiler '$cc' not found (apt-get install build-essential)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-initramfs.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT

"$cc" -static -Os -s -Wall -Wextra -o "$tmp/init" "$here/init.c" ||
    die "building init failed (is a static libc installed? libc6-dev provides it)"
[ -n "$keep_init" ] && { mkdir -p "$(dirname "$keep_init")" && cp -f "$tmp/init" "$keep_init" || die "cannot copy init to $keep_init"; }

mtime=${SOURCE_DATE_EPOCH:-0}
ino=0
cpio="$tmp/initramfs.cpio"
: >"$cpio"

# entry NAME MODE(octal) RDEV_MAJOR RDEV_MINOR [FILE]
entry() {
    local name=$1 mode=$((8#$2)) rmaj=$3 rmin=$4 file=${5:-} size=0 nlink=1 namesize pad
    [ -n "$file" ] && size=$(stat -c %s "$file")
    [ $((mode & 8#170000)) -eq $((8#040000)) ] && nlink=2
    ino=$((ino + 1))
    namesize=$((${#name} + 1))
    {
        printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
            "$ino" "$mode" 0 0 "$nlink" "$mtime" "$size" 0 0 "$rmaj" "$rmin" "$namesize" 0
        printf '%s\0' "$name"
        # header (110 bytes) + name, padded to a multiple of 4
        pad=$(((4 - (110 + namesize) % 4) % 4))
        [ $pad -gt 0 ] && head -c "$pad" /dev/zero
        if [ -n "$file" ]; then
            cat "$file"
            pad=$(((4 - size % 4) % 4))
            [ $pad -gt 0 ] && head -c "$pad" /dev/zero
        fi
        true
    } >>"$cpio"
}

entry dev 040755 0 0
entry dev/console 020600 5 1
entry dev/mem 020600 1 1
entry dev/null 020666 1 3
entry proc 040755 0 0
entry sys 040755 0 0
entry init 0100755 0 0 "$tmp/init"
ino=0
entry TRAILER!!! 0 0 0

gzip -9 -n -c "$cpio" >"$tmp/out.gz" || die "gzip failed"
mkdir -p "$(dirname "$out")"
mv -f "$tmp/out.gz" "$out" || die "cannot write $out"
echo "$out"
