#!/bin/bash
# Builds fwpair_<version>_<arch>.deb with dpkg-deb from a staged tree
# (binaries as position-independent executables, as Debian hardens them):
#   packaging/deb/build.sh OUTDIR
# Run from the repository root (make deb does). The version comes from
# git describe (packaging/deb/version.sh), or FWPAIR_DEB_VERSION when set
# (the QEMU lab builds a higher one to test upgrades).
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
go=${GO:-go}
here=$(cd "$(dirname "$0")" && pwd)
version=${FWPAIR_DEB_VERSION:-$("$here/version.sh")}
describe=$(git describe --tags --always --dirty 2>/dev/null || echo unknown)
arch=$(dpkg --print-architecture)
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
export SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)

mkdir -p "$out"
stage=$(mktemp -d "${TMPDIR:-/tmp}/fwpair-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/fwpair

install -d -m 0755 "$root/usr/sbin" "$root/lib/systemd/system" "$root/usr/share/man/man8" \
	"$root/usr/share/man/man5" "$doc" "$root/usr/share/lintian/overrides" "$root/DEBIAN"
install -d -m 0750 "$root/etc/fwpair"

for bin in fwpaird fwpairctl; do
	CGO_ENABLED=0 "$go" build -trimpath -buildvcs=false -buildmode=pie \
		-ldflags "-s -w -X main.version=$version" -o "$root/usr/sbin/$bin" "./cmd/$bin"
done

# Manual pages, generated from the flag and key definitions.
"$root/usr/sbin/fwpaird" -manpage fwpaird.8 | gzip -9n > "$root/usr/share/man/man8/fwpaird.8.gz"
"$root/usr/sbin/fwpairctl" manpage | gzip -9n > "$root/usr/share/man/man8/fwpairctl.8.gz"
"$root/usr/sbin/fwpaird" -manpage fwpair.toml.5 | gzip -9n > "$root/usr/share/man/man5/fwpair.toml.5.gz"

install -m 0644 etc/fwpaird.service "$root/lib/systemd/system/fwpaird.service"
install -m 0640 etc/fwpair.toml "$root/etc/fwpair/fwpair.toml"
install -m 0644 etc/fwpair.toml "$doc/fwpair.toml.example"
install -m 0644 etc/node1.toml etc/node2.toml etc/fwpair.nft etc/fwpair-alerts.yml README.md "$doc/"
for f in docs/migrating.md docs/metrics.md; do
	[ -e "$f" ] && install -m 0644 "$f" "$doc/"
done
install -m 0644 "$here/copyright" "$doc/copyright"
sed -e "s|@VERSION@|$version|" -e "s|@DESCRIBE@|$describe|" -e "s|@DATE@|$date|" \
	"$here/changelog.in" | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/fwpair"

for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done
echo /etc/fwpair/fwpair.toml > "$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" "$here/control.in" > "$root/DEBIAN/control"
chmod 0644 "$root/DEBIAN/control"

# Every file's time is the commit's, for a reproducible archive.
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="$out/fwpair_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
