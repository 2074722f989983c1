# shell=bash
# gc beside running backups, shared by t_gc_concurrent.sh (local) and
# t_gc_concurrent_s3.sh (Ceph RGW). Source after lib.sh.
#
#   gc_concurrent REPO ROUNDS LIST_GC [IMAGE_MIB]
#
# Each round three backups of different images (each changed since the
# last round) run at once with a forget and a gc started at random
# moments; afterwards check --read-data is clean and every snapshot that
# is still listed restores byte-identical to the image it was taken from.
# A final gc with nothing running must leave no condemned list: LIST_GC is
# a command that prints the names under the repository's gc/.

gc_concurrent() {
	local R=$1 rounds=$2 list_gc=$3 mib=${4:-12} round v k p id pids
	cairn_q init "$R" --chunk-size 64K
	for v in a b c; do mkimg_raw "$T/$v.raw" "${mib}M" dense "$v-0"; done
	for round in $(seq 1 "$rounds"); do
		step "round $round"
		for v in a b c; do
			cp "$T/$v.raw" "$T/$v-$round.raw"
			# a few scattered changes, and some chunks shared with other rounds
			for k in 1 2 3; do write_at "$T/$v-$round.raw" $(((RANDOM % (mib * 16 - 1)) * 65536)) "$v-$round-$k" 65536; done
			cp "$T/$v-$round.raw" "$T/$v.raw"
		done
		pids=()
		for v in a b c; do
			(sleep "0.$((RANDOM % 5))"; _gc_backup_one "$R" "$v" "$round") &
			pids+=($!)
		done
		(
			sleep "0.$((RANDOM % 8))"
			"$CAIRN" forget "$R" --all --keep-last 2 >/dev/null
			sleep "0.$((RANDOM % 3))"
			"$CAIRN" gc "$R" --max-unused 0 >"$T/gc-$round.out" 2>&1
		) &
		pids+=($!)
		for p in "${pids[@]}"; do
			wait "$p" || die "round $round: a backup, forget or gc failed: $(cat "$T/gc-$round.out" 2>/dev/null)"
		done
		cairn_q check "$R" --read-data
		for id in $("$CAIRN" snapshots "$R" --json | json '" ".join(x["id"] for x in j)'); do
			[ -e "$T/snap-$id" ] || die "snapshot $id has no source copy"
			cairn_q restore "$R" "$id" --to "$T/r.raw" --force
			cmp -s "$T/r.raw" "$T/snap-$id" || die "round $round: snapshot ${id:0:12} restores different data"
		done
	done
	step "a final gc with nothing running empties every condemned list"
	cairn_q gc "$R"
	[ -z "$($list_gc)" ] || die "condemned lists left: $($list_gc)"
	cairn_q check "$R" --read-data
}

# keeps the image content each snapshot was taken from: snapshot id -> copy
_gc_backup_one() { # REPO NAME ROUND
	local out
	out=$("$CAIRN" backup "$1" --image "$T/$2-$3.raw" --name "$2" --json) || return 1
	cp "$T/$2-$3.raw" "$T/snap-$(echo "$out" | json 'j["snapshot"]')"
}
