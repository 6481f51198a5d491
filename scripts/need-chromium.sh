#!/usr/bin/env bash
# need-chromium.sh: makes sure headless Chromium is there for the browser
# tests of the dashboard (cmd/internal/browser) and for make dashtime.
#
#   - NEXUS_CHROMIUM set: that binary must exist;
#   - chromium (or chromium-browser, google-chrome) on PATH: nothing to do;
#   - else, as root with apt-get: installs Debian's chromium package;
#   - else a clear message: under CI=true it is an error (a browser test
#     must never be skipped there), elsewhere a warning, and the browser
#     tests say why they skip.
set -euo pipefail

log() { printf 'need-chromium: %s\n' "$*" >&2; }

if [[ -n "${NEXUS_CHROMIUM:-}" ]]; then
	[[ -x "$NEXUS_CHROMIUM" ]] && exit 0
	log "NEXUS_CHROMIUM=$NEXUS_CHROMIUM is not an executable"
	exit 1
fi
for c in chromium chromium-browser google-chrome; do
	if command -v "$c" >/dev/null; then exit 0; fi
done
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
	log "installing Debian's chromium package for the browser tests"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq chromium >/dev/null
	command -v chromium >/dev/null && exit 0
	log "apt-get installed no chromium"
	exit 1
fi
msg="Chromium is not installed and cannot be installed here (not root, or no apt-get): install Debian's chromium package (apt-get install chromium), or set NEXUS_CHROMIUM to a Chromium or Chrome binary"
if [[ "${CI:-}" == "true" ]]; then
	log "error: $msg"
	exit 1
fi
log "warning: $msg; the browser tests will skip"
