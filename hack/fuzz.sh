#!/usr/bin/env bash
# Runs every fuzz target for a while: the targets live in *_test.go files
# beside the parsers of outside input (documents, CNI configs, Mesos
# labels, local API bodies, selectors). `make fuzz` runs each for
# FUZZTIME (default 1m); `make test` runs each for 3s.
#
# Usage: hack/fuzz.sh [FUZZTIME]   e.g. hack/fuzz.sh 30s
# Run one target longer with e.g.
#   go test -run='^$' -fuzz='^FuzzDecode$' -fuzztime=10m ./internal/api
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
GO="${GO:-go}"
fuzztime="${1:-1m}"

# package target, one a line.
targets="
./internal/api FuzzDecode
./internal/cni FuzzParseConfig
./internal/cni FuzzSanitiseLabel
./internal/agent FuzzLocalAPI
./internal/selector FuzzParse
"

# fuzz runs one target. Go 1.26's fuzzing coordinator can fail a run at
# the end of a -fuzztime duration with a bare "context deadline exceeded"
# and no failing input (go.dev/issue/75804, fixed in Go 1.27): such a run
# is tried again, up to twice. A failure that wrote a failing input under
# testdata/fuzz/, or any other failure, fails at once.
fuzz() {
	local pkg=$1 target=$2 corpus out status before
	corpus="$pkg/testdata/fuzz/$target"
	for attempt in 1 2 3; do
		before=$(ls "$corpus" 2>/dev/null | sort || true)
		out=$(mktemp)
		status=0
		"$GO" test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" 2>&1 | tee "$out" || status=$?
		if [ "$status" -eq 0 ]; then
			rm -f "$out"
			return 0
		fi
		if [ "$(ls "$corpus" 2>/dev/null | sort || true)" != "$before" ] ||
			! grep -qx '    context deadline exceeded' "$out" || [ "$attempt" -eq 3 ]; then
			rm -f "$out"
			return 1
		fi
		rm -f "$out"
		echo "== $target: the fuzzing coordinator's deadline race (go.dev/issue/75804), no failing input written; again"
	done
}

while read -r pkg target; do
	[ -n "$pkg" ] || continue
	echo "== $target ($pkg, $fuzztime)"
	fuzz "$pkg" "$target"
done <<<"$targets"
