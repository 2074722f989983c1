#!/bin/bash
# Repositories over SFTP, against a real OpenSSH sshd on loopback (sshd.sh):
# every repository command on an encrypted repository (init, backups,
# snapshots, restore byte-identical, check --read-data, key add/list/remove,
# protect twice (a rewrite of an existing name), forget, gc, replication
# both ways); a path relative to the login directory; a restore on a "fresh
# host" (empty HOME: only URL, key, known_hosts and password); an unknown
# and a changed host key refused with the fingerprint and nothing written;
# a key the server does not accept; malformed URLs; sshd killed in the
# middle of a backup, then restarted: the next backup and check pass.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"

why=$(sshd_available) || { echo "SKIP: $why"; exit 0; }
sshd_start
export CAIRN_SFTP_RETRIES=2 # faults fail within a few seconds
U=$CAIRN_TEST_SFTP_URL
D=$CAIRN_TEST_SFTP_ROOT # the same directory, seen from this host

mkimg_raw "$T/a.raw" 24M+4097 sparse seed-a
qemu-img create -q -f qcow2 "$T/q.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x5a 1M 3M' -c 'write -P 0xc3 20M 512K' "$T/q.qcow2" >/dev/null
qemu-img convert -f qcow2 -O raw "$T/q.qcow2" "$T/q.raw"
mkimg_fs "$T/fs.img" 64M

# no_tmp DIR — no temporary object left anywhere below DIR
no_tmp() {
	local left
	left=$(find "$1" -name '.tmp-*' 2>/dev/null || true)
	[ -z "$left" ] || die "temporary objects left: $left"
}

step "init"
cairn_q init "$U/enc"
expect_fail 1 "$CAIRN" init "$U/enc"
assert_msg_matches "already holds a repository"
[ -f "$D/enc/config" ] || die "no config at $D/enc"
for d in data index snapshots keys locks; do [ -d "$D/enc/$d" ] || die "no $d/ in $D/enc"; done
assert_eq "$(json 'j["encryption"]' <"$D/enc/config")" aes-256-gcm "config encryption"
grep -rq testpass "$D/enc" && die "password stored in clear"

step "backup (qcow2 image, a raw image, a filesystem), a second backup with changes"
cairn_q backup "$U/enc" --image "$T/q.qcow2" --name q
cairn_q backup "$U/enc" --image "$T/a.raw" --name a --connections 2
cairn_q backup "$U/enc" --image "$T/fs.img" --name fs --limit-upload 40M
cp "$T/a.raw" "$T/a2.raw"
write_at "$T/a2.raw" 3000000 seed-change 70000
cairn_q backup "$U/enc" --image "$T/a2.raw" --name a --json
[ "$(json 'j["new_chunks"]' <"$T/last.out")" -le 2 ] ||
	die "incremental stored $(json 'j["new_chunks"]' <"$T/last.out") chunks for a 70 KB change"
assert_eq "$(snap_count "$U/enc")" 4 "snapshots"
# the same names as a local repository: every pack is data/<2 hex>/<sha256 of it>
packs=$(find "$D/enc/data" -type f ! -name '.*')
[ -n "$packs" ] || die "no packs under $D/enc/data"
for p in $packs; do
	n=${p##*/}
	[ "${p%/*}" = "$D/enc/data/${n:0:2}" ] || die "pack $p is not under its fan-out directory"
	sha256sum "$p" | grep -q "^$n " || die "$p does not hash to its name"
done
no_tmp "$D/enc"

step "snapshots, ls, stats"
cairn_q snapshots "$U/enc"
grep -q fs "$T/last.out" || die "snapshots does not list fs"
cairn_q ls "$U/enc" latest --name fs
cairn_q stats "$U/enc"

step "restore byte-identical"
restore_check "$U/enc" latest "$T/a2.raw" --name a
restore_check "$U/enc" latest "$T/q.raw" --name q --limit-download 40M
restore_check "$U/enc" latest "$T/fs.img" --name fs --connections 3
old=$("$CAIRN" snapshots "$U/enc" --json | json '[s["id"] for s in j if s["name"] == "a"][0]')
restore_check "$U/enc" "$old" "$T/a.raw"
cairn_q restore "$U/enc" latest --name q --to "$T/q-out.qcow2" --format qcow2
qemu-img compare -q "$T/q.qcow2" "$T/q-out.qcow2" || die "qcow2 restore differs"

step "check --read-data"
cairn_q check "$U/enc"
cairn_q check "$U/enc" --read-data

step "key add / list / remove"
CAIRN_NEW_PASSWORD=second cairn_q key add "$U/enc"
cairn_q key list "$U/enc" --json
assert_eq "$(json 'len(j)' <"$T/last.out")" 2 "keys after key add"
other=$(json '[k["id"] for k in j if not k["current"]][0]' <"$T/last.out")
CAIRN_PASSWORD=second cairn_q snapshots "$U/enc"
cairn_q key remove "$U/enc" "$other"
assert_eq "$(find "$D/enc/keys" -type f | wc -l)" 1 "key files after remove"
expect_fail 4 env CAIRN_PASSWORD=second "$CAIRN" snapshots "$U/enc"

step "protect twice (rewrites an existing name), unprotect"
cairn_q protect "$U/enc" latest --name fs
cairn_q protect "$U/enc" latest --name fs
assert_eq "$(find "$D/enc/protected" -type f | wc -l)" 1 "protection markers"
no_tmp "$D/enc"
cairn_q unprotect "$U/enc" latest --name fs
assert_eq "$(find "$D/enc/protected" -type f | wc -l)" 0 "protection markers after unprotect"

step "forget + gc"
mkimg_raw "$T/b1.raw" 6M dense seed-b1
mkimg_raw "$T/b2.raw" 6M dense seed-b2
cairn_q backup "$U/enc" --image "$T/b1.raw" --name b
b1packs=$(find "$D/enc/data" -type f | sort)
cairn_q backup "$U/enc" --image "$T/b2.raw" --name b
cairn_q forget "$U/enc" --name a --keep-last 1
cairn_q forget "$U/enc" --name b --keep-last 1
assert_eq "$(snap_count "$U/enc")" 4 "snapshots after forget"
# what a writer that died mid-upload leaves: gc removes it once days old
stale=$(dirname "$(find "$D/enc/data" -type f | head -1)")/.tmp-00000000000000aa
echo partial >"$stale"
echo partial >"$D/enc/.tmp-00000000000000bb"
echo partial >"$D/enc/index/.tmp-00000000000000cc"
touch -d '3 days ago' "$stale" "$D/enc/.tmp-00000000000000bb"
cairn_q gc "$U/enc" --max-unused 0
grep -Eq "deleted [1-9][0-9]* packs" "$T/last.out" || die "gc deleted no pack: $(cat "$T/last.out")"
grep -q "removed 2 temporary objects" "$T/last.out" || die "gc kept stale uploads: $(cat "$T/last.out")"
assert_file_absent "$stale"
assert_file_absent "$D/enc/.tmp-00000000000000bb"
[ -f "$D/enc/index/.tmp-00000000000000cc" ] || die "gc removed an upload that may still be running"
rm -f "$D/enc/index/.tmp-00000000000000cc"
gone=$(comm -23 <(echo "$b1packs") <(find "$D/enc/data" -type f | sort))
[ -n "$gone" ] || die "no pack of the forgotten b1 left the server"
cairn_q check "$U/enc" --read-data
restore_check "$U/enc" latest "$T/a2.raw" --name a
restore_check "$U/enc" latest "$T/b2.raw" --name b
no_tmp "$D/enc"

step "replicate local -> SFTP and SFTP -> local, restore from each copy"
cairn_q init "$T/local"
cairn_q backup "$T/local" --image "$T/q.qcow2" --name lq
cairn_q init "$U/copy" --replica-of "$T/local"
cairn_q replicate "$T/local" "$U/copy" --connections 3
restore_check "$U/copy" latest "$T/q.raw" --name lq
cairn_q init "$T/back" --replica-of "$U/enc"
cairn_q replicate "$U/enc" "$T/back" --verify
restore_check "$T/back" latest "$T/fs.img" --name fs
cairn_q check "$U/copy" --read-data

step "a path relative to the login directory (sftp://HOST:PORT/REL)"
rel=cairn-test-rel-$$-$RANDOM
home=$(getent passwd root | cut -d: -f6)
at_exit "rm -rf '$home/$rel'"
R=sftp://root@127.0.0.1:$SSHD_PORT/$rel/r
cairn_q init "$R" --encryption none
[ -f "$home/$rel/r/config" ] || die "relative repository not in $home/$rel/r"
cairn_q backup "$R" --image "$T/q.qcow2"
restore_check "$R" latest "$T/q.raw"
cairn_q check "$R" --read-data

step "fresh host: only the URL, the key, known_hosts and the password"
mkdir -p "$T/fresh"
fresh() { env -i PATH="$PATH" HOME="$T/fresh" XDG_CACHE_HOME="$T/fresh/cache" \
	CAIRN_PASSWORD=testpass "$CAIRN" "$@"; }
fresh restore "$U/enc" latest --name fs --to "$T/fresh/fs.img" \
	--sftp-identity "$CAIRN_SFTP_IDENTITY" --sftp-known-hosts "$CAIRN_SFTP_KNOWN_HOSTS" >/dev/null
assert_same "$T/fs.img" "$T/fresh/fs.img"
# serve: the nbdkit plugin gets the key and known_hosts from the options too
if command -v nbdkit >/dev/null && command -v nbdcopy >/dev/null; then
	fresh serve "$U/enc" latest --name fs --socket "$T/fresh/nbd.sock" \
		--sftp-identity "$CAIRN_SFTP_IDENTITY" --sftp-known-hosts "$CAIRN_SFTP_KNOWN_HOSTS" >/dev/null ||
		die "serve from SFTP failed"
	at_exit "'$CAIRN' serve --stop --socket '$T/fresh/nbd.sock' >/dev/null 2>&1"
	nbdcopy "nbd+unix:///?socket=$T/fresh/nbd.sock" "$T/fresh/served.img"
	assert_same "$T/fs.img" "$T/fresh/served.img"
	cairn_q serve --stop --socket "$T/fresh/nbd.sock"
fi
# the usual places: ~/.ssh/id_ed25519 and ~/.ssh/known_hosts
mkdir -m 700 "$T/fresh/.ssh"
cp "$CAIRN_SFTP_IDENTITY" "$T/fresh/.ssh/id_ed25519"
cp "$CAIRN_SFTP_KNOWN_HOSTS" "$T/fresh/.ssh/known_hosts"
fresh check "$U/enc" --read-data >/dev/null
rm "$T/fresh/.ssh/id_ed25519"
expect_fail 1 env -i PATH="$PATH" HOME="$T/fresh" CAIRN_PASSWORD=testpass "$CAIRN" snapshots "$U/enc"
assert_msg_matches "no SSH key.*--sftp-identity"

step "unknown host key: refused with its fingerprint, nothing written"
fp=$(sshd_host_fingerprint)
: >"$T/empty_known_hosts"
before=$(find "$D" | sort | md5sum)
expect_fail 1 "$CAIRN" init "$U/new" --sftp-known-hosts "$T/empty_known_hosts"
assert_msg_matches "127\.0\.0\.1:$SSHD_PORT"
grep -qF "$fp" <<<"$FAIL_MSG" || die "the refusal does not show the fingerprint $fp"
assert_msg_matches "ssh-keyscan -p $SSHD_PORT 127.0.0.1"
expect_fail 1 env CAIRN_SFTP_KNOWN_HOSTS="$T/new_known_hosts" "$CAIRN" snapshots "$U/enc"
grep -qF "$fp" <<<"$FAIL_MSG" || die "the refusal does not show the fingerprint $fp"
assert_eq "$(find "$D" | sort | md5sum)" "$before" "server tree after refused connections"
# the command the message gives accepts the key; a hashed known_hosts works too
accept=$(grep -o 'ssh-keyscan -p [0-9]* 127.0.0.1 >> [^,]*' <<<"$FAIL_MSG")
[ -n "$accept" ] || die "no ssh-keyscan command in: $FAIL_MSG"
eval "$accept" 2>/dev/null
cairn_q snapshots "$U/enc" --sftp-known-hosts "$T/new_known_hosts"
ssh-keygen -q -H -f "$T/new_known_hosts" >/dev/null 2>&1
grep -q '^|1|' "$T/new_known_hosts" || die "known_hosts not hashed"
cairn_q snapshots "$U/enc" --sftp-known-hosts "$T/new_known_hosts"

step "changed host key: refused as a mismatch"
ssh-keygen -q -t ed25519 -N '' -f "$T/other_host"
printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$T/other_host.pub")" >"$T/wrong_known_hosts"
expect_fail 1 "$CAIRN" snapshots "$U/enc" --sftp-known-hosts "$T/wrong_known_hosts"
assert_msg_matches "does not match"
grep -qF "$fp" <<<"$FAIL_MSG" || die "the refusal does not show the fingerprint $fp"

step "a key the server does not accept; a key file that is missing"
ssh-keygen -q -t ed25519 -N '' -f "$T/stranger"
expect_fail 1 "$CAIRN" snapshots "$U/enc" --sftp-identity "$T/stranger"
assert_msg_matches "refused the key $T/stranger for user root"
grep -q "PRIVATE KEY" <<<"$FAIL_ERR" && die "key material in the message"
expect_fail 1 "$CAIRN" snapshots "$U/enc" --sftp-identity "$T/nope"
assert_msg_matches "cannot read the SSH key $T/nope"

step "malformed URLs and missing repositories: one clear line"
expect_fail 1 "$CAIRN" snapshots "sftp://root:pw@127.0.0.1:$SSHD_PORT//x"
assert_msg_matches "password in the URL"
grep -q 'pw@' <<<"$FAIL_ERR" && die "the password of the URL is printed"
expect_fail 1 "$CAIRN" snapshots "sftp://root@127.0.0.1:99999//x"
assert_msg_matches "port"
expect_fail 1 "$CAIRN" snapshots "sftp:root@127.0.0.1"
assert_msg_matches "sftp:\[USER@\]HOST:/ABSOLUTE/PATH"
expect_fail 1 "$CAIRN" snapshots "$U/nothing-here"
assert_msg_matches "not a cairn repository"

step "sshd killed in the middle of a backup, then back"
cairn_q init "$U/kill"
mkimg_raw "$T/big.raw" 96M dense seed-big
"$CAIRN" backup "$U/kill" --image "$T/big.raw" --limit-upload 12M >"$T/kill.out" 2>"$T/kill.err" &
pid=$!
BG_PIDS+=("$pid")
for _ in $(seq 1 200); do
	[ -n "$(find "$D/kill/data" -type f ! -name '.*' 2>/dev/null)" ] && break
	sleep 0.05
done
[ -n "$(find "$D/kill/data" -type f ! -name '.*')" ] || die "no pack appeared"
sshd_stop
rc=0
wait "$pid" || rc=$?
echo "  backup exited $rc: $(cat "$T/kill.err")"
[ "$rc" -ne 0 ] || die "the backup succeeded without its server"
assert_eq "$(grep -vc '^cairn: warning:' "$T/kill.err")" 1 "error lines of the killed backup"
grep -q "127.0.0.1:$SSHD_PORT" "$T/kill.err" || die "the error does not name the server: $(cat "$T/kill.err")"
expect_fail 1 "$CAIRN" snapshots "$U/kill"
assert_msg_matches "127\.0\.0\.1:$SSHD_PORT"
sshd_start
assert_eq "$(snap_count "$U/kill")" 0 "snapshots after the failed backup"
cairn_q backup "$U/kill" --image "$T/big.raw"
cairn_q check "$U/kill" --read-data
restore_check "$U/kill" latest "$T/big.raw"
assert_eq "$(snap_count "$U/kill")" 1 "snapshots after the second backup"
"$CAIRN" snapshots "$U/kill" --json | grep -q '\.tmp-' && die "a temporary name shows as a snapshot"

pass
