# shellcheck shell=bash
# Shared helpers for cairn integration tests.  Source it from a t_*.sh script:
#
#   . "$(dirname "$0")/lib.sh"
#
# Gives: $CAIRN (binary), $T (per-test temp dir, removed on exit), a strict
# shell (any unexpected failing command fails the test with its line), and
# helpers to make images, parse JSON and assert.

set -Eeuo pipefail

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_DIR=$(cd "$LIB_DIR/../.." && pwd)
if [ -z "${CAIRN:-}" ]; then
	if [ -x "$(pwd)/cairn" ]; then CAIRN=$(pwd)/cairn; else CAIRN=$TOP_DIR/cairn; fi
fi
case $CAIRN in /*) ;; *) CAIRN=$(pwd)/$CAIRN ;; esac
export CAIRN
export CAIRN_PASSWORD=testpass
unset CAIRN_NEW_PASSWORD
export LC_ALL=C
TEST_NAME=$(basename "$0" .sh)

[ -x "$CAIRN" ] || { echo "FATAL: cairn binary not found at $CAIRN (set CAIRN=...)" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/cairn-$TEST_NAME.XXXXXX")
# cairn's default caches (serve's chunk cache of a remote repository) stay
# in the test's directory
export XDG_CACHE_HOME=$T/xdg-cache
CLEANUP_CMDS=()
BG_PIDS=()

_cleanup() {
	local rc=$? i
	trap - EXIT ERR
	set +e
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	for ((i = ${#CLEANUP_CMDS[@]} - 1; i >= 0; i--)); do
		eval "${CLEANUP_CMDS[$i]}" >/dev/null 2>&1
	done
	if [ -n "${KEEP_TMP:-}" ]; then
		echo "(kept $T)" >&2
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap _cleanup EXIT
trap 'echo "FAIL: $TEST_NAME: line $LINENO: command failed (rc=$?): $BASH_COMMAND" >&2; exit 1' ERR

# at_exit 'shell command' — run at exit (reverse order), before $T is removed
at_exit() { CLEANUP_CMDS+=("$1"); }

# start_agent_console CONF URL — `cairn agent` with CONF in the background
# (stderr in $T/agent.log, its pid in AGENT, killed at exit), once its
# console answers at URL and its log says it listens there
start_agent_console() {
	"$CAIRN" agent --config "$1" --foreground 2>"$T/agent.log" &
	AGENT=$!
	at_exit "kill $AGENT 2>/dev/null || true"
	for _ in $(seq 50); do curl -s -o /dev/null "$2/" && break; sleep 0.2; done
	grep -q "console listening on $2" "$T/agent.log" || die "no console: $(cat "$T/agent.log")"
}

die() {
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}

step() { echo "--- $*"; }

# cairn ARGS... — run the binary, echoing the command (stdout/stderr pass through)
cairn() {
	echo "+ cairn $*" >&2
	"$CAIRN" "$@"
}

# cairn_q ARGS... — run the binary, output to $T/last.out / $T/last.err; fail the
# test (showing stderr) if it does not exit 0
cairn_q() {
	local rc=0
	"$CAIRN" "$@" >"$T/last.out" 2>"$T/last.err" || rc=$?
	if [ $rc -ne 0 ]; then
		echo "--- stdout:" >&2; cat "$T/last.out" >&2
		echo "--- stderr:" >&2; cat "$T/last.err" >&2
		die "cairn $* exited $rc (expected 0)"
	fi
}

# expect_fail CODE cmd... — run cmd; assert exit code CODE and that stderr is a
# single non-empty line starting with "cairn:" (lines starting with
# "cairn: warning:" may precede it). Prints that line. Saves the line in
# $FAIL_MSG, all of stderr in $FAIL_ERR and stdout in $T/fail.out.
FAIL_MSG=
FAIL_ERR=
FAIL_RC=
_run_capture() { # run cmd once, capture rc/stdout/stderr
	FAIL_RC=0
	"$@" >"$T/fail.out" 2>"$T/fail.err" || FAIL_RC=$?
	FAIL_ERR=$(cat "$T/fail.err")
	FAIL_MSG=$(grep -v '^cairn: warning:' "$T/fail.err" || true)
	echo "  [$*] -> rc=$FAIL_RC: $FAIL_ERR"
}
_check_one_line() {
	local nl
	if [ -z "$FAIL_MSG" ]; then
		die "'$*' exited $FAIL_RC with no error message on stderr (expected one 'cairn:' line)"
	fi
	nl=$(printf '%s\n' "$FAIL_MSG" | wc -l)
	if [ "$nl" -ne 1 ]; then
		die "'$*': stderr has $nl error lines, expected exactly one:
$FAIL_ERR"
	fi
	case $FAIL_MSG in
	cairn:?*) ;;
	*) die "'$*': stderr does not start with 'cairn:': $FAIL_MSG" ;;
	esac
}
expect_fail() {
	local want=$1
	shift
	_run_capture "$@"
	if [ "$FAIL_RC" -ne "$want" ]; then
		echo "--- stdout:" >&2; head -c 4000 "$T/fail.out" >&2
		die "'$*' exited $FAIL_RC, expected $want"
	fi
	_check_one_line "$@"
}

# expect_fail_any "CODES" cmd... — like expect_fail, but any of the listed codes
expect_fail_any() {
	local codes=$1 c ok=
	shift
	_run_capture "$@"
	for c in $codes; do [ "$FAIL_RC" -eq "$c" ] && ok=1; done
	if [ -z "$ok" ]; then
		echo "--- stdout:" >&2; head -c 4000 "$T/fail.out" >&2
		die "'$*' exited $FAIL_RC, expected one of: $codes"
	fi
	_check_one_line "$@"
}

# assert_msg_matches ERE — the last expect_fail message matches (case-insensitive)
assert_msg_matches() {
	echo "$FAIL_ERR" | grep -Eqi -- "$1" || die "error message '$FAIL_ERR' does not match /$1/"
}

assert_eq() { # assert_eq ACTUAL EXPECTED WHAT
	[ "$1" = "$2" ] || die "${3:-value}: got '$1', expected '$2'"
}

assert_file_absent() {
	[ ! -e "$1" ] || die "$1 exists but should not"
}

# no leftovers like out.raw.tmp-XXXX / .out.raw.XXXX next to a restore target
assert_no_partial() { # assert_no_partial DIR BASENAME
	local left
	left=$(find "$1" -maxdepth 1 -name "*$2*" 2>/dev/null | grep -v -x "$1/$2" || true)
	[ -z "$left" ] || die "partial/temporary restore output left behind: $left"
}

# to_bytes 5M+12345 → 5255225 (K/M/G = KiB/MiB/GiB, + and * allowed)
to_bytes() {
	local e=$1
	e=${e//K/*1024}
	e=${e//M/*1048576}
	e=${e//G/*1073741824}
	echo $((e))
}

# gen_stream SEED BYTES — deterministic incompressible bytes on stdout
gen_stream() {
	local key
	key=$(printf '%s' "cairn-test-$1" | sha256sum | cut -c1-32)
	{ openssl enc -aes-128-ctr -K "$key" -iv 00000000000000000000000000000000 -nosalt </dev/zero 2>/dev/null || true; } |
		head -c "$2"
}

# gen_text SEED BYTES — deterministic compressible-ish bytes (base64 text)
gen_text() {
	# base64 may still be writing its last line when head has its bytes:
	# its SIGPIPE is not a failure
	{ gen_stream "$1" $(( ($2 * 3 / 4) + 64 )) | base64 -w 76 || true; } | head -c "$2"
}

# write_at FILE OFFSET SEED LEN — overwrite LEN deterministic bytes at OFFSET
write_at() {
	gen_stream "$3" "$4" | dd of="$1" bs=64K seek="$2" oflag=seek_bytes conv=notrunc iflag=fullblock status=none
}

# mkimg_raw PATH SIZE [dense|sparse] [SEED]
#   dense:  every byte is deterministic random data
#   sparse: a hole-y file: data blocks of 64 KiB every ~1 MiB, the first 100 KiB
#           and the last (up to) 50000 bytes; everything else is a hole
mkimg_raw() {
	local path=$1 size mode=${3:-dense} seed=${4:-$1} off
	size=$(to_bytes "$2")
	rm -f "$path"
	case $mode in
	dense)
		gen_stream "$seed" "$size" >"$path"
		;;
	sparse)
		truncate -s "$size" "$path"
		[ "$size" -eq 0 ] && return 0
		local first=$((size < 102400 ? size : 102400))
		write_at "$path" 0 "$seed-head" "$first"
		off=1048576
		while [ $((off + 65536)) -le "$size" ]; do
			write_at "$path" $((off + (off / 1048576) * 4099 % 900000)) "$seed-$off" 65536
			off=$((off + 1048576))
		done
		truncate -s "$size" "$path"
		local tail=$((size < 50000 ? size : 50000))
		write_at "$path" $((size - tail)) "$seed-tail" "$tail"
		;;
	*) die "mkimg_raw: mode $mode" ;;
	esac
	[ "$(stat -c %s "$path")" -eq "$size" ] || die "mkimg_raw: $path has wrong size"
}

# mkimg_fs PATH SIZE [SRCDIR...] — an ext4 image populated with a few MB of files
mkimg_fs() {
	local path=$1 size=$2 src=$T/fs-src.$RANDOM
	shift 2
	mkdir -p "$src"
	if [ $# -eq 0 ]; then
		# a deterministic few MB of /usr/share/doc
		# (sort dies of SIGPIPE once head has its 600 lines: not a failure)
		(cd /usr/share/doc && { find . -type f -size -200k | sort || true; } | head -n 600 |
			xargs -d '\n' cp --parents -t "$src")
	else
		cp -a "$@" "$src"/
	fi
	rm -f "$path"
	truncate -s "$size" "$path"
	mkfs.ext4 -q -F -E root_owner=0:0 -d "$src" "$path" >/dev/null
	rm -rf "$src"
}

# json EXPR < file — evaluate a python expression on the parsed JSON "j"
json() {
	python3 -c '
import json, sys
j = json.load(sys.stdin)
r = eval(sys.argv[1])
if isinstance(r, bool): print("true" if r else "false")
elif isinstance(r, (dict, list)): print(json.dumps(r))
elif r is None: print("null")
else: print(r)
' "$1"
}

# snap_id REPO [NAME] — the id of the latest snapshot (by time_ns) [of NAME]
snap_id() {
	"$CAIRN" snapshots "$1" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
name = sys.argv[1] if len(sys.argv) > 1 else None
s = [x for x in s if not x.get("damaged") and (name is None or x["name"] == name)]
if not s: sys.exit("no snapshot")
s.sort(key=lambda x: x.get("time_ns", 0))
print(s[-1]["id"])
' ${2:+"$2"}
}

# snap_count REPO — readable snapshots (damaged rows of `snapshots --json` left out)
snap_count() { "$CAIRN" snapshots "$1" --json | json 'len([x for x in j if not x.get("damaged")])'; }

# files_containing STRING DIR — number of files under DIR holding STRING (binary-safe)
files_containing() { { grep -rlaF -- "$1" "$2" || true; } | wc -l; }
# occurrences STRING DIR — number of lines (records) matching under DIR
occurrences() { { grep -raF -c -- "$1" "$2" || true; } | awk -F: '{s+=$NF} END {print s+0}'; }

count_packs() { find "$1/data" -type f ! -name '.*' | wc -l; }
count_index() { find "$1/index" -type f ! -name '.*' | wc -l; }
# repo_bytes REPO — apparent bytes of data/ + index/ (what a backup adds)
repo_bytes() { find "$1/data" "$1/index" -type f ! -name '.*' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
# list of pack files, sorted
list_packs() { find "$1/data" -type f ! -name '.*' | sort; }

# is_sparse FILE MAXFRACTION_PERCENT — allocated bytes < pct% of size
alloc_bytes() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# assert_same FILE1 FILE2 — byte-identical
assert_same() {
	cmp "$1" "$2" >/dev/null || { cmp "$1" "$2" || true; die "$2 differs from $1"; }
	[ "$(stat -c %s "$1")" = "$(stat -c %s "$2")" ] || die "size of $2 differs from $1"
}

# restore_check REPO SNAP ORIG [restore args...] — restore raw to a new file, cmp
restore_check() {
	local repo=$1 snap=$2 orig=$3 out
	shift 3
	out=$T/restore.$RANDOM.raw
	cairn_q restore "$repo" "$snap" --to "$out" "$@"
	assert_same "$orig" "$out"
	rm -f "$out"
}

# flip_byte FILE OFFSET — xor one byte with 0xff in place
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	[ -n "$b" ] || die "flip_byte: offset $2 beyond end of $1"
	printf "\\$(printf '%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

file_size() { stat -c %s "$1"; }

# soft CMD... — run an assertion (in a subshell); on failure record it and go
# on, so one deviation does not hide the rest; `pass` then fails the test.
soft() {
	local rc=0
	("$@") || rc=$?
	if [ $rc -ne 0 ]; then
		echo "$*" >>"$T/.soft-fails"   # a file: works from subshells too
		echo "  (soft failure recorded, continuing)" >&2
	fi
	return 0
}

pass() {
	if [ -s "$T/.soft-fails" ]; then
		echo "FAIL: $TEST_NAME: $(wc -l <"$T/.soft-fails") assertion(s) failed:" >&2
		sed 's/^/  - /' "$T/.soft-fails" >&2
		exit 1
	fi
	echo "ok: $TEST_NAME${1:+: $*}"
}
