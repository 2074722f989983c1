#!/bin/bash
# Repositories on S3, against a real Ceph RADOS Gateway (rgw.sh): every
# repository command on an encrypted and an unencrypted repository, with
# listings of 3 keys a page (continuation tokens everywhere) and packs sent
# as multipart uploads; a restore on a "fresh host" (empty HOME, only URL,
# credentials and password); the layout read back with plain curl; wrong
# secret, unknown key, missing bucket; a pack deleted behind cairn's back;
# the gateway killed in the middle of a backup.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
rgw_start
# small pages and a low multipart threshold: the paths big repositories take
export CAIRN_S3_LIST_PAGE=3 CAIRN_S3_MULTIPART_THRESHOLD=6M
export CAIRN_S3_RETRIES=2 # faults fail within a second
U=$CAIRN_TEST_S3_URL
E=$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET

mkimg_raw "$T/a.raw" 24M+4097 sparse seed-a
mkimg_raw "$T/b.raw" 10M dense seed-b
mkimg_fs "$T/fs.img" 64M

# s3_keys PREFIX — every key under PREFIX (one page is plenty here)
s3_keys() {
	rgw_curl "$E?list-type=2&max-keys=1000&prefix=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")" |
		python3 -c 'import re,sys; print("\n".join(re.findall(r"<Key>([^<]*)</Key>", sys.stdin.read())))'
}

for R in enc plain; do
	step "$R: init"
	if [ $R = enc ]; then cairn_q init "$U/$R"; else cairn_q init "$U/$R" --encryption none; fi
	expect_fail 1 "$CAIRN" init "$U/$R"
	assert_msg_matches "already holds a repository"

	step "$R: backup, snapshots, ls, stats"
	cairn_q backup "$U/$R" --image "$T/a.raw" --name a
	cairn_q backup "$U/$R" --image "$T/b.raw" --name b --connections 2
	cairn_q backup "$U/$R" --image "$T/fs.img" --name fs
	cp "$T/a.raw" "$T/a2.raw"
	write_at "$T/a2.raw" 3000000 seed-change 70000
	cairn_q backup "$U/$R" --image "$T/a2.raw" --name a --json
	[ "$(json 'j["new_chunks"]' <"$T/last.out")" -le 2 ] || die "incremental stored $(json 'j["new_chunks"]' <"$T/last.out") chunks for a 70 KB change"
	assert_eq "$(snap_count "$U/$R")" 4 "snapshots in $R"
	cairn_q ls "$U/$R" latest --name fs
	cairn_q stats "$U/$R"

	step "$R: restore byte-identical"
	restore_check "$U/$R" latest "$T/a2.raw" --name a
	restore_check "$U/$R" latest "$T/b.raw" --name b --limit-download 40M
	restore_check "$U/$R" latest "$T/fs.img" --name fs
	old=$("$CAIRN" snapshots "$U/$R" --json | json '[s["id"] for s in j if s["name"] == "a"][0]')
	restore_check "$U/$R" "$old" "$T/a.raw"

	step "$R: check, forget, gc, repair index"
	cairn_q check "$U/$R"
	cairn_q check "$U/$R" --read-data
	cairn_q forget "$U/$R" --name a --keep-last 1
	assert_eq "$(snap_count "$U/$R")" 3 "snapshots after forget"
	# packs go in DeleteObjects batches, not a DELETE each (the gateway's log)
	mark=$(wc -l <"$RGW_DIR/log/client.rgw.log")
	cairn_q gc "$U/$R" --max-unused 0 --json
	[ "$(json 'j["packs_deleted"]' <"$T/last.out")" -ge 1 ] || die "gc deleted no pack: $(cat "$T/last.out")"
	sleep 1 # the gateway writes its log from a thread of its own
	tail -n +$((mark + 1)) "$RGW_DIR/log/client.rgw.log" >"$T/gc-requests.log"
	grep -q "\"POST /$CAIRN_TEST_S3_BUCKET?delete" "$T/gc-requests.log" ||
		die "gc sent no DeleteObjects: $(grep -E '"(POST|DELETE) ' "$T/gc-requests.log" | head -5)"
	assert_eq "$(grep -cE '"DELETE /[^ ]*/data/' "$T/gc-requests.log" || true)" 0 "packs deleted one request each"
	cairn_q repair index "$U/$R"
	cairn_q check "$U/$R" --read-data
	restore_check "$U/$R" latest "$T/a2.raw" --name a
done

step "fresh host: only the URL, the credentials (a profile) and the password"
mkdir -p "$T/fresh/.aws"
printf '[offsite]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$T/fresh/.aws/credentials"
fresh() { env -i PATH="$PATH" HOME="$T/fresh" XDG_CACHE_HOME="$T/fresh/cache" AWS_PROFILE=offsite \
	CAIRN_PASSWORD=testpass "$CAIRN" "$@"; }
fresh restore "$U/enc" latest --name fs --to "$T/fresh/fs.img" >/dev/null
assert_same "$T/fs.img" "$T/fresh/fs.img"
# serve (instant recovery, mount): the nbdkit plugin reads S3 too
if command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null; then
	fresh serve "$U/enc" latest --name fs --socket "$T/fresh/nbd.sock" --connections 2 >/dev/null ||
		die "serve from S3 failed"
	at_exit "'$CAIRN' serve --stop --socket '$T/fresh/nbd.sock' >/dev/null 2>&1"
	nbdcopy "nbd+unix:///?socket=$T/fresh/nbd.sock" "$T/fresh/served.img"
	assert_same "$T/fs.img" "$T/fresh/served.img"
	cairn_q serve --stop --socket "$T/fresh/nbd.sock"
fi
fresh check "$U/enc" --read-data >/dev/null
expect_fail 4 env -i PATH="$PATH" HOME="$T/fresh" AWS_PROFILE=offsite CAIRN_PASSWORD=wrong \
	"$CAIRN" snapshots "$U/enc"

step "the layout is plain S3 (curl --aws-sigv4)"
keys=$(s3_keys enc/)
for k in enc/config enc/keys/ enc/index/ enc/snapshots/ "enc/data/[0-9a-f][0-9a-f]/[0-9a-f]{64}$"; do
	grep -Eq "^$k" <<<"$keys" || die "no key matching $k in the bucket: $keys"
done
rgw_curl -f "$E/enc/config" >"$T/config.json"
assert_eq "$(json 'j["version"]' <"$T/config.json")" 1 "config version"
assert_eq "$(json 'j["encryption"]' <"$T/config.json")" aes-256-gcm "config encryption"
pack=$(grep -E '^enc/data/' <<<"$keys" | head -n 1)
rgw_curl -f "$E/$pack" | sha256sum | grep -q "^${pack##*/} " || die "$pack does not hash to its name"
[ -z "$(grep -E '(^|/)\.tmp' <<<"$keys")" ] || die "temporary objects in the bucket"
rgw_curl -f "$E?uploads=" | grep -q '<Upload>' && die "unfinished multipart uploads left"

step "wrong secret, unknown key, missing bucket, missing credentials: one clear line"
expect_fail 1 env AWS_SECRET_ACCESS_KEY=wrong-secret "$CAIRN" snapshots "$U/enc"
assert_msg_matches "SignatureDoesNotMatch"
assert_msg_matches "127\.0\.0\.1:$RGW_PORT/$CAIRN_TEST_S3_BUCKET"
grep -q wrong-secret <<<"$FAIL_ERR" && die "the secret appears in the message"
expect_fail 1 env AWS_ACCESS_KEY_ID=NOSUCHKEY "$CAIRN" snapshots "$U/enc"
assert_msg_matches "InvalidAccessKeyId"
expect_fail 1 "$CAIRN" init "$CAIRN_TEST_S3_URL-missing/r"
assert_msg_matches "bucket $CAIRN_TEST_S3_BUCKET-missing does not exist"
expect_fail 1 env -u AWS_ACCESS_KEY_ID HOME="$T" "$CAIRN" snapshots "$U/enc"
assert_msg_matches "no S3 credentials"
expect_fail 1 "$CAIRN" snapshots "$U/nothing-here"
assert_msg_matches "not a cairn repository"

step "a pack deleted behind cairn's back: check names it"
cairn_q init "$U/dmg" --encryption none
cairn_q backup "$U/dmg" --image "$T/b.raw"
pack=$(s3_keys dmg/data/ | head -n 1)
rgw_curl -f -X DELETE "$E/$pack"
expect_fail_any 3 "$CAIRN" check "$U/dmg"
grep -q "${pack##*/}" "$T/fail.out" "$T/fail.err" || die "check does not name the deleted pack ${pack##*/}: $(cat "$T/fail.out")"

step "the gateway killed in the middle of a backup"
cairn_q init "$U/kill"
mkimg_raw "$T/big.raw" 96M dense seed-big
"$CAIRN" backup "$U/kill" --image "$T/big.raw" --limit-upload 12M >"$T/kill.out" 2>"$T/kill.err" &
pid=$!
BG_PIDS+=("$pid")
# a loaded machine may take many seconds to the first pack: wait for it
# as long as the backup runs
for _ in $(seq 1 1200); do
	[ -n "$(s3_keys kill/data/)" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
[ -n "$(s3_keys kill/data/)" ] || die "no pack appeared (backup: $(cat "$T/kill.err"))"
rgw_stop_gateway
rc=0
wait "$pid" || rc=$?
echo "  backup exited $rc: $(cat "$T/kill.err")"
[ "$rc" -ne 0 ] || die "the backup succeeded without its gateway"
assert_eq "$(grep -vc '^cairn: warning:' "$T/kill.err")" 1 "error lines of the killed backup"
grep -q "127.0.0.1:$RGW_PORT" "$T/kill.err" || die "the error does not name the URL: $(cat "$T/kill.err")"
rgw_start_gateway
assert_eq "$(snap_count "$U/kill")" 0 "snapshots after the failed backup"
cairn_q backup "$U/kill" --image "$T/big.raw"
cairn_q check "$U/kill" --read-data
restore_check "$U/kill" latest "$T/big.raw"

step "replication from S3 to a local repository"
cairn_q init "$T/local" --replica-of "$U/enc"
cairn_q replicate "$U/enc" "$T/local" --connections 3
restore_check "$T/local" latest "$T/fs.img" --name fs

pass "RGW up in ${RGW_START_SECONDS}s"
