#!/bin/bash
# Write-only host keys (docs/design.md "Host keys"): two hosts with their own
# key files back up into one repository without its password; data they
# share is stored once; everything that reads disk data or removes anything
# is refused with one line; the password restores both hosts' images
# byte-identically; a revoked key can no longer back up; nothing of the
# disks is in the repository in plaintext, and a host key file holds no key
# that opens the sealed data.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

R=$T/repo
REFUSAL='this is a host key: it can only add backups; restores, forget, gc and key changes need the repository password or a full key'

step "init --host-keys says what it makes; config names the feature and the public key"
cairn_q init "$R" --host-keys
grep -q 'host keys' "$T/last.out" || die "init does not say it made a host-keys repository: $(cat "$T/last.out")"
python3 - "$R/config" <<'EOF' || die "config lacks the host-keys feature or data_key: $(cat "$R/config")"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["features"] == ["host-keys"], c
assert c["data_key"]["alg"] == "x25519" and len(c["data_key"]["public"]) == 64, c
EOF
cairn_q init "$T/plain-kind"
grep -q 'no host keys' "$T/last.out" || die "init of an ordinary repository does not say so: $(cat "$T/last.out")"
expect_fail 2 "$CAIRN" init "$T/bad" --host-keys --encryption none

step "key add-host writes mode-0600 key files; key list shows them"
cairn_q key add-host "$R" hostA --out "$T/hostA.key"
cairn_q key add-host "$R" hostB --out "$T/hostB.key"
assert_eq "$(stat -c %a "$T/hostA.key")" 600 "mode of the host key file"
expect_fail 1 "$CAIRN" key add-host "$R" hostA --out "$T/again.key"
assert_msg_matches 'host key hostA exists'
assert_file_absent "$T/again.key"
expect_fail 1 "$CAIRN" key add-host "$R" hostC --out "$T/hostA.key"   # never over a file
cairn_q key list "$R" --json
assert_eq "$(json 'sorted(k["host_key"] for k in j if "host_key" in k)' <"$T/last.out")" \
	'["hostA", "hostB"]' "host keys in key list"
cairn_q key list "$R"
grep -q 'hostA' "$T/last.out" || die "key list does not show host keys"

# images: A and B share all but 2 MiB; a text marker in both
MARK="cairn-hostkey-marker-51c2e0-do-not-leak"
python3 -c 'import sys; m = sys.argv[1]; sys.stdout.write("".join("%s %04d\n" % (m, i) for i in range(200))[:4096])' "$MARK" >"$T/block"
SIZE=$((16 * 1048576))
mkimg_raw "$T/a.raw" $SIZE dense seed-shared
for i in $(seq 0 255); do cat "$T/block"; done | dd of="$T/a.raw" bs=1M seek=2 conv=notrunc status=none
cp "$T/a.raw" "$T/b.raw"
write_at "$T/b.raw" $((8 * 1048576)) seed-b-only $((2 * 1048576))
grep -qF "$MARK" "$T/a.raw" || die "marker not in the image"

step "two hosts back up with their key files and no password"
(unset CAIRN_PASSWORD; cairn_q backup "$R" --image "$T/a.raw" --name vmA --key-file "$T/hostA.key" --json)
bytesA=$(repo_bytes "$R")
(unset CAIRN_PASSWORD; CAIRN_KEY_FILE=$T/hostB.key cairn_q backup "$R" --image "$T/b.raw" --name vmB --json)
growth=$(( $(repo_bytes "$R") - bytesA ))
echo "  host A stored $bytesA bytes, host B added $growth"
[ "$growth" -ge $((2 * 1048576)) ] || die "host B's own 2 MiB not stored (grew $growth)"
[ "$growth" -lt $((4 * 1048576)) ] || die "host B stored shared data again (grew $growth of a $SIZE-byte image)"

step "incremental from the host's own chain"
parentA=$(unset CAIRN_PASSWORD; CAIRN_KEY_FILE=$T/hostA.key snap_id "$R" vmA)
cp "$T/a.raw" "$T/a.v1.raw"
write_at "$T/a.raw" $((12 * 1048576)) seed-a-change 262144
before=$(repo_bytes "$R")
(unset CAIRN_PASSWORD; cairn_q backup "$R" --image "$T/a.raw" --name vmA --key-file "$T/hostA.key" --json)
assert_eq "$(json 'j["parent"]' <"$T/last.out")" "$parentA" "parent of host A's second backup"
inc=$(( $(repo_bytes "$R") - before ))
[ "$inc" -lt $((1048576)) ] || die "incremental stored $inc bytes for a 256 KiB change"
(unset CAIRN_PASSWORD; cairn_q snapshots "$R" --key-file "$T/hostA.key" --json)
assert_eq "$(json 'len(j)' <"$T/last.out")" 3 "snapshots listed with a host key"
assert_eq "$(json '[s.get("host_key") for s in j]' <"$T/last.out")" '["hostA", "hostB", "hostA"]' "host keys recorded in the manifests"
cairn_q snapshots "$R" --json    # the password: the same record
assert_eq "$(json '[s.get("host_key") for s in j]' <"$T/last.out")" '["hostA", "hostB", "hostA"]' "host keys listed with the password"
cairn_q ls "$R" latest --name vmB
grep -q 'with host key hostB' "$T/last.out" || die "ls does not say which host key wrote the snapshot: $(head -2 "$T/last.out")"

step "with a host key, restore/serve/mount/check --read-data/replicate/forget/gc/key changes: one-line refusal"
mkdir -p "$T/mnt"
snapA=$(snap_id "$R" vmA)
while read -r args; do
	# shellcheck disable=SC2086
	(unset CAIRN_PASSWORD; expect_fail 1 "$CAIRN" $args --key-file "$T/hostA.key"
	 [ "$FAIL_MSG" = "cairn: $REFUSAL" ] || die "'$args' with a host key: $FAIL_MSG")
done <<EOF
restore $R $snapA --to $T/out.raw
serve $R $snapA --socket $T/nbd.sock
mount $R $snapA $T/mnt
check $R --read-data
replicate $R $T/replica
forget $R --all --keep-last 1
gc $R
unprotect $R $snapA
key list $R
key add $R
key add-host $R hostC --out $T/hostC.key
key remove-host $R hostB
EOF
assert_file_absent "$T/out.raw"
assert_no_partial "$T" out.raw
assert_file_absent "$T/hostC.key"
[ ! -e "$T/replica" ] || die "replicate with a host key made $T/replica"
assert_eq "$(snap_count "$R")" 3 "snapshots after the refused forget"
(unset CAIRN_PASSWORD; cairn_q check "$R" --key-file "$T/hostA.key")   # structure only

step "the password restores both hosts' images byte-identically"
restore_check "$R" "$(snap_id "$R" vmA)" "$T/a.raw"
restore_check "$R" "$(snap_id "$R" vmB)" "$T/b.raw"
restore_check "$R" "$parentA" "$T/a.v1.raw"
cairn_q check "$R" --read-data

step "no plaintext of the disks in the repository; the host key file opens no data"
assert_eq "$(files_containing "$MARK" "$R")" 0 "repository files holding the plaintext marker"
python3 - "$R" "$T/hostA.key" <<'EOF' || die "a host key file opens sealed disk data (or the packs are not as design.md says)"
# Reads every pack as design.md sections 5, 6 and 8 say, with what a host
# key file holds (K_enc): the directory and the chunk-map pages open (the
# control: the parsing is right), no disk-data blob does, sealed or not.
import glob, json, os, struct, subprocess, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
repo, keyfile = sys.argv[1], sys.argv[2]
k = json.load(open(keyfile))
assert k["kind"] == "host" and not [f for f in k if "priv" in f or f == "data_private"], list(k)
aes = AESGCM(bytes.fromhex(k["k_enc"]))
def opens(key, blob, aad):
    try:
        return key.decrypt(blob[:12], blob[12:], aad)
    except Exception:
        return None
pages = data = 0
for path in glob.glob(os.path.join(repo, "data", "*", "*")):
    if os.path.basename(path).startswith("."):
        continue
    b = open(path, "rb").read()
    assert b[:8] == b"CAIRNPK1" and b[-8:] == b"CAIRNPKE", path
    dlen = struct.unpack("<I", b[-12:-8])[0]
    env = b[-12 - dlen:-12]
    assert env[0] == 0x43 and env[2] == 3 and env[3] & 2, env[:4]
    d = opens(aes, env[4:], env[:4])
    assert d is not None, "pack directory does not open with K_enc"
    if env[3] & 1:
        d = subprocess.run(["zstd", "-dc"], input=d, stdout=subprocess.PIPE, check=True).stdout
    (count,) = struct.unpack("<I", d[:4])
    for i in range(count):
        e = d[4 + 48 * i: 4 + 48 * (i + 1)]
        bid, typ, flags = e[:32], e[32], e[33]
        off, slen, rlen = struct.unpack("<III", e[36:48])
        blob = b[off:off + slen]
        aad = bid + bytes([typ, flags])
        if typ == 1:
            assert not flags & 4 and opens(aes, blob, aad) is not None, "a chunk map page does not open"
            pages += 1
        elif typ == 0:
            assert flags & 4, "disk data not sealed (flags %d)" % flags
            assert opens(aes, blob, aad) is None and opens(aes, blob[32:], aad) is None, \
                "K_enc opens sealed disk data"
            data += 1
print("  %d data blobs sealed (none opens with the host key), %d chunk-map pages open" % (data, pages))
assert data >= 40 and pages >= 1
EOF

step "a shut-off domain: a host key's incremental follows its own checkpoint chain"
if why=$(vm_available) && vm_start_libvirtd; then
	D=$(mktemp -d /var/tmp/cairn-t_host_keys.XXXXXX)
	at_exit "rm -rf '$D'"
	NAME=cairn-t-hostkeys-$$
	qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
	qemu-io -f qcow2 -c 'write -P 0x11 0 8M' "$D/vda.qcow2" >/dev/null
	vm_define "$NAME" "$D" "$D/vda.qcow2"
	(unset CAIRN_PASSWORD; cairn_q backup "$R" --domain "$NAME" --key-file "$T/hostB.key" --json)
	dfull=$(json 'j["snapshot"]' <"$T/last.out")
	qemu-io -f qcow2 -c 'write -P 0x22 20M 1M' "$D/vda.qcow2" >/dev/null
	(unset CAIRN_PASSWORD; cairn_q backup "$R" --domain "$NAME" --key-file "$T/hostB.key" --json)
	assert_eq "$(json 'j["parent"]' <"$T/last.out")" "$dfull" "parent of the host key's domain incremental"
	read=$(json 'j["bytes_read"]' <"$T/last.out")
	[ "$read" -le $((2 * 1048576)) ] || die "the host key's incremental read $read bytes"
	"$CAIRN" snapshots "$R" --json | json 'j[-1]["disks"][0]["read"]' | grep -qx incremental ||
		die "the host key's domain backup was not an incremental read"
	cairn_q restore "$R" latest --name "$NAME" --disk vda --to "$T/vda.raw"
	qemu-img compare -q -f raw -F qcow2 "$T/vda.raw" "$D/vda.qcow2" || die "domain incremental differs"
	# the agent: key-file = in [repository], the job's backup continues the chain
	cat >"$T/hostB.conf" <<EOF
[global]
state-dir = $T/state
run-dir = $T/run
[repository r]
url = $R
key-file = $T/hostB.key
[job nightly]
domains = $NAME
schedule = daily
repository = r
EOF
	prev=$(snap_id "$R" "$NAME")
	qemu-io -f qcow2 -c 'write -P 0x33 30M 1M' "$D/vda.qcow2" >/dev/null
	(unset CAIRN_PASSWORD; "$CAIRN" agent --config "$T/hostB.conf" --run-job nightly 2>"$T/agent.log") ||
		die "the agent's job with a host key failed: $(tail -3 "$T/agent.log")"
	"$CAIRN" snapshots "$R" --name "$NAME" --json >"$T/s.json"
	assert_eq "$(json 'j[-1]["parent"]' <"$T/s.json")" "$prev" "parent of the agent's snapshot"
	assert_eq "$(json 'j[-1].get("host_key")' <"$T/s.json")" hostB "host key of the agent's snapshot"
	cairn_q restore "$R" latest --name "$NAME" --disk vda --to "$T/vda2.raw"
	qemu-img compare -q -f raw -F qcow2 "$T/vda2.raw" "$D/vda.qcow2" || die "the agent's incremental differs"
else
	echo "  (no libvirt/QEMU here: ${why:-libvirtd does not start}; domain step left out)"
fi

step "a revoked host key can no longer back up"
cairn_q key remove-host "$R" hostB
cairn_q key list "$R" --json
assert_eq "$(json 'sorted(k["host_key"] for k in j if "host_key" in k)' <"$T/last.out")" '["hostA"]' "host keys after remove-host"
n=$(snap_count "$R")
(unset CAIRN_PASSWORD; expect_fail 4 "$CAIRN" backup "$R" --image "$T/b.raw" --name vmB --key-file "$T/hostB.key"
 assert_msg_matches 'host key hostB was revoked')
assert_eq "$(snap_count "$R")" "$n" "snapshots after a revoked key's backup"
# a new key under the old name is another key: the old file stays revoked
cairn_q key add-host "$R" hostB --out "$T/hostB2.key"
(unset CAIRN_PASSWORD; expect_fail 4 "$CAIRN" snapshots "$R" --key-file "$T/hostB.key")
(unset CAIRN_PASSWORD; cairn_q snapshots "$R" --key-file "$T/hostB2.key")

step "a host key of another repository, or for an ordinary one, is refused"
cairn_q init "$T/other" --host-keys
(unset CAIRN_PASSWORD; expect_fail 4 "$CAIRN" snapshots "$T/other" --key-file "$T/hostA.key"
 assert_msg_matches 'belongs to another repository')
(unset CAIRN_PASSWORD; expect_fail 4 "$CAIRN" snapshots "$T/plain-kind" --key-file "$T/hostA.key"
 assert_msg_matches 'not made for host keys')
printf '{"version":1}' >"$T/junk.key"
(unset CAIRN_PASSWORD; expect_fail 4 "$CAIRN" snapshots "$R" --key-file "$T/junk.key")
expect_fail 1 "$CAIRN" key add-host "$T/plain-kind" h --out "$T/x.key"
assert_msg_matches 'not made for host keys'

step "cairn.conf: key-file in [repository]; a job that would forget with it is refused"
cat >"$T/agent.conf" <<EOF
[global]
state-dir = $T/state
run-dir = $T/run
[repository r]
url = $R
key-file = $T/hostA.key
[job nightly]
domains = vmA
schedule = daily
repository = r
EOF
cairn_q agent --config "$T/agent.conf" --check-config
printf 'keep-last = 3\n' >>"$T/agent.conf"
expect_fail 1 "$CAIRN" agent --config "$T/agent.conf" --check-config
assert_msg_matches 'keep-\* needs the password of \[repository r\]'

pass
