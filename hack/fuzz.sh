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

while read -r pkg target; do
	[ -n "$pkg" ] || continue
	echo "== $target ($pkg, $fuzztime)"
	"$GO" test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
done <<<"$targets"
