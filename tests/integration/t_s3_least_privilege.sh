#!/bin/bash
# Least-privilege storage credentials (docs/storage-permissions.md) against
# a real Ceph RGW: a versioned bucket owned by the trusted user, a per-host
# RGW user under the bucket policy printed in that document (taken from it,
# so the document cannot drift from what is tested). With the host's
# credentials: backups and a second backup deduplicating against the first
# work, snapshots lists them; the gateway refuses (403) deleting a pack, an
# index file, a manifest or any version, suspending versioning, replacing
# the policy and writing config or keys/; forget and gc fail and remove
# nothing; deleting a lock is allowed; check runs, saying it cannot look
# for overwrites. An overwrite of a pack and of a
# manifest by the host is found by check on the trusted node, which puts
# the originals back (exit 3 once, clean after), and every snapshot then
# restores byte-identical.
# The repository is a host-keys one (docs/design.md section 26), so the
# hosts hold key files that can only add and no password: two hosts with
# their own key files back up into it, a host's restore is refused with the
# host-key line, and the password restores both hosts' images.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
rgw_start
export CAIRN_S3_RETRIES=1
EP=$CAIRN_TEST_S3_ENDPOINT
BUCKET=backups
PREFIX=fleet
B=$EP/$BUCKET
U=s3:$B/$PREFIX
HOST_USER=host-kvm01
HOST_KEY=CAIRNHOSTKVM01ACCESS1
HOST_SECRET=hostKvm01Secret0123456789abcdefghijklmno

REFUSAL='this is a host key: it can only add backups; restores, forget, gc and key changes need the repository password or a full key'
# as_host CMD... — run with the host's storage credentials and its host key
# file (kvm01's, or HOST_KEYFILE's), no password
as_host() {
	(
		export AWS_ACCESS_KEY_ID=$HOST_KEY AWS_SECRET_ACCESS_KEY=$HOST_SECRET
		export CAIRN_KEY_FILE=${HOST_KEYFILE:-$T/kvm01.key}
		unset CAIRN_PASSWORD
		"$@"
	)
}
# host_curl ARGS... — curl signed with the host's credentials
host_curl() {
	curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$HOST_KEY:$HOST_SECRET" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
# host_status METHOD URL [curl args] — the HTTP status the host gets
host_status() {
	local m=$1 u=$2
	shift 2
	host_curl -o /dev/null -w '%{http_code}' -X "$m" "$@" "$u"
}
urlq() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
keys() {
	rgw_curl -f "$B?list-type=2&max-keys=1000&prefix=$(urlq "$PREFIX/$1")" |
		python3 -c 'import re,sys; print("\n".join(re.findall(r"<Key>([^<]*)</Key>", sys.stdin.read())))'
}

step "a versioned bucket of the trusted user, a host user under the documented policy"
rgw_curl -f -X PUT "$B" >/dev/null
rgw_curl -f -X PUT "$B?versioning=" -d '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>' >/dev/null
radosgw-admin -c "$RGW_DIR/ceph.conf" user create --uid "$HOST_USER" --display-name kvm01 \
	--access-key "$HOST_KEY" --secret-key "$HOST_SECRET" >/dev/null 2>&1
sed -n '/<!-- policy begin -->/,/<!-- policy end -->/p' "$TOP_DIR/docs/storage-permissions.md" |
	sed '1,2d;$d' | sed '$d' | sed 's|user/cairn-admin|user/cairn-test|' >"$T/policy.json"
python3 -m json.tool "$T/policy.json" >/dev/null || die "the documented policy is not JSON"
grep -q 'arn:aws:iam:::user/host-kvm01' "$T/policy.json" && grep -q 'user/cairn-test' "$T/policy.json" ||
	die "policy extraction failed"
rgw_curl -f -X PUT -T "$T/policy.json" "$B?policy=" >/dev/null
# the host sees nothing of other buckets
[ "$(host_status GET "$EP/$CAIRN_TEST_S3_BUCKET?list-type=2")" = 403 ] ||
	die "the host user can list a bucket the policy does not name"

step "trusted node: init with host keys, two host key files; host: backups and a deduplicated second backup"
cairn_q init "$U" --host-keys
cairn_q key add-host "$U" kvm01 --out "$T/kvm01.key"
cairn_q key add-host "$U" kvm02 --out "$T/kvm02.key"
mkimg_raw "$T/a.raw" 16M dense seed-a
mkimg_raw "$T/b.raw" 6M dense seed-b
as_host "$CAIRN" backup "$U" --image "$T/a.raw" --name a --json >"$T/b1.json" 2>"$T/last.err" ||
	{ cat "$T/last.err"; die "host backup refused"; }
ida1=$(json 'j["snapshot"]' <"$T/b1.json")
cp "$T/a.raw" "$T/a1.raw"
write_at "$T/a.raw" 3145728 change-1 1048576
as_host "$CAIRN" backup "$U" --image "$T/a.raw" --name a --json >"$T/b2.json" 2>"$T/last.err" ||
	{ cat "$T/last.err"; die "host's second backup refused"; }
ida2=$(json 'j["snapshot"]' <"$T/b2.json")
new=$(json 'j["new_bytes"]' <"$T/b2.json")
[ "$new" -lt 4194304 ] || die "the second backup stored $new new bytes: no deduplication"
HOST_KEYFILE=$T/kvm02.key as_host "$CAIRN" backup "$U" --image "$T/b.raw" --name b --json >"$T/b3.json" 2>"$T/last.err" ||
	{ cat "$T/last.err"; die "the second host's backup refused"; }
idb=$(json 'j["snapshot"]' <"$T/b3.json")
cairn_q snapshots "$U" --json
assert_eq "$(json '[s.get("host_key") for s in j]' <"$T/last.out")" '["kvm01", "kvm01", "kvm02"]' "host keys recorded in the manifests"
as_host cairn_q snapshots "$U"
grep -q "${ida2:0:8}" "$T/last.out" || die "snapshots with the host's credentials misses ${ida2:0:8}"
[ -z "$(keys locks/)" ] || die "a host backup left its lock"

step "the gateway refuses the host's destructive requests"
pack=$(keys data/ | sed -n 1p)
idx=$(keys index/ | sed -n 1p)
man=$PREFIX/snapshots/$ida1
[ -n "$pack" ] && [ -n "$idx" ] || die "no pack or index file listed"
for k in "$pack" "$idx" "$man"; do
	got=$(host_status DELETE "$B/$k")
	[ "$got" = 403 ] || die "the host's DELETE of $k answered $got, expected 403"
done
vid=$(rgw_curl -f "$B?prefix=$(urlq "$pack")&versions=" | grep -o '<VersionId>[^<]*' | sed -n 1p | cut -d'>' -f2)
[ -n "$vid" ] || die "no version of $pack"
got=$(host_status DELETE "$B/$pack?versionId=$vid")
[ "$got" = 403 ] || die "the host's DELETE of a version answered $got"
got=$(host_status PUT "$B?versioning=" -d '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Suspended</Status></VersioningConfiguration>')
[ "$got" = 403 ] || die "the host could suspend versioning ($got)"
got=$(host_status PUT "$B?policy=" -T "$T/policy.json")
[ "$got" = 403 ] || die "the host could replace the policy ($got)"
echo junk >"$T/junk.txt"
for k in "$PREFIX/config" "$PREFIX/keys/0000" "$PREFIX/gc/0000"; do
	got=$(host_status PUT "$B/$k" -T "$T/junk.txt")
	[ "$got" = 403 ] || die "the host's PUT of $k answered $got, expected 403"
done
# a lock it may remove
host_curl -f -X PUT -T "$T/junk.txt" "$B/$PREFIX/locks/dead" >/dev/null
got=$(host_status DELETE "$B/$PREFIX/locks/dead")
[ "$got" = 204 ] || die "the host's DELETE of a lock answered $got, expected 204"
rgw_curl -f "$B/$pack" -o "$T/pack.orig"
rgw_curl -f "$B/$man" -o "$T/man.orig"

step "with its host key a host cannot restore"
_run_capture as_host "$CAIRN" restore "$U" "$ida1" --to "$T/stolen.raw"
[ "$FAIL_RC" -ne 0 ] && grep -qF "$REFUSAL" "$T/fail.err" || die "a host key restored ($FAIL_RC): $(cat "$T/fail.err")"
[ ! -e "$T/stolen.raw" ] || die "a refused restore left $T/stolen.raw"

step "forget and gc with the host's credentials remove nothing"
# garbage for gc: a snapshot the trusted node forgets
mkimg_raw "$T/c.raw" 3M dense seed-c
as_host cairn_q backup "$U" --image "$T/c.raw" --name c
as_host cairn_q backup "$U" --image "$T/b.raw" --name c
cairn_q forget "$U" --name c --keep-last 1
before=$(keys "" | grep -v '/locks/' | sort)
expect_fail_any "1 3" as_host "$CAIRN" forget "$U" --keep-last 1 --all
expect_fail_any "1 3" as_host "$CAIRN" gc "$U"
rgw_curl -f -X DELETE "$B/$PREFIX/locks/$(keys locks/ | sed -n 1p | sed 's|.*/||')" >/dev/null 2>&1 || true
after=$(keys "" | grep -v '/locks/' | sort)
[ "$before" = "$after" ] || die "forget or gc with host credentials changed the repository"

step "check with the host's credentials: structure only, the version scan left to the trusted node"
as_host cairn_q check "$U"
grep -q "overwritten objects not looked for: these credentials may not list object versions" "$T/last.err" ||
	die "no notice of the skipped scan: $(cat "$T/last.err")"

step "the host overwrites a pack and a manifest: check puts the originals back"
head -c 70000 /dev/urandom >"$T/garbage"
host_curl -f -X PUT -T "$T/garbage" "$B/$pack" >/dev/null
host_curl -f -X PUT -T "$T/garbage" "$B/$man" >/dev/null
expect_fail 3 "$CAIRN" check "$U"
grep -q "${pack#$PREFIX/}: overwritten; put back its older version" "$T/fail.err" || die "check did not put back $pack"
grep -q "${man#$PREFIX/}: overwritten; put back" "$T/fail.err" || die "check did not put back $man"
rgw_curl -f "$B/$pack" | cmp -s - "$T/pack.orig" || die "$pack is not the original again"
rgw_curl -f "$B/$man" | cmp -s - "$T/man.orig" || die "$man is not the original again"
cairn_q check "$U" --read-data
restore_check "$U" "$ida1" "$T/a1.raw"
restore_check "$U" "$ida2" "$T/a.raw"
restore_check "$U" "$(snap_id "$U" b)" "$T/b.raw"
pass
