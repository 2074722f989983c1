#!/bin/bash
# gc beside running backups: each round three backups of different images
# (each changed since the last round) run at once with a forget and a gc
# started at random moments; afterwards check --read-data is clean and
# every snapshot that is still listed restores byte-identical to the image
# it was taken from. Repeated with new random timing.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R" --chunk-size 64K
ROUNDS=${GC_ROUNDS:-6}
for v in a b c; do mkimg_raw "$T/$v.raw" 12M dense "$v-0"; done

# keep the image content each snapshot was taken from: snapshot id -> copy
backup_one() { # NAME ROUND
	local out
	out=$("$CAIRN" backup "$R" --image "$T/$1-$2.raw" --name "$1" --json) || return 1
	cp "$T/$1-$2.raw" "$T/snap-$(echo "$out" | json 'j["snapshot"]')"
}

for round in $(seq 1 "$ROUNDS"); do
	step "round $round"
	for v in a b c; do
		cp "$T/$v.raw" "$T/$v-$round.raw"
		# a few scattered changes, and some chunks shared with other rounds
		for k in 1 2 3; do write_at "$T/$v-$round.raw" $(( (RANDOM % 180) * 65536 )) "$v-$round-$k" 65536; done
		cp "$T/$v-$round.raw" "$T/$v.raw"
	done
	pids=()
	for v in a b c; do
		(sleep "0.$((RANDOM % 5))"; backup_one "$v" "$round") &
		pids+=($!)
	done
	(
		sleep "0.$((RANDOM % 8))"
		"$CAIRN" forget "$R" --all --keep-last 2 >/dev/null
		sleep "0.$((RANDOM % 3))"
		"$CAIRN" gc "$R" --max-unused 0 >"$T/gc-$round.out" 2>&1
	) &
	pids+=($!)
	for p in "${pids[@]}"; do wait "$p" || die "round $round: a backup, forget or gc failed: $(cat "$T/gc-$round.out" 2>/dev/null)"; done
	cairn_q check "$R" --read-data
	for id in $("$CAIRN" snapshots "$R" --json | json '" ".join(x["id"] for x in j)'); do
		[ -e "$T/snap-$id" ] || die "snapshot $id has no source copy"
		cairn_q restore "$R" "$id" --to "$T/r.raw" --force
		cmp -s "$T/r.raw" "$T/snap-$id" || die "round $round: snapshot ${id:0:12} restores different data"
	done
done
step "a final gc with nothing running empties every condemned list"
cairn_q gc "$R"
[ -z "$(ls -A "$R/gc" 2>/dev/null)" ] || die "condemned lists left: $(ls "$R/gc")"
cairn_q check "$R" --read-data
pass
