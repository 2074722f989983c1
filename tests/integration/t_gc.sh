#!/bin/bash
# Garbage collection: forget + gc frees the space of forgotten snapshots
# (whole packs deleted, mostly-unused packs repacked), kept snapshots restore
# byte-identical and check --read-data stays clean; --dry-run changes
# nothing; a backup running during gc (its lock held) makes gc wait before
# deleting, and a backup that starts after gc condemned some packs stores
# its own copies instead of reusing condemned ones; gc killed at random
# points leaves a repository that checks clean, and the next gc finishes.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R" --chunk-size 64K
mkimg_raw "$T/keep.raw" 6M dense keep
mkimg_raw "$T/drop.raw" 6M dense drop
cairn_q backup "$R" --image "$T/keep.raw" --name keep
cairn_q backup "$R" --image "$T/drop.raw" --name drop
# a third snapshot that shares half of drop's chunks: its packs are mixed
head -c 3M "$T/drop.raw" >"$T/mixed.raw"
head -c 3M /dev/urandom >>"$T/mixed.raw"
cairn_q backup "$R" --image "$T/mixed.raw" --name mixed
before=$(repo_bytes "$R")
packs_before=$(count_packs "$R")

step "dry run: nothing changes"
cairn_q forget "$R" --name drop --keep-tag none-such
cairn_q gc "$R" --dry-run --json
assert_eq "$(json 'j["dry_run"]' <"$T/last.out")" true "dry_run"
[ "$(json 'j["unused_bytes"]' <"$T/last.out")" -gt 0 ] || die "dry run found nothing to free"
assert_eq "$(repo_bytes "$R")" "$before" "repository bytes after a dry run"
[ ! -d "$R/gc" ] || [ -z "$(ls -A "$R/gc")" ] || die "dry run wrote gc lists"

step "gc frees what only the forgotten snapshot used"
cairn_q gc "$R" --json
[ "$(json 'j["packs_deleted"]' <"$T/last.out")" -gt 0 ] || die "no pack deleted: $(cat "$T/last.out")"
after=$(repo_bytes "$R")
[ "$after" -lt $((before - 2 * 1024 * 1024)) ] || die "only $((before - after)) bytes freed"
[ -z "$(ls -A "$R/gc")" ] || die "gc lists left behind"
cairn_q check "$R" --read-data
restore_check "$R" latest "$T/keep.raw" --name keep
restore_check "$R" latest "$T/mixed.raw" --name mixed
cairn_q gc "$R" --json
assert_eq "$(json 'j["packs_deleted"]' <"$T/last.out")" 0 "second gc deletes nothing"

step "a backup holding its lock makes gc wait before deleting"
cairn_q forget "$R" --name mixed --keep-tag none-such
sleep 600 &
sleeper=$!
BG_PIDS+=("$sleeper")
printf '{"host":"%s","pid":%d,"time":"2026-01-01T00:00:00Z","exclusive":false}' \
	"$(hostname)" "$sleeper" >"$R/locks/fakebackup"
cairn_q gc "$R" --json
assert_eq "$(json 'j["packs_deleted"]' <"$T/last.out")" 0 "packs deleted while a backup runs"
assert_eq "$(json 'j["lists_waiting"]' <"$T/last.out")" 1 "lists waiting"
cairn_q check "$R" --read-data

step "a backup after the condemnation stores its own copies"
cairn_q backup "$R" --image "$T/mixed.raw" --name mixed2 --json
# mixed's own 3 MiB are only in condemned packs now
[ "$(json 'j["new_bytes"]' <"$T/last.out")" -ge 3000000 ] ||
	die "the backup reused condemned chunks: $(cat "$T/last.out")"
kill "$sleeper"; wait "$sleeper" 2>/dev/null || true
cairn_q gc "$R" --json
[ "$(json 'j["packs_deleted"]' <"$T/last.out")" -gt 0 ] || die "condemned packs not deleted once the backup ended"
cairn_q check "$R" --read-data
restore_check "$R" latest "$T/mixed.raw" --name mixed2
restore_check "$R" latest "$T/keep.raw" --name keep

step "a lock of another host: waited for while its heartbeat is fresh, broken once stale"
cairn_q forget "$R" --name mixed2 --keep-tag none-such
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '{"host":"elsewhere","pid":1,"time":"2026-01-01T00:00:00Z","exclusive":false,"heartbeat":"%s"}' \
	"$now" >"$R/locks/remote"
cairn_q gc "$R" --json
assert_eq "$(json 'j["packs_deleted"]' <"$T/last.out")" 0 "deleted beside a live remote backup"
[ -e "$R/locks/remote" ] || die "a fresh remote lock was removed"
printf '{"host":"elsewhere","pid":1,"time":"2026-01-01T00:00:00Z","exclusive":false,"heartbeat":"2026-01-01T00:05:00Z"}' \
	>"$R/locks/remote"
cairn_q gc "$R" --json
[ "$(json 'j["packs_deleted"]' <"$T/last.out")" -gt 0 ] || die "a stale remote lock kept gc waiting"
grep -q "removed stale lock of pid 1 on elsewhere" "$T/last.err" || die "no stale-lock message"
assert_file_absent "$R/locks/remote"
cairn_q check "$R" --read-data

step "gc killed at random points; check stays clean and the next gc finishes"
for round in 1 2 3 4 5 6; do
	mkimg_raw "$T/r$round.raw" 4M dense "r$round"
	cairn_q backup "$R" --image "$T/r$round.raw" --name "r$round"
	[ "$round" -gt 1 ] && cairn_q forget "$R" --name "r$((round - 1))" --keep-tag none-such
	"$CAIRN" gc "$R" --max-unused 0 >/dev/null 2>&1 &
	pid=$!
	sleep "0.0$((RANDOM % 9))"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$R"/locks/* # the killed gc's lock (its pid is gone anyway)
	cairn_q check "$R"
	restore_check "$R" latest "$T/r$round.raw" --name "r$round"
done
cairn_q gc "$R"
cairn_q check "$R" --read-data
restore_check "$R" latest "$T/keep.raw" --name keep
restore_check "$R" latest "$T/r6.raw" --name r6

step "temporary files of writers that crashed mid-put: gc removes those older than a day"
pack=$(list_packs "$R" | head -1)
cp "$pack" "$(dirname "$pack")/.tmp-0123456789abcdef"
echo partial >"$R/.tmp-00000000000000aa"
echo partial >"$R/index/.tmp-00000000000000bb"
touch -d '2 days ago' "$(dirname "$pack")/.tmp-0123456789abcdef" "$R/.tmp-00000000000000aa"
cairn_q gc "$R"
grep -q "removed 2 temporary objects left by crashed writers" "$T/last.out" ||
	die "gc did not report the stale temporary files: $(cat "$T/last.out")"
assert_file_absent "$(dirname "$pack")/.tmp-0123456789abcdef"
assert_file_absent "$R/.tmp-00000000000000aa"
[ -f "$R/index/.tmp-00000000000000bb" ] || die "gc removed a temporary file that a running writer may own"
cairn_q check "$R"
pass
