#!/usr/bin/env bash
# advstudio.app -> a compressed .dmg with a link to /Applications (drag to install).
#   bash packaging/macos/make_dmg.sh dist/advstudio.app dist/advstudio-0.1.0-macos.dmg
# Called by packaging/build.py on macOS. The app is ad-hoc signed by PyInstaller, not notarised:
# the first start needs right-click > Open (or System Settings > Privacy & Security > Open Anyway).
set -euo pipefail
app="$1"
out="$2"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
rm -f "$out"
hdiutil create -volname advstudio -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$out"
