#!/bin/bash
# The offsite chain of issue 5: local -> S3 (Ceph RGW, rgw.sh) -> SFTP
# (OpenSSH, sshd.sh) -> local. Each hop is a replica made with init
# --replica-of its predecessor; the last repository checks clean with
# --read-data and restores every snapshot byte-identical; every hop's
# packs and manifests are the source's bytes; a second pass sends nothing
# on any hop; a new backup travels the chain as its new packs only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
. "$(dirname "$0")/sshd.sh"

why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
why=$(sshd_available) || { echo "SKIP: $why"; exit 0; }
rgw_start
sshd_start
export CAIRN_S3_RETRIES=2 CAIRN_SFTP_RETRIES=2

L1=$T/origin
S3=$CAIRN_TEST_S3_URL/chain
SF=$CAIRN_TEST_SFTP_URL/chain
SF_DIR=$CAIRN_TEST_SFTP_ROOT/chain
L2=$T/last
HOPS=("$L1" "$S3" "$SF" "$L2")

mkimg_raw "$T/a1.raw" 20M+511 sparse seed-a
mkimg_fs "$T/fs.img" 48M
cairn_q init "$L1" --chunk-size 128K
cairn_q backup "$L1" --image "$T/a1.raw" --name vm-a
cairn_q backup "$L1" --image "$T/fs.img" --name vm-fs
cp "$T/a1.raw" "$T/a2.raw"
write_at "$T/a2.raw" 7000000 seed-a2 200000
cairn_q backup "$L1" --image "$T/a2.raw" --name vm-a

pack_bytes() { find "$1/data" -type f ! -name '.*' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }

# pass_chain: replicate along every hop; prints the bytes each hop sent
pass_chain() {
	local i sent=()
	for ((i = 1; i < ${#HOPS[@]}; i++)); do
		cairn_q replicate "${HOPS[i - 1]}" "${HOPS[i]}" --connections 3 --json
		sent+=("$(json 'j["bytes_copied"]' <"$T/last.out")")
	done
	echo "${sent[*]}"
}

step "replicas along the chain"
for ((i = 1; i < ${#HOPS[@]}; i++)); do
	cairn_q init "${HOPS[i]}" --replica-of "${HOPS[i - 1]}"
done
sent=$(pass_chain)
echo "  bytes sent per hop: $sent"
want=$(pack_bytes "$L1")
for b in $sent; do
	[ "$b" -eq "$want" ] || die "a hop sent $b bytes, not the origin's $want bytes of packs"
done

step "the last repository: check --read-data, every snapshot identical"
cairn_q check "$L2" --read-data
assert_eq "$(snap_count "$L2")" 3 "snapshots at the end of the chain"
i=0
for id in $("$CAIRN" snapshots "$L1" --name vm-a --json | json '" ".join(x["id"] for x in j)'); do
	i=$((i + 1))
	restore_check "$L2" "$id" "$T/a$i.raw"
done
restore_check "$L2" latest "$T/fs.img" --name vm-fs

step "every hop holds the origin's packs and manifests, byte for byte"
for p in $(cd "$L1" && find data snapshots -type f ! -name '.*'); do
	cmp -s "$L1/$p" "$SF_DIR/$p" || die "$p on the SFTP hop differs from the origin's"
	cmp -s "$L1/$p" "$L2/$p" || die "$p at the end of the chain differs from the origin's"
	rgw_curl -f "$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET/chain/$p" | cmp -s - "$L1/$p" ||
		die "$p on the S3 hop differs from the origin's"
done

step "a second pass sends nothing on any hop"
assert_eq "$(pass_chain)" "0 0 0" "bytes sent per hop the second time"

step "a new backup travels the chain as its new packs only"
cp "$T/a2.raw" "$T/a3.raw"
write_at "$T/a3.raw" 1000000 seed-a3 100000
before=$(pack_bytes "$L1")
cairn_q backup "$L1" --image "$T/a3.raw" --name vm-a
grown=$(($(pack_bytes "$L1") - before))
sent=$(pass_chain)
echo "  the origin grew by $grown bytes; bytes sent per hop: $sent"
for b in $sent; do
	[ "$b" -gt 0 ] && [ "$b" -le "$grown" ] || die "a hop sent $b bytes for a backup that added $grown"
done
restore_check "$L2" latest "$T/a3.raw" --name vm-a
cairn_q check "$L2" --read-data

pass "RGW up in ${RGW_START_SECONDS}s"
