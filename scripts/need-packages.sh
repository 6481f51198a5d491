#!/usr/bin/env bash
# need-packages.sh WHAT...: makes sure the Debian packages the tests and the
# local tools need are there, installing what is missing in one apt-get run
# (as root; apt-get holds one lock, so one run for all).
#
#   chromium  headless Chromium for the dashboard's browser tests
#             (cmd/internal/e2e/browser) and make dashtime: NEXUS_CHROMIUM set
#             (that binary must exist), or chromium (chromium-browser,
#             google-chrome) on PATH, else Debian's chromium
#   podman    the container engine of sam local (cmd/internal/e2e/samlocal):
#             podman, runc, qemu-user-static (the arm64 functions on another
#             architecture) and busybox-static (the stand-in Lambda base
#             image, scripts/lambda-base)
#
# What cannot be installed (not root, no apt-get) is a clear message: under
# CI=true an error (a test must never be skipped there), elsewhere a
# warning, and the tests that need it say why they skip.
set -euo pipefail

log() { printf 'need-packages: %s\n' "$*" >&2; }

packages=()
for what in "$@"; do
	case $what in
	chromium)
		if [[ -n "${NEXUS_CHROMIUM:-}" ]]; then
			[[ -x "$NEXUS_CHROMIUM" ]] || { log "NEXUS_CHROMIUM=$NEXUS_CHROMIUM is not an executable"; exit 1; }
			continue
		fi
		found=""
		for c in chromium chromium-browser google-chrome; do
			if command -v "$c" >/dev/null; then found=$c; fi
		done
		[[ -n "$found" ]] || packages+=(chromium)
		;;
	podman)
		command -v podman >/dev/null || packages+=(podman)
		command -v runc >/dev/null || packages+=(runc)
		if [[ $(uname -m) != aarch64 && ! -f /usr/lib/binfmt.d/qemu-aarch64.conf ]]; then packages+=(qemu-user-static); fi
		if ! command -v busybox >/dev/null || ldd "$(command -v busybox)" >/dev/null 2>&1; then packages+=(busybox-static); fi
		;;
	*)
		log "unknown need $what"
		exit 2
		;;
	esac
done
[[ ${#packages[@]} -eq 0 ]] && exit 0

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
	log "installing Debian's ${packages[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${packages[@]}" >/dev/null
	exit 0
fi
msg="${packages[*]} not installed and cannot be installed here (not root, or no apt-get): apt-get install ${packages[*]} (for Chromium, NEXUS_CHROMIUM may name a Chromium or Chrome binary)"
if [[ "${CI:-}" == "true" ]]; then
	log "error: $msg"
	exit 1
fi
log "warning: $msg; the tests that need them will skip"
