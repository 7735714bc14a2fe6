#!/bin/bash
# Builds Ember's Linux guest kernel (vmlinux + bzImage) from Debian's
# linux-source-6.1 package, with guest/linux/config and guest/linux/patches/*.
#
# Needs these Debian 12 packages (the script installs nothing itself):
#   linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev
# (build-essential brings gcc, make and binutils: strip, readelf; xz-utils,
#  patch, coreutils and util-linux's flock are part of a standard system.)
#
# Usage: build.sh [--out DIR] [--print-dir] [--verbose]
#   (no option)    build if needed; print the paths of vmlinux and bzImage
#   --out DIR      also copy vmlinux and bzImage into DIR
#   --print-dir    print the cache directory if it holds a complete build and
#                  exit 0; exit 1 otherwise (never builds)
#   --verbose      stream the kernel build output to stderr (default: a log
#                  file, whose tail is shown on failure)
#
# Results are cached in ${XDG_CACHE_HOME:-~/.cache}/ember/linux-<hash>/ where
# <hash> is the first 16 hex digits of the sha256 of: this script's
# BUILD_RECIPE_VERSION, the linux-source-6.1 package version, the config
# fragment and every patch (name and content). Environment overrides:
#   EMBER_CACHE_DIR        cache root (default ${XDG_CACHE_HOME:-~/.cache}/ember)
#   JOBS                   parallel make jobs (default: nproc)
# Stdout carries only the result paths; progress and errors go to stderr.
set -euo pipefail

# Bump when the recipe below changes in a way that changes the output.
BUILD_RECIPE_VERSION="ember-linux-build-1"
PKG=linux-source-6.1

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment="$here/config"
patchdir="$here/patches"
tarball=/usr/src/$PKG.tar.xz
cache_root=${EMBER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ember}

out_dir=""
print_dir=0
verbose=0
while [ $# -gt 0 ]; do
    case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out_dir=$2; shift 2 ;;
    --out=*) out_dir=${1#--out=}; shift ;;
    --print-dir) print_dir=1; shift ;;
    --verbose|-v) verbose=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done

[ -f "$fragment" ] || die "config fragment $fragment is missing"
command -v dpkg-query >/dev/null || die "dpkg-query not found (this script expects Debian's $PKG package)"
pkg_version=$(dpkg-query -W -f='${Version}' "$PKG" 2>/dev/null) ||
    die "package $PKG is not installed (apt-get install $PKG)"
[ -n "$pkg_version" ] || die "package $PKG is not installed (apt-get install $PKG)"

shopt -s nullglob
patches=("$patchdir"/*.patch)
shopt -u nullglob

# Cache key. Patch names are part of it because they fix the order of application.
hash=$(
    {
        printf 'recipe %s\n' "$BUILD_RECIPE_VERSION"
        printf 'package %s %s\n' "$PKG" "$pkg_version"
        printf 'config\n'; cat "$fragment"
        for p in ${patches[@]+"${patches[@]}"}; do
            printf 'patch %s\n' "$(basename "$p")"; cat "$p"
        done
    } | sha256sum | cut -c1-16
)
cache_dir="$cache_root/linux-$hash"

complete() { [ -s "$cache_dir/vmlinux" ] && [ -s "$cache_dir/bzImage" ]; }

finish() {
    if [ -n "$out_dir" ]; then
        mkdir -p "$out_dir" || die "cannot create $out_dir"
        for f in vmlinux bzImage; do
            cp -f "$cache_dir/$f" "$out_dir/.$f.tmp.$$" && mv -f "$out_dir/.$f.tmp.$$" "$out_dir/$f" ||
                die "cannot copy $f into $out_dir"
        done
        log "copied vmlinux and bzImage into $out_dir"
    fi
    echo "$cache_dir/vmlinux"
    echo "$cache_dir/bzImage"
    exit 0
}

if [ "$print_dir" = 1 ]; then
    if complete; then echo "$cache_dir"; exit 0; fi
    exit 1
fi
complete && finish

# ---- Build ------------------------------------------------------------------
[ -r "$tarball" ] || die "kernel source $tarball not found (apt-get install $PKG)"
missing=()
for t in make gcc ld flex bison bc xz patch strip readelf perl flock; do
    command -v "$t" >/dev/null || missing+=("$t")
done
[ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (need: $PKG build-essential flex bison bc libelf-dev libssl-dev)"
echo '#include <gelf.h>' | gcc -E -x c - >/dev/null 2>&1 || die "libelf headers missing (apt-get install libelf-dev)"
echo '#include <openssl/opensslv.h>' | gcc -E -x c - >/dev/null 2>&1 || die "openssl headers missing (apt-get install libssl-dev)"

mkdir -p "$cache_root" || die "cannot create cache root $cache_root"
# One builder per hash; a second caller waits and then finds the result.
exec 9>"$cache_root/linux-$hash.lock"
flock 9 || die "cannot lock $cache_root/linux-$hash.lock"
complete && finish

tmp=$(mktemp -d "$cache_root/.linux-$hash.tmp.XXXXXX") || die "cannot create a temporary directory in $cache_root"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

src="$tmp/src"
res="$tmp/result"
buildlog="$tmp/build.log"
mkdir -p "$src" "$res"

fail_with_log() {
    local keep="$cache_root/linux-$hash.failed.log"
    cp -f "$buildlog" "$keep" 2>/dev/null || true
    echo "----- last lines of the build log (full log: $keep) -----" >&2
    tail -n 60 "$buildlog" >&2 || true
    die "$*"
}

run() {
    # Runs a build step, its output to the log (and stderr with --verbose).
    if [ "$verbose" = 1 ]; then
        "$@" 2>&1 | tee -a "$buildlog" >&2
        return "${PIPESTATUS[0]}"
    else
        "$@" >>"$buildlog" 2>&1
    fi
}

start=$(date +%s)
log "building Linux ($PKG $pkg_version) into $cache_dir"
log "extracting $tarball"
tar -xJf "$tarball" -C "$src" --strip-components=1 || die "cannot extract $tarball"
[ -f "$src/Makefile" ] && [ -d "$src/arch/x86" ] || die "$tarball does not look like a Linux source tree"

for p in ${patches[@]+"${patches[@]}"}; do
    log "applying $(basename "$p")"
    run patch -p1 --forward --batch -d "$src" -i "$p" || fail_with_log "patch $(basename "$p") does not apply"
done

kmake=(make -C "$src" ARCH=x86_64 LOCALVERSION=-ember
       KBUILD_BUILD_USER=ember KBUILD_BUILD_HOST=ember
       "KBUILD_BUILD_TIMESTAMP=$BUILD_RECIPE_VERSION")

log "configuring: tinyconfig + $(basename "$fragment")"
run "${kmake[@]}" tinyconfig || fail_with_log "make tinyconfig failed"
(cd "$src" && run scripts/kconfig/merge_config.sh -m .config "$fragment") ||
    fail_with_log "merge_config.sh failed"
run "${kmake[@]}" olddefconfig || fail_with_log "make olddefconfig failed"

# Every line of the fragment must have survived olddefconfig.
lost=()
while IFS= read -r line; do
    case "$line" in
    CONFIG_*=*)
        grep -qxF -- "$line" "$src/.config" || lost+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$src/.config" || echo absent))")
        ;;
    "# CONFIG_"*" is not set")
        sym=${line#"# "}; sym=${sym%" is not set"}
        if grep -q "^$sym=" "$src/.config"; then lost+=("$line (got: $(grep "^$sym=" "$src/.config"))"); fi
        ;;
    esac
done <"$fragment"
if [ ${#lost[@]} -gt 0 ]; then
    cp -f "$src/.config" "$cache_root/linux-$hash.failed.config" || true
    printf '  %s\n' "${lost[@]}" >&2
    die "${#lost[@]} option(s) of $fragment did not survive olddefconfig (final config: $cache_root/linux-$hash.failed.config)"
fi

jobs=${JOBS:-$(nproc)}
log "compiling with make -j$jobs vmlinux bzImage (log: $buildlog)"
run "${kmake[@]}" -j"$jobs" vmlinux bzImage || fail_with_log "kernel build failed"

# Strip debug sections only: the PVH entry note (Xen ELF note 18) must stay.
strip --strip-debug -o "$res/vmlinux" "$src/vmlinux" || die "strip failed"
# binutils 2.40 prints it as "Xen ... Unknown note type: (0x00000012)".
readelf -n "$res/vmlinux" 2>/dev/null | grep -Eq '^ *Xen .*(\(0x00000012\)|PHYS32_ENTRY)' ||
    die "stripped vmlinux lost its PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY; is CONFIG_PVH set?)"
cp "$src/arch/x86/boot/bzImage" "$res/bzImage" || die "cannot copy bzImage"
cp "$src/.config" "$res/config"
cp "$src/System.map" "$res/System.map"
printf '%s\n%s\n' "$PKG $pkg_version" "$BUILD_RECIPE_VERSION" >"$res/VERSION"

# Publish atomically: the directory appears complete or not at all.
rm -rf "$cache_dir"
mv -T "$res" "$cache_dir" || die "cannot move the result to $cache_dir"
rm -rf "$src"
log "done in $(($(date +%s) - start)) s"
finish
