#!/usr/bin/env bash
# drkit example: the three-command backup and restore with the `drkit` command.
#   drkit init DIR; drkit import IMAGE --volume NAME; drkit snapshot NAME --name SNAP
#   ... then drkit restore SNAP --to FILE, and the restored bytes equal the image.
# Usage: npm run example:cli   (builds first; runs node dist/cli.js, as `npx drkit` would)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
drkit() { node "$here/../dist/cli.js" "$@"; }
work="$(mktemp -d "${TMPDIR:-/tmp}/drkit-cli-example-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A 16 MiB disk image: 8 MiB of random bytes, 4 MiB of zeros, 4 MiB of repeated text.
head -c $((8 << 20)) /dev/urandom > "$work/disk.img"
head -c $((4 << 20)) /dev/zero >> "$work/disk.img"
{ yes 'the quick brown fox jumps over the lazy dog' || true; } | head -c $((4 << 20)) >> "$work/disk.img"

export DRKIT_SITE="$work/site"
drkit init "$DRKIT_SITE" --site-id backup
drkit import "$work/disk.img" --volume vm-disk
drkit snapshot vm-disk --name first-backup
drkit list
drkit restore first-backup --to "$work/restored.img"
if cmp -s "$work/disk.img" "$work/restored.img"; then echo "restored.img is byte-identical to disk.img"; else echo "restored.img DIFFERS" >&2; exit 1; fi
