#!/bin/bash
# A damaged manifest on S3 (issue 16), against a real Ceph RADOS Gateway:
# dated by the store's Last-Modified, so `latest` refuses past it naming
# its write time, and a later backup is latest again (a damaged manifest
# does not block `latest` forever).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
rgw_start
U=$CAIRN_TEST_S3_URL/d
E=$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET/d

mkimg_raw "$T/a1.raw" 1M dense seed-one
cp "$T/a1.raw" "$T/a2.raw"; write_at "$T/a2.raw" 4096 seed-two 70000
cp "$T/a1.raw" "$T/a3.raw"; write_at "$T/a3.raw" 500000 seed-three 70000

step "two backups, then one byte of the newest manifest flipped in the bucket"
cairn_q init "$U" --encryption none --chunk-size 64K
for i in 1 2; do cp "$T/a$i.raw" "$T/a.raw"; cairn_q backup "$U" --image "$T/a.raw"; done
new=$(snap_id "$U")
rgw_curl -o "$T/m" "$E/snapshots/$new"
flip_byte "$T/m" 30
rgw_curl -X PUT --data-binary @"$T/m" "$E/snapshots/$new" >/dev/null

step "latest refuses, naming it with the time the store wrote it"
expect_fail 3 "$CAIRN" restore "$U" latest --to "$T/x.raw"
assert_msg_matches "snapshot ${new:0:12} \\(written 20[0-9-]+T[0-9:]+Z\\) is damaged"
assert_msg_matches "latest-readable"
restore_check "$U" latest-readable "$T/a1.raw"
cairn_q snapshots "$U" --json
assert_eq "$(json '[x["damaged"] for x in j if x["id"] == "'"$new"'"]' <"$T/last.out")" "[true]" \
	"snapshots --json row of the damaged manifest"

step "a later backup is latest again; the damage is still named"
sleep 1 # Last-Modified has whole seconds
cp "$T/a3.raw" "$T/a.raw"; cairn_q backup "$U" --image "$T/a.raw"
restore_check "$U" latest "$T/a3.raw"
grep -q "${new:0:12}.*damaged" "$T/last.err" || die "restore latest does not name the damaged manifest"
pass
