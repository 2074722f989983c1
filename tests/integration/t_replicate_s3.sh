#!/bin/bash
# Replication to and from S3, against a real Ceph RADOS Gateway (rgw.sh).
# t_replicate.sh proves the protocol on local directories and t_s3.sh every
# command on S3; this one proves what replication adds there:
#   - local -> S3 (encrypted, --replica-of), restore from S3 on a "fresh
#     host", S3 -> local with --verify; a second run sends nothing (its
#     --json counts, and the gateway's own access log: no PUT of any object);
#   - the bucket seen with plain curl: exactly the source's packs and
#     manifests under the documented keys, a pack's bytes equal to the local
#     file of the same name;
#   - the gateway stopped in the middle of a replication: one clear line, no
#     snapshot in the destination, the next run resumes without resending
#     what arrived, check --read-data passes, restores are identical;
#   - re-chunking from S3 into an unrelated repository reads by pack (GETs
#     counted in the gateway's access log);
#   - a backup straight to S3 cuts full packs (one PUT per 16 MiB);
#   - wrong secret, missing bucket, a pack deleted behind cairn's back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
export RGW_STORE_BYTES=$((2 * 1024 * 1024 * 1024))
rgw_start
export CAIRN_S3_RETRIES=2 # faults fail within a second or two
U=$CAIRN_TEST_S3_URL
E=$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET
RGW_LOG=$RGW_DIR/log/client.rgw.log

# s3_keys PREFIX — every key under PREFIX, in ListObjectsV2 pages of 1000
s3_keys() {
	local token="" page q
	while :; do
		q="list-type=2&max-keys=1000&prefix=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")"
		[ -n "$token" ] && q="continuation-token=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$token")&$q"
		page=$(rgw_curl -f "$E?$q")
		python3 -c 'import re,sys; print("\n".join(re.findall(r"<Key>([^<]*)</Key>", sys.stdin.read())))' <<<"$page" | sed '/^$/d'
		token=$(python3 -c 'import re,sys; m=re.search(r"<NextContinuationToken>([^<]*)<", sys.stdin.read()); print(m.group(1) if m else "")' <<<"$page")
		[ -n "$token" ] || break
	done
}

# log_mark / writes_since MARK PREFIX — requests that change objects, from the
# gateway's access log (beast: "PUT /bucket/key HTTP/1.1" status ...)
log_mark() { sleep 1; wc -l <"$RGW_LOG"; }
writes_since() {
	sleep 1 # the log is written by a thread of its own
	tail -n +$(($1 + 1)) "$RGW_LOG" | grep -E '"(PUT|POST|DELETE) /' | grep -F " /$CAIRN_TEST_S3_BUCKET/$2" || true
}

S=$T/src
cairn_q init "$S" --chunk-size 256K
mkimg_raw "$T/a1.raw" 24M+4097 sparse seed-a
mkimg_fs "$T/fs.img" 48M
mkimg_raw "$T/b.raw" 12M dense seed-b
cairn_q backup "$S" --image "$T/a1.raw" --name vm-a
cp "$T/a1.raw" "$T/a2.raw"
write_at "$T/a2.raw" 5000000 seed-a2 300000
cairn_q backup "$S" --image "$T/a2.raw" --name vm-a
cairn_q backup "$S" --image "$T/fs.img" --name vm-fs
cairn_q backup "$S" --image "$T/b.raw" --name vm-b

# restore_every REPO [env...]: each snapshot equals the image it was taken from
restore_every() {
	local repo=$1 id name i=0
	shift
	for name in vm-a vm-fs vm-b; do
		i=0
		for id in $("$CAIRN" snapshots "$S" --name $name --json | json '" ".join(x["id"] for x in j)'); do
			i=$((i + 1))
			case $name in vm-a) want=$T/a$i.raw ;; vm-fs) want=$T/fs.img ;; vm-b) want=$T/b.raw ;; esac
			rm -f "$T/r.raw"
			"$@" "$CAIRN" restore "$repo" "$id" --to "$T/r.raw" -q >/dev/null ||
				die "restore of $name snapshot $id from $repo failed"
			assert_same "$want" "$T/r.raw"
		done
	done
	rm -f "$T/r.raw"
}

step "local -> S3 with --replica-of: every snapshot, restores identical"
cairn_q init "$U/rep" --replica-of "$S"
cairn_q replicate "$S" "$U/rep" --connections 4 --json
assert_eq "$(json 'j["snapshots_copied"]' <"$T/last.out")" 4 "snapshots copied"
assert_eq "$(json 'j["packs_copied"]' <"$T/last.out")" "$(count_packs "$S")" "packs copied"
assert_eq "$(snap_count "$U/rep")" 4 "snapshots in the S3 replica"

step "fresh host: only the URL, the credentials and the password"
mkdir -p "$T/fresh"
fresh() { env -i PATH="$PATH" HOME="$T/fresh" XDG_CACHE_HOME="$T/fresh/cache" \
	AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
	CAIRN_PASSWORD=testpass "$@"; }
restore_every "$U/rep" fresh
fresh "$CAIRN" check "$U/rep" --read-data >/dev/null || die "check --read-data of the S3 replica failed"

step "again: nothing sent (counts, and no object written according to the gateway)"
mark=$(log_mark)
cairn_q replicate "$S" "$U/rep" --json
assert_eq "$(json 'j["bytes_copied"]' <"$T/last.out")" 0 "bytes sent the second time"
assert_eq "$(json 'j["packs_copied"]' <"$T/last.out")" 0 "packs sent the second time"
assert_eq "$(json 'j["snapshots_copied"]' <"$T/last.out")" 0 "snapshots sent the second time"
assert_eq "$(json 'j["snapshots_present"]' <"$T/last.out")" 4 "snapshots already there"
w=$(writes_since "$mark" rep/ | grep -v " /$CAIRN_TEST_S3_BUCKET/rep/locks/" || true)
[ -z "$w" ] || die "the second run wrote objects: $w"

step "the bucket through plain curl: the documented keys, the source's bytes"
keys=$(s3_keys rep/)
grep -qx rep/config <<<"$keys" || die "no rep/config"
grep -Eq '^rep/keys/[0-9a-f]{64}$' <<<"$keys" || die "no key file under rep/keys/"
grep -Eq '^rep/index/[0-9a-f]{64}$' <<<"$keys" || die "no index file under rep/index/"
(cd "$S" && find data -type f ! -name '.*' | sort) >"$T/src-packs"
grep -E '^rep/data/' <<<"$keys" | sed 's|^rep/||' | sort >"$T/s3-packs"
diff "$T/src-packs" "$T/s3-packs" >/dev/null || die "packs in the bucket differ from the source's: $(diff "$T/src-packs" "$T/s3-packs" | head -5)"
grep -Ev '^data/[0-9a-f]{2}/[0-9a-f]{64}$' "$T/s3-packs" && die "a data key is not data/XX/<64 hex>"
while read -r p; do
	[ "${p:5:2}" = "${p:8:2}" ] || die "$p: fan-out directory is not the id's first two hex digits"
done <"$T/s3-packs"
(cd "$S" && ls snapshots | sort) >"$T/src-snaps"
grep -E '^rep/snapshots/' <<<"$keys" | sed 's|^rep/snapshots/||' | sort >"$T/s3-snaps"
diff "$T/src-snaps" "$T/s3-snaps" >/dev/null || die "manifests in the bucket differ from the source's"
pack=$(head -n 1 "$T/s3-packs")
rgw_curl -f "$E/rep/$pack" -o "$T/pack.s3"
cmp "$T/pack.s3" "$S/$pack" || die "rep/$pack differs from $S/$pack"
rgw_curl -f "$E/rep/snapshots/$(head -n 1 "$T/s3-snaps")" -o "$T/snap.s3"
cmp "$T/snap.s3" "$S/snapshots/$(head -n 1 "$T/s3-snaps")" || die "a manifest differs from the source's"
rgw_curl -f "$E/rep/config" -o "$T/config.json"
assert_eq "$(json 'j["replica_of"]' <"$T/config.json")" "$(json 'j["id"]' <"$S/config")" "replica_of in the S3 config"
[ "$(json 'j["id"]' <"$T/config.json")" != "$(json 'j["id"]' <"$S/config")" ] || die "the replica has the source's id"

step "S3 -> local, with --verify: check --read-data, restores identical"
B=$T/back
cairn_q init "$B" --replica-of "$U/rep"
cairn_q replicate "$U/rep" "$B" --verify --json
assert_eq "$(json 'j["snapshots_copied"]' <"$T/last.out")" 4 "snapshots copied back"
assert_eq "$(json 'j["packs_verified"]' <"$T/last.out")" "$(count_packs "$S")" "packs verified"
cairn_q check "$B" --read-data
restore_every "$B"
for p in $(cat "$T/src-packs"); do cmp -s "$S/$p" "$B/$p" || die "$p differs after the round trip"; done

step "the gateway stopped in the middle of a replication, then started again"
S2=$T/src2
cairn_q init "$S2"
mkimg_raw "$T/big.raw" 320M dense seed-big
cairn_q backup "$S2" --image "$T/big.raw" --name big
cairn_q backup "$S2" --image "$T/b.raw" --name small
total=$(repo_bytes "$S2")
cairn_q init "$U/big" --replica-of "$S2"
"$CAIRN" replicate "$S2" "$U/big" --connections 2 --limit-upload 40M >"$T/kill.out" 2>"$T/kill.err" &
pid=$!
BG_PIDS+=("$pid")
for _ in $(seq 1 300); do
	[ "$(s3_keys big/data/ | wc -l)" -ge 4 ] && break
	sleep 0.1
done
[ "$(s3_keys big/data/ | wc -l)" -ge 4 ] || die "no packs arrived"
kill -0 "$pid" 2>/dev/null || die "the replication ended before the gateway was stopped"
rgw_stop_gateway
rc=0
wait "$pid" || rc=$?
echo "  replicate exited $rc: $(cat "$T/kill.err")"
[ "$rc" -ne 0 ] || die "the replication succeeded without its gateway"
assert_eq "$(grep -vc '^cairn: warning:' "$T/kill.err")" 1 "error lines of the interrupted replication"
grep -q "^cairn: .*127.0.0.1:$RGW_PORT" "$T/kill.err" || die "the error does not name the URL: $(cat "$T/kill.err")"
rgw_start_gateway
assert_eq "$(snap_count "$U/big")" 0 "snapshots after the interrupted replication"
cairn_q check "$U/big"
arrived=$(s3_keys big/data/ | wc -l)
cairn_q replicate "$S2" "$U/big" --connections 4 --json
sent=$(json 'j["bytes_copied"]' <"$T/last.out")
present=$(json 'j["packs_present"]' <"$T/last.out")
echo "  $arrived packs had arrived; the next run found $present there and sent $sent of $total bytes"
[ "$present" -ge 1 ] || die "the next run found none of the packs that had arrived"
[ "$sent" -lt "$total" ] || die "the next run sent everything again ($sent bytes)"
assert_eq "$(snap_count "$U/big")" 2 "snapshots after the next run"
cairn_q check "$U/big" --read-data
restore_check "$U/big" latest "$T/big.raw" --name big
restore_check "$U/big" latest "$T/b.raw" --name small

step "S3 -> an unrelated local repository (re-chunked): few GETs, by pack"
cairn_q init "$T/rc" --chunk-size 1M --encryption none
mark=$(log_mark)
cairn_q replicate "$U/big" "$T/rc" --json
gets=$(tail -n +$((mark + 1)) "$RGW_LOG" | grep -cF '"GET /'"$CAIRN_TEST_S3_BUCKET"'/big/data/' || true)
packs=$(s3_keys big/data/ | wc -l)
echo "  $gets GETs of packs for 332 MiB in $packs packs (one per chunk would be 1328)"
[ "$gets" -ge 1 ] && [ "$gets" -le $((packs + 8)) ] || die "$gets GETs to re-chunk $packs packs"
restore_check "$T/rc" latest "$T/big.raw" --name big
restore_check "$T/rc" latest "$T/b.raw" --name small
rm -rf "$T/rc"

step "a backup straight to S3 sends full packs: one PUT per 16 MiB"
cairn_q init "$U/direct" --encryption none
mark=$(log_mark)
cairn_q backup "$U/direct" --image "$T/big.raw" --connections 4
puts=$(writes_since "$mark" direct/data/ | wc -l)
packs=$(s3_keys direct/data/ | wc -l)
echo "  $puts pack PUTs for 320 MiB of incompressible data, $packs packs"
assert_eq "$puts" "$packs" "pack PUTs (one each, none retried)"
[ "$puts" -le 21 ] || die "$puts packs for 320 MiB: packs are cut short"
rm -f "$T/big.raw"

step "wrong secret, missing bucket: one line naming the URL and the cause"
expect_fail 1 env AWS_SECRET_ACCESS_KEY=wrong-secret "$CAIRN" replicate "$S" "$U/rep"
assert_msg_matches "SignatureDoesNotMatch"
assert_msg_matches "127\.0\.0\.1:$RGW_PORT/$CAIRN_TEST_S3_BUCKET"
grep -q wrong-secret <<<"$FAIL_ERR" && die "the secret appears in the message"
expect_fail 1 "$CAIRN" replicate "$S" "$U-missing/rep"
assert_msg_matches "bucket $CAIRN_TEST_S3_BUCKET-missing does not exist"
assert_msg_matches "NoSuchBucket"

step "a pack deleted from the bucket behind cairn's back: check names it"
victim=$(sed -n 2p "$T/s3-packs")
rgw_curl -f -X DELETE "$E/rep/$victim"
expect_fail_any 3 "$CAIRN" check "$U/rep"
grep -q "${victim##*/}" "$T/fail.out" "$T/fail.err" || die "check does not name the deleted pack ${victim##*/}: $(cat "$T/fail.out")"

pass "RGW up in ${RGW_START_SECONDS}s"
