#!/bin/bash
# Run the cairn integration tests.
#
#   tests/integration/run.sh                 # every tests/integration/t_*.sh
#   tests/integration/run.sh t_check t_dedupe   # only these (with or without .sh)
#
# CAIRN=/path/to/cairn selects the binary (default: ./cairn of the checkout).
# Logs of each test go to $CAIRN_TEST_LOGS (default: a temp dir); the log of a
# failed test is printed. VERBOSE=1 prints every log. Each test is stopped
# after $CAIRN_TEST_TIMEOUT seconds (default 600).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export CAIRN=${CAIRN:-$top/cairn}
case $CAIRN in /*) ;; *) CAIRN=$(pwd)/$CAIRN ;; esac

if [ ! -x "$CAIRN" ]; then
	echo "run.sh: no cairn binary at $CAIRN (run make, or set CAIRN=)" >&2
	exit 1
fi

tests=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		t=$(basename "$t" .sh)
		[ -f "$here/$t.sh" ] || { echo "run.sh: no test $here/$t.sh" >&2; exit 2; }
		tests+=("$here/$t.sh")
	done
else
	for t in "$here"/t_*.sh; do tests+=("$t"); done
fi

logs=${CAIRN_TEST_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/cairn-test-logs.XXXXXX")}
mkdir -p "$logs"
export CAIRN_TEST_LOGS=$logs # tests keep artifacts (screenshots) under it
echo "cairn integration tests: binary $CAIRN, logs in $logs"

failed=() passed=0 skipped=0
start_all=$(date +%s.%N)
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	log=$logs/$name.log
	start=$(date +%s.%N)
	(cd "$top" && timeout -k 10 "${CAIRN_TEST_TIMEOUT:-600}" bash "$t") >"$log" 2>&1
	rc=$?
	[ $rc -eq 124 ] && echo "TIMEOUT after ${CAIRN_TEST_TIMEOUT:-600}s" >>"$log"
	secs=$(awk -v a="$start" -v b="$(date +%s.%N)" "BEGIN{printf \"%.1f\", b-a}")
	if [ $rc -eq 0 ] && grep -q '^SKIP:' "$log"; then
		printf 'SKIP  %-24s %6ss  %s\n' "$name" "$secs" "$(grep -m1 '^SKIP:' "$log")"
		skipped=$((skipped + 1))
	elif [ $rc -eq 0 ]; then
		printf 'PASS  %-24s %6ss\n' "$name" "$secs"
		passed=$((passed + 1))
	else
		printf 'FAIL  %-24s %6ss  (exit %d)\n' "$name" "$secs" "$rc"
		failed+=("$name")
		echo "----- $log (last 40 lines) -----"
		tail -n 40 "$log" | sed 's/^/    /'
		echo "-----"
	fi
	[ -n "${VERBOSE:-}" ] && sed 's/^/    /' "$log"
done
total=$(awk -v a="$start_all" -v b="$(date +%s.%N)" "BEGIN{printf \"%.1f\", b-a}")
echo "$passed passed, ${#failed[@]} failed, $skipped skipped (${total}s)"
if [ ${#failed[@]} -gt 0 ]; then
	echo "failed: ${failed[*]}"
	exit 1
fi
exit 0
