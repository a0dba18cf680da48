#!/bin/bash
# `make image`: builds deploy/Dockerfile offline with podman, from what `make host gadgets`
# already built (no second compile inside a container).
#   1. the runtime base: Debian bookworm's glibc and libgcc_s, taken from a debootstrap of
#      Debian's mirror (what apt uses): the content of gcr.io/distroless/cc-debian12, which
#      cannot be pulled here. Imported once as $GADGET_IMAGE_BASE and reused.
#   2. the image's files, laid out by deploy/image/root.sh in build/image/root.
#   3. podman build -f deploy/Dockerfile with ARTIFACTS=prebuilt and that base.
# Prints the image's size, uncompressed and gzip-compressed (what a registry stores).
set -euo pipefail
IMAGE=${GADGET_IMAGE:-localhost/gadget:dev}
BASE=${GADGET_IMAGE_BASE:-localhost/gadget-base:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=build/image
podman=(podman --runtime runc --cgroup-manager=cgroupfs)

mkdir -p "$work"
if ! "${podman[@]}" image exists "$BASE"; then
	echo "image: making the base $BASE from Debian $SUITE's libc6 and libgcc-s1"
	rm -rf "$work/rootfs"
	debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; exit 1; }
	# Only what the binary links (glibc, libgcc_s) plus Debian's /etc basics (passwd, group,
	# nsswitch, os-release): no shell, no package manager. The same content as
	# gcr.io/distroless/cc-debian12, which cannot be pulled here.
	(
		cd "$work/rootfs"
		chroot . dpkg-query -L libc6 libgcc-s1 base-files |
			sed 's|^/||' | grep -v '^$' | grep -v '^usr/share/\(doc\|man\|info\|locale\|lintian\)' |
			while read -r f; do
				# dpkg names files by their /lib, /bin paths; the usrmerge symlinks move them.
				d=$(readlink -f "$(dirname "$f")")
				f=${d#"$PWD"}/$(basename "$f")
				f=${f#/}
				[ -d "$f" ] && [ ! -L "$f" ] || echo "$f"
			done | sort -u >../base.files
		printf '%s\n' etc/passwd etc/group etc/nsswitch.conf bin lib lib64 sbin >>../base.files
		rm -rf ../base && mkdir -p ../base/tmp ../base/var/tmp ../base/run && chmod 1777 ../base/tmp
		xargs -d '\n' cp -a --parents -t ../base <../base.files
	)
	tar -C "$work/base" --numeric-owner -c . | "${podman[@]}" import --change 'CMD ["/usr/local/bin/gadget"]' - "$BASE" >/dev/null
	rm -rf "$work/rootfs" "$work/base"
fi

deploy/image/root.sh "$work/root"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || revision="$revision-dirty"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
source=$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml | head -1)
"${podman[@]}" build --quiet -f deploy/Dockerfile \
	--build-arg ARTIFACTS=prebuilt --build-arg RUNTIME_IMAGE="$BASE" \
	--build-arg VERSION="${version:-dev}" --build-arg REVISION="$revision" \
	${source:+--build-arg SOURCE="$source"} \
	--annotation org.opencontainers.image.version="${version:-dev}" \
	--annotation org.opencontainers.image.revision="$revision" \
	${source:+--annotation org.opencontainers.image.source="$source"} \
	-t "$IMAGE" "$work/root" >/dev/null
raw=$("${podman[@]}" image inspect --format '{{.Size}}' "$IMAGE")
gz=$("${podman[@]}" save "$IMAGE" 2>/dev/null | gzip -6 | wc -c)
printf 'image: %s built: %d MiB, %d MiB gzip-compressed\n' "$IMAGE" $((raw >> 20)) $((gz >> 20))
