#!/usr/bin/env bash
# Install what highmem-harness needs, and nothing when it is all there already.
#   - Debian packages for the host (QEMU, gdb, kernel build tools, the 6.12 kernel source)
#   - Debian i386 packages for the guest, downloaded (not installed) into the cache
#   - the project venv (.venv) with the Python dependencies
# Idempotent: on a ready machine it only runs dpkg-query and a pip-free stamp check.
# Arguments: extra host packages a kernel matrix asks for (`make deps MATRIX=FILE` passes
# the ones `highmem matrix --packages FILE` lists, e.g. linux-source-6.1); none by default.
# HIGHMEM_KERNEL=newest (or a version, e.g. 7.2; `make deps KERNEL=newest`): also the newest
# (or that) linux-source-X.Y of Debian's unstable suite, read through a private source list
# (the host's apt configuration untouched), downloaded and unpacked, not installed: its
# tarball lands in $cache/kernels/linux-source-X.Y.tar.xz, where `--source
# linux-source-X.Y.tar.xz` finds it (harness/stages/source.py); with `newest`, also the link
# linux-source-newest.tar.xz to it (what `make mainline` runs).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${HIGHMEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/highmem-harness}
debs=$cache/debs
venv=$here/.venv

# linux-source-X.Y from 6.15 on (a matrix's 7.2 cells) is only in Debian unstable: fetched
# into the cache like HIGHMEM_KERNEL=X.Y (section 3), not installed
extra_pkgs=() unstable_kernels=()
for p in "$@"; do
    if [[ $p =~ ^linux-source-([0-9]+)\.([0-9]+)$ ]] \
        && { [ "${BASH_REMATCH[1]}" -gt 6 ] || { [ "${BASH_REMATCH[1]}" -eq 6 ] \
             && [ "${BASH_REMATCH[2]}" -ge 15 ]; }; }; then
        unstable_kernels+=("${BASH_REMATCH[1]}.${BASH_REMATCH[2]}")
    else
        extra_pkgs+=("$p")
    fi
done
host_pkgs=(qemu-system-x86 gdb linux-source-6.12 make gcc libc6-dev flex bison bc
           libelf-dev libssl-dev cpio ccache kmod xz-utils dwarves rsync python3-venv
           util-linux ${extra_pkgs[@]+"${extra_pkgs[@]}"})
guest_pkgs=(busybox-static:i386 dropbear-bin:i386 libc6:i386 libcrypt1:i386
            libtomcrypt1:i386 libtommath1:i386 libgmp10:i386 zlib1g:i386 libgcc-s1:i386)

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'error: %s\nfix: %s\n' "$1" "$2" >&2; exit 1; }

missing_host_pkgs() {
    local p
    for p in "${host_pkgs[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || printf '%s\n' "$p"
    done
}

# apt with a private list of indexes: if the host's own `apt-get update` fails on one index
# (seen here: bookworm-security's i386 index "File has unexpected size", which makes apt
# drop the whole security suite, and linux-source-6.12 lives there), we read the same
# mirrors ourselves with i386 only where the guest packages come from.
private_apt_opts() {
    local dir=$cache/apt
    mkdir -p "$dir/lists/partial"
    local codename
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    cat > "$dir/sources.list" <<SRC
deb [arch=amd64,i386] http://deb.debian.org/debian $codename main
deb [arch=amd64,i386] http://deb.debian.org/debian $codename-updates main
deb [arch=amd64] http://deb.debian.org/debian-security $codename-security main
SRC
    printf '%s\n' -o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null" \
        -o "Dir::State::Lists=$dir/lists" -o "APT::Sandbox::User=root"
}

apt_opts=()
apt_ready=0
prepare_apt() {
    [ "$apt_ready" = 1 ] && return
    [ "$(id -u)" = 0 ] || die "installing Debian packages needs root (missing: $*)" \
        "run 'sudo make deps' once, or install them: sudo apt-get install $*"
    if ! dpkg --print-foreign-architectures | grep -qx i386; then
        say "adding the i386 architecture (dpkg --add-architecture i386)"
        dpkg --add-architecture i386
    fi
    say "apt-get update"
    if apt-get update -qq >/dev/null 2>&1 && apt-cache show linux-source-6.12 >/dev/null 2>&1 \
        && apt-cache show busybox-static:i386 >/dev/null 2>&1; then
        apt_opts=()
    else
        say "the host's apt indexes are incomplete; reading deb.debian.org with a private list"
        mapfile -t apt_opts < <(private_apt_opts)
        apt-get "${apt_opts[@]}" update -qq >/dev/null \
            || die "apt-get update failed even with a private source list" \
                   "check the network to deb.debian.org, then run 'make deps' again"
    fi
    apt_ready=1
}

# 1. Host packages
mapfile -t need < <(missing_host_pkgs)
if [ "${#need[@]}" -gt 0 ]; then
    prepare_apt "${need[@]}"
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null \
        || die "apt-get install ${need[*]} failed" "run it by hand to see apt's message"
fi

# 2. Guest packages: downloaded .debs, unpacked later by the image step (images/)
mkdir -p "$debs"
for p in "${guest_pkgs[@]}"; do
    name=${p%%:*}
    if ! compgen -G "$debs/${name}_*_i386.deb" >/dev/null; then
        prepare_apt "$p"
        say "downloading $p"
        (cd "$debs" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root download -qq "$p" >/dev/null) \
            || die "apt-get download $p failed" "run 'apt-get download $p' by hand to see why"
    fi
done

# 3. A mainline kernel source from Debian unstable (only when asked: HIGHMEM_KERNEL)
unstable_apt_opts() {
    local dir=$cache/apt-unstable
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    printf 'deb [arch=amd64] http://deb.debian.org/debian unstable main\n' > "$dir/sources.list"
    printf '%s\n' -o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null" \
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache::archives=$dir/archives" \
        -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=/dev/null" \
        -o "APT::Sandbox::User=root"
}

fetch_mainline_source() {
    local want=$1 opts pkg tarball
    local kernels=$cache/kernels
    if [[ $want =~ ^[0-9]+\.[0-9]+$ ]] && [ -s "$kernels/linux-source-$want.tar.xz" ]; then
        return  # fetched before: no index to read
    fi
    mapfile -t opts < <(unstable_apt_opts)
    say "reading Debian unstable's index (private source list in $cache/apt-unstable)"
    apt-get "${opts[@]}" update -qq >/dev/null 2>&1 \
        || die "apt-get update of Debian unstable failed" \
               "check the network to deb.debian.org, then run 'make deps KERNEL=$want' again"
    if [ "$want" = newest ]; then
        pkg=$(apt-cache "${opts[@]}" pkgnames linux-source- 2>/dev/null \
              | grep -E '^linux-source-[0-9]+\.[0-9]+$' | sort -V | tail -n1)
        [ -n "$pkg" ] || die "Debian unstable lists no linux-source-X.Y package" \
                             "give a version: make deps KERNEL=7.2"
    else
        [[ $want =~ ^[0-9]+\.[0-9]+$ ]] || die "HIGHMEM_KERNEL=$want is neither 'newest' nor X.Y" \
                                             "give e.g. make deps KERNEL=newest or KERNEL=7.2"
        pkg=linux-source-$want
    fi
    tarball=$kernels/$pkg.tar.xz
    if [ "$want" = newest ]; then  # --source linux-source-newest.tar.xz names it
        mkdir -p "$kernels" && ln -sfn "$pkg.tar.xz" "$kernels/linux-source-newest.tar.xz"
    fi
    if [ -s "$tarball" ]; then
        say "$pkg: $tarball is there"
        return
    fi
    local part
    mkdir -p "$kernels"
    part=$(mktemp -d "$kernels/.$pkg.XXXXXX")
    trap 'rm -rf "$part"' EXIT
    say "downloading $pkg from Debian unstable (about 150 MB)"
    (cd "$part" && timeout 1800 apt-get "${opts[@]}" download -qq "$pkg" >/dev/null 2>&1) \
        || die "apt-get download $pkg from Debian unstable failed" \
               "check that Debian unstable has $pkg (apt-cache policy), or give KERNEL=X.Y"
    dpkg-deb -x "$part"/"$pkg"_*.deb "$part/x" \
        || die "cannot unpack the $pkg .deb" "remove $part and run 'make deps' again"
    [ -s "$part/x/usr/src/$pkg.tar.xz" ] \
        || die "the $pkg .deb holds no usr/src/$pkg.tar.xz" "report this; pass --source DIR instead"
    mv "$part/x/usr/src/$pkg.tar.xz" "$tarball.part" && mv "$tarball.part" "$tarball"
    rm -rf "$part"
    trap - EXIT
    say "$pkg: $tarball (highmem run --source $pkg.tar.xz)"
}
for k in ${HIGHMEM_KERNEL:-} ${unstable_kernels[@]+"${unstable_kernels[@]}"}; do
    fetch_mainline_source "$k"
done

# 4. Python venv
stamp=$venv/.deps-stamp
want=$(sha256sum "$here/pyproject.toml" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "creating the venv in .venv (pygdbmi, paramiko, pexpect, pyyaml, pytest, qemu.qmp, ruff)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$here[dev]" \
        2> >(grep -v 'is ignored: it is neither' >&2) \
        || die "pip install into .venv failed" "run '$venv/bin/pip install -e .' to see pip's message"
    echo "$want" > "$stamp"
fi

# 4. The xunit2 JUnit schema the tests validate both JUnit writers against (tests/unit/
# test_junit_schema.py): pytest's wheel does not ship it, its sdist does
# (testing/example_scripts/junit-10.xsd); fetched once into the cache, never at test time.
# Not fatal: without it those tests skip and say why.
xsd=$cache/junit-10.xsd
if [ ! -s "$xsd" ]; then
    pyver=$("$venv/bin/python" -c 'import pytest; print(pytest.__version__)')
    tmp=$(mktemp -d)
    say "fetching the xunit2 schema from pytest $pyver's sdist"
    if "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
            -d "$tmp" "pytest==$pyver" >/dev/null 2>&1 \
        && tar -xzf "$tmp"/pytest-*.tar.gz -C "$tmp" --wildcards '*/testing/example_scripts/junit-10.xsd' \
        && cp "$tmp"/pytest-*/testing/example_scripts/junit-10.xsd "$xsd.part" \
        && mv "$xsd.part" "$xsd"; then
        say "xunit2 schema in $xsd"
    else
        rm -f "$xsd.part"
        say "could not fetch the xunit2 schema (the JUnit schema tests will skip): no network to PyPI?"
    fi
    rm -rf "$tmp"
fi
