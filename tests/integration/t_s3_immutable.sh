#!/bin/bash
# Immutable repositories (S3 Object Lock, docs/design.md section 20)
# against a real Ceph RGW: init --immutable refused without Object Lock
# and on a local directory; every data and metadata object locked in
# COMPLIANCE mode (multipart uploads too), transient ones not; forget of a
# locked snapshot marks it instead of deleting; gc keeps condemned packs
# under retention and says until when, deletes them (all versions, no
# delete marker) once it ends, and extends the retention of what kept
# snapshots use; cairn's own attempt to delete a locked object is refused
# by the server and reported on one line; a client with the credentials
# cannot delete a pack version (403), can hide one behind a delete marker
# (undone by deleting the marker) or overwrite it with a new version (check
# finds it and puts the original back as the current version). Afterwards check
# --read-data is clean and every snapshot restores byte-identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
rgw_start
export CAIRN_S3_MULTIPART_THRESHOLD=6M CAIRN_S3_RETRIES=2
EP=$CAIRN_TEST_S3_ENDPOINT
B=$EP/cairn-lock
U=s3:$B/repo
DAY=86400

# head_until KEY — the object's retain-until date (Unix seconds), or "none"
head_until() {
	local d
	d=$(rgw_curl -I "$B/$1" | tr -d '\r' | sed -n 's/^x-amz-object-lock-retain-until-date: //Ip')
	[ -n "$d" ] && date -u -d "$d" +%s || echo none
}
head_mode() {
	rgw_curl -I "$B/$1" | tr -d '\r' | sed -n 's/^x-amz-object-lock-mode: //Ip'
}
urlq() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
# keys PREFIX — current keys under repo/PREFIX
keys() {
	rgw_curl "$B?list-type=2&max-keys=1000&prefix=$(urlq "repo/$1")" |
		python3 -c 'import re,sys; print("\n".join(re.findall(r"<Key>([^<]*)</Key>", sys.stdin.read())))'
}
# has_key PREFIX NAME — a current key under repo/PREFIX contains NAME
has_key() {
	keys "$1" >"$T/keys.lst"
	grep -q -- "$2" "$T/keys.lst"
}
# versions KEY — "V id" per version, "M id" per delete marker
versions() {
	rgw_curl "$B?prefix=$(urlq "$1")&versions=" | python3 -c '
import re, sys
for kind, body in re.findall(r"<(Version|DeleteMarker)>(.*?)</\1>", sys.stdin.read()):
    if re.search(r"<Key>%s</Key>" % re.escape(sys.argv[1]), body):
        print(kind[0] if kind == "Version" else "M", re.search(r"<VersionId>([^<]*)", body).group(1))
' "$1"
}
# put_locked KEY FILE SECONDS — PUT with a COMPLIANCE retention
put_locked() {
	local md5 until
	md5=$(openssl dgst -md5 -binary "$2" | base64)
	until=$(date -u -d "@$(($(date +%s) + $3))" +%Y-%m-%dT%H:%M:%SZ)
	rgw_curl -f -X PUT -T "$2" -H "Content-MD5: $md5" -H "x-amz-object-lock-mode: COMPLIANCE" \
		-H "x-amz-object-lock-retain-until-date: $until" "$B/$1" >/dev/null
}
near() { # near A B SLACK — |A-B| <= SLACK
	[ $(($1 > $2 ? $1 - $2 : $2 - $1)) -le "$3" ]
}

step "init --immutable is refused where nothing can be locked"
expect_fail 1 "$CAIRN" init "$T/local" --immutable 7
assert_msg_matches "needs a repository on S3 with Object Lock"
[ ! -e "$T/local/config" ] || die "a refused init left a config"
expect_fail 1 "$CAIRN" init "$CAIRN_TEST_S3_URL/r" --immutable 7
assert_msg_matches "does not have S3 Object Lock enabled.*object-lock-enabled"
[ -z "$(rgw_curl "$EP/$CAIRN_TEST_S3_BUCKET?list-type=2" | grep -o '<Key>[^<]*' || true)" ] ||
	die "a refused init wrote objects"
expect_fail 2 "$CAIRN" init "$T/x" --immutable 0
expect_fail 2 "$CAIRN" init "$T/x" --immutable 3d

step "init --immutable 1 on a bucket with Object Lock"
rgw_curl -f -X PUT -H "x-amz-bucket-object-lock-enabled: true" "$B" >/dev/null
t0=$(date +%s)
cairn_q init "$U" --immutable 1 --encryption none
grep -q "locked for 1 days" "$T/last.out" || die "init does not say it is immutable: $(cat "$T/last.out")"
rgw_curl -f "$B/repo/config" | json 'j["immutable"]' >"$T/imm"
assert_eq "$(cat "$T/imm")" '{"days": 1, "mode": "COMPLIANCE"}' "config immutable field"
assert_eq "$(head_mode repo/config)" COMPLIANCE "config lock mode"
near "$(head_until repo/config)" $((t0 + DAY)) 30 || die "config locked until $(head_until repo/config), not a day from now"
cairn_q init "s3:$B/enc" --immutable 1 # key files are locked too
key=$(rgw_curl "$B?list-type=2&prefix=$(urlq enc/keys/)" | grep -o '<Key>[^<]*' | sed 's/<Key>//')
assert_eq "$(head_mode "$key")" COMPLIANCE "key file lock mode"

step "backups: every pack, index file and manifest is locked; locks are not"
mkimg_raw "$T/a.raw" 20M dense seed-a # 16 MiB packs: multipart uploads
mkimg_raw "$T/b.raw" 3M dense seed-b
cairn_q backup "$U" --image "$T/a.raw" --name a --json
ida1=$(json 'j["snapshot"]' <"$T/last.out")
cp "$T/a.raw" "$T/a1.raw"
for i in 2 3; do
	write_at "$T/a.raw" $((i * 3000000)) "change-$i" 300000
	cairn_q backup "$U" --image "$T/a.raw" --name a
	cp "$T/a.raw" "$T/a$i.raw"
done
cairn_q backup "$U" --image "$T/b.raw" --name b
for k in $(keys data/) $(keys index/) $(keys snapshots/); do
	assert_eq "$(head_mode "$k")" COMPLIANCE "lock mode of $k"
done
[ "$(keys data/ | wc -l)" -ge 3 ] || die "expected several packs"
big=$(rgw_curl "$B?list-type=2&prefix=$(urlq repo/data/)" | python3 -c '
import re,sys
s = sys.stdin.read()
print(max(re.findall(r"<Key>([^<]*)</Key><LastModified>[^<]*</LastModified><ETag>([^<]*)</ETag><Size>(\d+)", s), key=lambda x: int(x[2]))[1])')
case $big in *-*) ;; *) die "no pack went as a multipart upload (ETag $big)" ;; esac
# a lock object is plain: a lock held by a running command stays deletable
rgw_curl -f -X PUT --data-binary '{}' "$B/repo/locks/probe" >/dev/null
[ "$(head_until repo/locks/probe)" = none ] || die "a lock object is locked"
rgw_curl -f -X DELETE "$B/repo/locks/probe" >/dev/null

step "a stale lock rewritten by its heartbeat goes with all its versions"
lk=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
for t in 2026-01-01T00:00:00Z 2026-01-01T00:05:00Z; do
	printf '{"host":"%s","pid":999999999,"time":"2026-01-01T00:00:00Z","heartbeat":"%s","exclusive":false}' \
		"$(hostname)" "$t" >"$T/lock"
	rgw_curl -f -X PUT -T "$T/lock" "$B/repo/locks/$lk" >/dev/null
done
assert_eq "$(versions "repo/locks/$lk" | wc -l)" 2 "versions of the planted lock"
cairn_q gc "$U"
grep -q "removed stale lock of pid 999999999" "$T/last.err" || die "the stale lock was not removed: $(cat "$T/last.err")"
[ -z "$(versions "repo/locks/$lk")" ] || die "versions of a removed lock are left: $(versions "repo/locks/$lk")"
[ -z "$(keys locks/)" ] || die "locks left: $(keys locks/)"

step "forget of a locked snapshot marks it; gc keeps its manifest and says until when"
cairn_q forget "$U" --name a --keep-last 1
grep -q "cairn: warning: snapshots/$ida1: locked until .* by S3 Object Lock; gc removes it when the lock ends" "$T/last.err" ||
	die "forget did not report the lock: $(cat "$T/last.err")"
assert_eq "$(snap_count "$U")" 4 "snapshots after forgetting locked ones (still there)"
assert_eq "$(keys forgotten/ | wc -l)" 2 "forgotten markers"
[ "$(head_until "repo/forgotten/$ida1")" = none ] || die "a forgotten marker is locked"
cairn_q gc "$U" --max-unused 0 --json
assert_eq "$(json 'j["manifests_locked"]' <"$T/last.out")" 2 "gc: forgotten manifests kept"
assert_eq "$(json 'j["packs_deleted"]' <"$T/last.out")" 0 "gc: packs deleted"
assert_eq "$(snap_count "$U")" 4 "snapshots after gc"

step "gc keeps a condemned pack under retention, deletes one whose retention ended"
# packs no index lists, as a killed backup leaves them: made by a local
# repository with the same format (unencrypted, so blob ids agree)
cairn_q init "$T/L" --encryption none
mkimg_raw "$T/c.raw" 1M dense seed-c
mkimg_raw "$T/d.raw" 1M dense seed-d
mkimg_raw "$T/e.raw" 1M dense seed-e
# one_pack IMAGE — backs IMAGE up into L; prints "PACK INDEX" (the new ones)
one_pack() {
	local p0 i0
	p0=$(list_packs "$T/L") i0=$(find "$T/L/index" -type f | sort)
	cairn_q backup "$T/L" --image "$1" --name x
	echo "$(basename "$(comm -13 <(echo "$p0") <(list_packs "$T/L"))")" \
		"$(basename "$(comm -13 <(echo "$i0") <(find "$T/L/index" -type f | sort))")"
}
read -r o1 i1 < <(one_pack "$T/c.raw")
read -r o2 i2 < <(one_pack "$T/d.raw")
read -r o3 i3 < <(one_pack "$T/e.raw")
# o1: an orphan (no index file) under retention; o2: an orphan whose
# retention ends in 3 s; o3: a pack whose retention ends but whose index
# file stays locked (o2 comes with its index file i2, which runs out too)
put_locked "repo/data/${o1:0:2}/$o1" "$T/L/data/${o1:0:2}/$o1" $DAY
put_locked "repo/data/${o2:0:2}/$o2" "$T/L/data/${o2:0:2}/$o2" 3
put_locked "repo/index/$i2" "$T/L/index/$i2" 3
put_locked "repo/data/${o3:0:2}/$o3" "$T/L/data/${o3:0:2}/$o3" 3
put_locked "repo/index/$i3" "$T/L/index/$i3" $DAY
sleep 4
cairn gc "$U" --max-unused 0 | tee "$T/gc.out"
grep -q "kept 2 condemned packs and 2 forgotten manifests locked by S3 Object Lock until" "$T/gc.out" ||
	die "gc does not say what it kept"
has_key data/ "$o1" || die "gc deleted a pack under retention"
has_key data/ "$o3" || die "gc deleted a pack that a locked index file lists"
has_key index/ "$i3" || die "a locked index file vanished"
has_key data/ "$o2" && die "gc kept a pack whose retention had ended"
has_key index/ "$i2" && die "gc kept the index file of a deleted pack"
for k in "data/${o2:0:2}/$o2" "index/$i2"; do
	[ -z "$(versions "repo/$k")" ] || die "deleted $k left versions: $(versions "repo/$k")"
done
[ "$(keys gc/ | grep -vc '\.wait$')" -eq 1 ] || die "the condemned list of the locked packs is gone"
cairn_q check "$U" --read-data

step "gc extends the retention of what is in use, not of what is condemned or forgotten"
# a pack kept snapshots use: not one of the condemned o1, o3
p1=$(keys data/ | grep -v -e "$o1" -e "$o3" | sed -n 1p)
p_until=$(head_until "$p1")
m_until=$(head_until "repo/snapshots/$ida1")
o1_until=$(head_until "repo/data/${o1:0:2}/$o1")
cairn_q gc "$U" --json
assert_eq "$(json 'j["retention_extended"]' <"$T/last.out")" 0 "extensions with most of the retention left"
future=$(($(date +%s) + 13 * 3600)) # past half of the day: time to extend
CAIRN_TEST_NOW=$future cairn_q gc "$U" --json
n=$(json 'j["retention_extended"]' <"$T/last.out")
[ "$n" -gt 5 ] || die "gc extended $n objects"
near "$(head_until "$p1")" $((future + DAY)) 30 || die "pack $p1 locked until $(head_until "$p1"), expected $((future + DAY)) (was $p_until)"
near "$(head_until repo/config)" $((future + DAY)) 30 || die "config retention not extended"
assert_eq "$(head_until "repo/snapshots/$ida1")" "$m_until" "retention of a forgotten manifest"
assert_eq "$(head_until "repo/data/${o1:0:2}/$o1")" "$o1_until" "retention of a condemned pack"

step "cairn's own delete of a locked object is refused by the server, reported, and nothing is lost"
# a clock two days ahead: gc believes the retention is over, RGW does not
CAIRN_TEST_NOW=$(($(date +%s) + 2 * DAY)) cairn gc "$U" >"$T/gc2.out" 2>"$T/gc2.err" || die "gc failed: $(cat "$T/gc2.err")"
cat "$T/gc2.err"
grep -q "^cairn: warning: snapshots/$ida1: locked until .* by S3 Object Lock; kept for a later gc$" "$T/gc2.err" ||
	die "no clear message for the manifest"
grep -q "^cairn: warning: data/${o1:0:2}/$o1: locked until .* by S3 Object Lock; kept for a later gc$" "$T/gc2.err" ||
	die "no clear message for the pack"
grep -q "^cairn: warning: index/$i3: locked until .* by S3 Object Lock; its packs are kept for a later gc$" "$T/gc2.err" ||
	die "no clear message for the index file"
has_key data/ "$o1" || die "the locked pack vanished"
has_key data/ "$o3" || die "a pack a locked index file lists vanished"
[ -z "$(versions "repo/snapshots/$ida1" | grep '^M' || true)" ] || die "a delete marker hides a manifest"
assert_eq "$(snap_count "$U")" 4 "snapshots after the refused deletes"

step "a client with the credentials cannot delete a locked pack version"
p2=$(keys data/ | grep -v "$o1" | tail -n1)
vid=$(versions "$p2" | awk '$1 == "V" {print $2}')
code=$(rgw_curl -o "$T/del.xml" -w '%{http_code}' -X DELETE "$B/$p2?versionId=$vid")
assert_eq "$code" 403 "DELETE of a locked version"
grep -q AccessDenied "$T/del.xml" || die "403 without AccessDenied: $(cat "$T/del.xml")"

step "a delete marker hides a pack; deleting the marker brings it back"
rgw_curl -f -X DELETE "$B/$p2" >/dev/null
has_key data/ "$p2" && die "the hidden pack is still listed"
expect_fail 3 "$CAIRN" check "$U"
marker=$(versions "$p2" | awk '$1 == "M" {print $2}')
rgw_curl -f -X DELETE "$B/$p2?versionId=$marker" >/dev/null
cairn_q check "$U" --read-data

step "an overwritten pack is found by check, which puts the original back"
head -c 100000 /dev/urandom >"$T/junk"
rgw_curl -f -X PUT -T "$T/junk" "$B/$p2" >/dev/null
expect_fail 3 "$CAIRN" check "$U" --read-data
grep -q "${p2#repo/}: overwritten; put back its older version $vid" "$T/fail.err" ||
	die "check did not put back version $vid of $p2"
[ "$(rgw_curl -f "$B/$p2" | cmp - <(rgw_curl -f "$B/$p2?versionId=$vid") && echo same)" = same ] ||
	die "the original pack version is not current again"
[ "$(head_mode "$p2")" = COMPLIANCE ] || die "the pack put back is not locked"
cairn_q check "$U" --read-data

step "every snapshot restores byte-identical"
for s in $("$CAIRN" snapshots "$U" --json | json '" ".join(x["id"] for x in j)'); do
	cairn_q restore "$U" "$s" --to "$T/r.raw" --force
	ok=
	for f in a1 a2 a3 b; do cmp -s "$T/r.raw" "$T/$f.raw" && ok=1; done
	[ -n "$ok" ] || die "snapshot ${s:0:12} restores to unknown data"
done
restore_check "$U" "$ida1" "$T/a1.raw"
pass
