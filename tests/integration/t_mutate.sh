#!/bin/bash
# Damage is never silent (issue 16). First the case as a user meets it: two
# backups, one byte of the newest manifest flipped: `restore latest` refuses
# naming it, the older one is restored only when chosen on purpose (its id or
# latest-readable), `snapshots` lists the damaged one. Then a mutation run
# over small real plain and encrypted repositories (tests/integration/
# mutate.py): every object kind damaged in place, and hostile index files
# and manifests under their new hashes; every read command on each mutant
# must not crash, hang, fail without one line, or exit 0 with wrong bytes.
# CAIRN_MUTANTS (per repository) and CAIRN_MUTATE_SEED widen the run.
. "$(dirname "$0")/lib.sh"
command -v zstd >/dev/null || { echo "SKIP: zstd (the command) is not installed"; exit 0; }

mkimg_raw "$T/a1.raw" 1M+4096 dense seed-one
cp "$T/a1.raw" "$T/a2.raw"
write_at "$T/a2.raw" 300000 seed-two 70000

two_backups() { # two_backups REPO [init args] — snapshot a1, then a2, of name a
	local repo=$1
	shift
	cairn_q init "$repo" --chunk-size 64K "$@"
	cp "$T/a1.raw" "$T/a.raw"
	cairn_q backup "$repo" --image "$T/a.raw"
	cp "$T/a2.raw" "$T/a.raw"
	cairn_q backup "$repo" --image "$T/a.raw"
}

flip_newest() { # flip_newest REPO — one byte of the newest manifest, as dd would
	local m
	m=$1/snapshots/$(snap_id "$1")
	flip_byte "$m" $(( $(file_size "$m") / 2 ))
}

for enc in none aes-256-gcm; do
	step "[$enc] a flipped byte in the newest manifest: latest refuses, naming it"
	R=$T/issue-$enc
	two_backups "$R" --encryption "$enc"
	new=$(snap_id "$R")
	old=$("$CAIRN" snapshots "$R" --json | json '[x["id"] for x in sorted(j, key=lambda x: x["time_ns"])][0]')
	[ "$old" != "$new" ] || die "two snapshots expected"
	flip_newest "$R"
	expect_fail 3 "$CAIRN" restore "$R" latest --to "$T/x.raw"
	assert_msg_matches "snapshot ${new:0:12} \\(written [0-9T:Z-]+\\) is damaged"
	assert_msg_matches "latest-readable"
	assert_msg_matches "${old:0:12}"
	assert_file_absent "$T/x.raw"
	step "[$enc] the older one restores when chosen: by its id, or latest-readable"
	restore_check "$R" "$old" "$T/a1.raw"
	restore_check "$R" latest-readable "$T/a1.raw"
	grep -q "${new:0:12}.*damaged" "$T/last.err" || die "latest-readable does not name the damaged manifest"
	cairn_q restore "$R" latest-readable --to "$T/y.raw" --json
	assert_eq "$(json 'any("'"${new:0:12}"'" in w for w in j["warnings"])' <"$T/last.out")" true \
		"restore --json warnings name the damaged manifest"
	rm -f "$T/y.raw"
	step "[$enc] snapshots lists it as damaged, on stderr and in --json"
	cairn_q snapshots "$R"
	grep -q "^${new:0:12} .*DAMAGED" "$T/last.out" || die "snapshots shows no DAMAGED row"
	grep -q "${new:0:12}.*damaged" "$T/last.err" || die "snapshots says nothing on stderr"
	cairn_q snapshots "$R" --json
	assert_eq "$(json '[x["damaged"] for x in j if x["id"] == "'"$new"'"]' <"$T/last.out")" "[true]" \
		"snapshots --json row of the damaged manifest"
	step "[$enc] forget and replicate name it on stderr and in --json"
	cairn_q forget "$R" --keep-last 5 --all --dry-run --json
	grep -q "${new:0:12}.*damaged" "$T/last.err" || die "forget says nothing on stderr"
	assert_eq "$(json 'any("'"${new:0:12}"'" in w for g in j for w in (g.get("warnings") or []))' <"$T/last.out")" true \
		"forget --json names the damaged manifest"
	cairn_q init "$T/rep-$enc" --replica-of "$R"
	cairn_q replicate "$R" "$T/rep-$enc" --json
	grep -q "${new:0:12}.*damaged" "$T/last.err" || die "replicate says nothing on stderr"
	assert_eq "$(json 'any("'"${new:0:12}"'" in w for w in j["warnings"])' <"$T/last.out")" true \
		"replicate --json names the damaged manifest"
	step "[$enc] serve, mount, instant-restore and verify-boot refuse latest; latest-readable names it"
	for cmd in "serve $R latest --socket $T/nbd.sock" "mount $R latest $T/mnt" \
		"instant-restore $R latest --name cairn-t-never" "verify-boot $R latest"; do
		mkdir -p "$T/mnt"
		# shellcheck disable=SC2086 # the words of $cmd are the arguments
		expect_fail 3 "$CAIRN" $cmd
		assert_msg_matches "snapshot ${new:0:12} \\(written [0-9T:Z-]+\\) is damaged.*latest-readable"
	done
	[ ! -e "$T/nbd.sock" ] || die "a refused serve left a socket"
	cairn_q serve "$R" latest-readable --socket "$T/nbd.sock" --json
	at_exit "'$CAIRN' serve --stop --socket '$T/nbd.sock'"
	grep -q "${new:0:12}.*damaged" "$T/last.err" || die "serve latest-readable says nothing on stderr"
	assert_eq "$(json 'j["snapshot"] == "'"$old"'" and any("'"${new:0:12}"'" in w for w in j["warnings"])' <"$T/last.out")" \
		true "serve --json: the older snapshot, and a warning naming the damaged one"
	nbdcopy "nbd+unix:///?socket=$T/nbd.sock" "$T/served.raw"
	cmp "$T/served.raw" "$T/a1.raw" || die "serve latest-readable served other bytes than the older snapshot"
	cairn_q serve --stop --socket "$T/nbd.sock"
	rm -f "$T/served.raw"
	if command -v nbdfuse >/dev/null && [ -c /dev/fuse ]; then
		cairn_q mount "$R" latest-readable "$T/mnt" --json
		at_exit "'$CAIRN' umount '$T/mnt'"
		grep -q "${new:0:12}.*damaged" "$T/last.err" || die "mount latest-readable says nothing on stderr"
		assert_eq "$(json 'any("'"${new:0:12}"'" in w for w in j["warnings"])' <"$T/last.out")" true \
			"mount --json warnings name the damaged manifest"
		cmp "$T/mnt/$(json 'j["disk"]' <"$T/last.out")" "$T/a1.raw" || die "mount latest-readable shows other bytes"
		cairn_q umount "$T/mnt"
	fi
	expect_fail 3 "$CAIRN" restore "$R" "$new" --to "$T/x.raw"
	expect_fail 3 "$CAIRN" ls "$R" latest
	expect_fail 3 "$CAIRN" check "$R"
done

step "bit rot in the older manifest (its write time kept): latest still means the newest"
R=$T/rot
two_backups "$R" --encryption none
new=$(snap_id "$R")
old=$("$CAIRN" snapshots "$R" --json | json '[x["id"] for x in sorted(j, key=lambda x: x["time_ns"])][0]')
touch -r "$R/snapshots/$old" "$T/stamp"
flip_byte "$R/snapshots/$old" 20
touch -r "$T/stamp" "$R/snapshots/$old"
restore_check "$R" latest "$T/a2.raw"
grep -q "${old:0:12}.*damaged" "$T/last.err" || die "restore latest does not name the damaged older manifest"
step "the same damage freshly written (a time after the newest): latest refuses"
flip_byte "$R/snapshots/$old" 21
expect_fail 3 "$CAIRN" restore "$R" latest --to "$T/x.raw"
assert_msg_matches "${old:0:12}"
restore_check "$R" "$new" "$T/a2.raw"

step "mutation run"
seed=${CAIRN_MUTATE_SEED:-$(date +%s)}
count=${CAIRN_MUTANTS:-14}
echo "seed $seed, $count mutants per repository (CAIRN_MUTATE_SEED=$seed reruns this)"
for enc in none aes-256-gcm; do
	R=$T/pristine-$enc
	two_backups "$R" --encryption "$enc"
	cairn_q check "$R" --read-data
	new=$(snap_id "$R")
	old=$("$CAIRN" snapshots "$R" --json | json '[x["id"] for x in sorted(j, key=lambda x: x["time_ns"])][0]')
	mkdir -p "$T/work-$enc"
	python3 "$LIB_DIR/mutate.py" "$CAIRN" "$R" "$T/a1.raw" "$T/a2.raw" "$old" "$new" \
		"$T/work-$enc" "$seed" "$count" || die "mutation run on the $enc repository failed (seed $seed)"
done
pass
