#!/bin/sh
# Lays out what the container image holds on top of its base, under DEST:
#   /usr/local/bin/gadget                      the host binary
#   /opt/gadget/gadgets/profile_blockio/       the built-in gadget's directory
#   /opt/gadget/oci-store                      an OCI store with it as profile_blockio:v0.46.0,
#                                              so IG's short name resolves with no network
#   /etc/ssl/certs/ca-certificates.crt         roots for pulling other gadgets over TLS
# Run from the repository root after `make host gadgets`. The Dockerfile's build stage runs it,
# and so does `make image` (which then builds the same Dockerfile from this tree, offline).
#
#   deploy/image/root.sh DEST [GADGET_BINARY]
set -eu
dest=${1:?usage: deploy/image/root.sh DEST [GADGET_BINARY]}
bin=${2:-${GADGET_BIN:-target/release/gadget}}
gadget_dir=gadgets/profile_blockio
for f in "$bin" $gadget_dir/gadget.yaml $gadget_dir/program.bpf.o $gadget_dir/program.wasm; do
	[ -f "$f" ] || { echo "root.sh: $f is missing: run \`make host gadgets\` first" >&2; exit 1; }
done
rm -rf "$dest"
mkdir -p "$dest/usr/local/bin" "$dest/opt/gadget/gadgets/profile_blockio" "$dest/etc/ssl/certs"
cp "$bin" "$dest/usr/local/bin/gadget"
cp $gadget_dir/gadget.yaml $gadget_dir/program.bpf.o $gadget_dir/program.wasm \
	"$dest/opt/gadget/gadgets/profile_blockio/"
# The built-in gadget is signed with a key made for this build and then thrown away; only its
# public half ships (/opt/gadget/image-signing.pub, trusted through the Dockerfile's
# GADGET_PUBLIC_KEY_FILES), so nobody holding the image can sign gadgets its nodes would trust.
keydir=$(mktemp -d)
trap 'rm -rf "$keydir"' EXIT
"$bin" --store "$dest/opt/gadget/oci-store" --signing-key "$keydir/image-signing.pem" \
	image build $gadget_dir -t profile_blockio:v0.46.0 >/dev/null
openssl pkey -in "$keydir/image-signing.pem" -pubout -out "$dest/opt/gadget/image-signing.pub"
cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"
# Everything readable by all, nothing writable: the root filesystem is read-only at run time.
chmod -R a+rX,go-w "$dest"
