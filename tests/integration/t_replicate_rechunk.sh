#!/bin/bash
# Replication between unrelated repositories (not made with --replica-of):
# other keys, other chunk sizes (smaller and larger), encrypted to plain.
# Every snapshot arrives with its name, time, tags and digest, restores
# byte-identical and checks clean; unchanged slots are taken from the
# previous copy (a 1-chunk change stores about a chunk); a second run
# copies nothing; --name filters; a damaged source chunk fails the run
# with one line and leaves no snapshot behind; a run killed mid-way leaves
# the destination consistent and the next run completes.
. "$(dirname "$0")/lib.sh"

S=$T/src
cairn_q init "$S" --chunk-size 256K
mkimg_raw "$T/a.raw" 24M+4097 sparse a
mkimg_raw "$T/b.raw" 6M dense b
cairn_q backup "$S" --image "$T/a.raw" --name vm-a --tag nightly
cp "$T/a.raw" "$T/a1.raw"
write_at "$T/a.raw" 3145728 a2 65536
cairn_q backup "$S" --image "$T/a.raw" --name vm-a
cp "$T/a.raw" "$T/a2.raw"
cairn_q backup "$S" --image "$T/b.raw" --name vm-b

# restore_all REPO: every vm-a snapshot equals the image it was taken from
restore_all() {
	local ids i=0
	ids=$("$CAIRN" snapshots "$1" --name vm-a --json | json '" ".join(x["id"] for x in j)')
	for id in $ids; do
		i=$((i + 1))
		restore_check "$1" "$id" "$T/a$i.raw"
	done
	assert_eq "$i" 2 "vm-a snapshots in $1"
	restore_check "$1" latest "$T/b.raw" --name vm-b
}

meta() { # REPO: name, time, tags of every snapshot
	"$CAIRN" snapshots "$1" --json |
		json '"\n".join("%s %s %s" % (x["name"], x["time"], ",".join(x.get("tags") or [])) for x in j)'
}

step "encrypted 256K -> plain 64K (smaller chunks)"
P=$T/plain64
cairn_q init "$P" --chunk-size 64K --encryption none
cairn_q replicate "$S" "$P" --json
assert_eq "$(json 'j["snapshots_copied"]' <"$T/last.out")" 3 "snapshots copied"
assert_eq "$(meta "$P")" "$(meta "$S")" "names, times and tags"
restore_all "$P"
cairn_q check "$P" --read-data

step "a second run copies nothing"
cairn_q replicate "$S" "$P" --json
assert_eq "$(json 'j["snapshots_copied"]' <"$T/last.out")" 0 "snapshots copied again"
assert_eq "$(json 'j["snapshots_present"]' <"$T/last.out")" 3 "snapshots present"

step "encrypted 256K -> encrypted 1M with another password (larger chunks), --verify"
E=$T/enc1m
echo other-password >"$T/other.pw"
CAIRN_PASSWORD=other-password cairn_q init "$E" --chunk-size 1M
cairn_q replicate "$S" "$E" --to-password-file "$T/other.pw" --name vm-a --verify --json
assert_eq "$(json 'j["snapshots_copied"]' <"$T/last.out")" 2 "vm-a snapshots copied (--name)"
export CAIRN_PASSWORD_SAVED=$CAIRN_PASSWORD
CAIRN_PASSWORD=other-password
i=0
for id in $("$CAIRN" snapshots "$E" --json | json '" ".join(x["id"] for x in j)'); do
	i=$((i + 1))
	restore_check "$E" "$id" "$T/a$i.raw"
done
assert_eq "$i" 2 "snapshots in $E"
cairn_q check "$E" --read-data
CAIRN_PASSWORD=$CAIRN_PASSWORD_SAVED

step "a new backup: its unchanged chunks are not read again"
write_at "$T/a.raw" 8388608 a3 4096
cp "$T/a.raw" "$T/a3.raw"
cairn_q backup "$S" --image "$T/a.raw" --name vm-a
before=$(repo_bytes "$P")
cairn_q replicate "$S" "$P" --json
assert_eq "$(json 'j["snapshots_copied"]' <"$T/last.out")" 1 "new snapshot copied"
grew=$(( $(repo_bytes "$P") - before ))
# one 64K chunk of new data plus the chunk map pages and the index
[ "$grew" -lt 200000 ] || die "a 4 KiB change made the plain copy grow by $grew bytes"
restore_check "$P" latest "$T/a3.raw" --name vm-a

step "a run killed mid-way: the destination stays consistent, the next run completes"
head -c 160M /dev/urandom >"$T/big.raw"
cairn_q backup "$S" --image "$T/big.raw" --name big
K=$T/killed
cairn_q init "$K" --encryption none --chunk-size 512K
"$CAIRN" replicate "$S" "$K" --name big 2>"$T/killed.err" &
run=$!
for i in $(seq 1 2000); do [ "$(count_packs "$K")" -ge 1 ] && break; sleep 0.01; done
kill -KILL "$run" 2>/dev/null || true
wait "$run" || true
assert_eq "$(snap_count "$K")" 0 "snapshots after the killed run"
cairn_q check "$K"
cairn_q replicate "$S" "$K" --name big --json
assert_eq "$(json 'j["snapshots_copied"]' <"$T/last.out")" 1 "snapshots copied by the next run"
cairn_q check "$K" --read-data
restore_check "$K" latest "$T/big.raw" --name big

step "a damaged source chunk: one line, no snapshot in the destination"
Q=$T/plain-b
cairn_q init "$Q" --encryption none --chunk-size 128K
for f in $(list_packs "$S"); do flip_byte "$f" 200; done
expect_fail 3 "$CAIRN" replicate "$S" "$Q"
assert_msg_matches "source: disk .*damaged"
assert_eq "$(snap_count "$Q")" 0 "snapshots after the failed run"
cairn_q check "$Q"
pass
