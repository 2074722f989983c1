#!/bin/bash
# Several writers at once (design.md §1: shared locks, content-named objects):
# parallel backups into one repository, some with identical data, all succeed
# and every snapshot restores; check --read-data is clean.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R" --chunk-size 64K
mkimg_raw "$T/a.raw" 40M dense seed-a
mkimg_raw "$T/b.raw" 40M dense seed-b
cp "$T/a.raw" "$T/a2.raw"                      # same data as a: races on the same chunks
mkimg_raw "$T/c.raw" 30M sparse seed-c

step "4 backups in parallel"
pids=()
for n in a b a2 c; do
	"$CAIRN" backup "$R" --image "$T/$n.raw" --name "$n" >"$T/$n.out" 2>"$T/$n.err" &
	pids+=($!)
	BG_PIDS+=($!)
done
i=0
for n in a b a2 c; do
	rc=0; wait "${pids[$i]}" || rc=$?
	[ $rc -eq 0 ] || die "parallel backup of $n exited $rc: $(cat "$T/$n.err")"
	i=$((i + 1))
done
assert_eq "$(snap_count "$R")" 4 "snapshots after 4 parallel backups"
assert_eq "$(find "$R/locks" -type f ! -name '.*' | wc -l)" 0 "locks left after parallel backups"

step "check and restore every snapshot"
cairn check "$R" --read-data
for n in a b a2 c; do restore_check "$R" latest "$T/$n.raw" --name "$n"; done

step "duplicates across writers are allowed but bounded"
cairn_q stats "$R" --json
stored=$(json 'j["stored_bytes"]' <"$T/last.out")
echo "  stored $stored bytes for 110 MiB of which 40 MiB is a duplicate"
# a and a2 may both store some chunks in a race, but never much more than
# a+b+c (40+40+~2 MiB) plus one extra copy of a
[ "$stored" -lt $((125 * 1048576)) ] || die "stored $stored bytes: duplicates not bounded"

step "a backup after the race stores nothing new"
cairn_q backup "$R" --image "$T/a.raw" --name a --json
assert_eq "$(json 'j["new_chunks"]' <"$T/last.out")" 0 "new chunks after the parallel run"

step "repair index while no one writes; then everything still restores"
cairn_q repair index "$R"
cairn_q check "$R" --read-data
for n in a b a2 c; do restore_check "$R" latest "$T/$n.raw" --name "$n"; done

step "restores run in parallel with a backup"
mkimg_raw "$T/d.raw" 40M dense seed-d
"$CAIRN" backup "$R" --image "$T/d.raw" --name d >"$T/d.out" 2>"$T/d.err" &
bp=$!; BG_PIDS+=("$bp")
restore_check "$R" latest "$T/b.raw" --name b
wait $bp || die "backup of d running alongside a restore failed: $(cat "$T/d.err")"
restore_check "$R" latest "$T/d.raw" --name d
cairn_q check "$R" --read-data
pass
