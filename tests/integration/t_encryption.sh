#!/bin/bash
# Encryption: passwords (env, --password-file, wrong → exit 4), no plaintext
# in packs, tamper detection (check and restore exit 3), key add/list/remove.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R"
grep -q '"encryption": *"aes-256-gcm"' "$R/config" || die "default repository is not encrypted: $(cat "$R/config")"
[ "$(find "$R/keys" -type f ! -name '.*' | wc -l)" -eq 1 ] || die "expected one key file after init"
grep -q testpass "$R"/keys/* "$R/config" && die "password stored in clear"

# an image holding a distinctive text pattern (4 KiB block repeated), with
# some random data around it so it is not one repeated chunk only
MARK="cairn-plaintext-marker-7f3a9c-do-not-leak"
python3 -c 'import sys; m = sys.argv[1]; sys.stdout.write("".join("%s %04d\n" % (m, i) for i in range(200))[:4096])' "$MARK" >"$T/block"
[ "$(file_size "$T/block")" -eq 4096 ] || die "pattern block is not 4 KiB"
mkimg_raw "$T/secret.raw" 4M dense seed-secret
for i in $(seq 0 255); do cat "$T/block"; done >"$T/pattern"   # 1 MiB
dd if="$T/pattern" of="$T/secret.raw" bs=1M seek=1 conv=notrunc status=none
grep -qF "$MARK" "$T/secret.raw" || die "pattern not in the image"

step "wrong password: exit 4, one line"
CAIRN_PASSWORD=wrong expect_fail 4 "$CAIRN" snapshots "$R"
CAIRN_PASSWORD=wrong expect_fail 4 "$CAIRN" backup "$R" --image "$T/secret.raw"
assert_eq "$(ls "$R/snapshots" | wc -l)" 0 "snapshots written with a wrong password"
CAIRN_PASSWORD='' expect_fail_any "1 2 4" "$CAIRN" snapshots "$R" </dev/null

step "no password at all (no TTY): refused"
(unset CAIRN_PASSWORD; expect_fail_any "1 2 4" "$CAIRN" snapshots "$R" </dev/null)

step "backup"
cairn_q backup "$R" --image "$T/secret.raw"
snap=$(snap_id "$R")
restore_check "$R" "$snap" "$T/secret.raw"

step "--password-file"
printf 'testpass\n' >"$T/pw"
printf 'wrong\n' >"$T/pw-wrong"
(unset CAIRN_PASSWORD; "$CAIRN" snapshots "$R" --password-file "$T/pw" >/dev/null) || die "--password-file with the right password failed"
(unset CAIRN_PASSWORD; restore_check "$R" "$snap" "$T/secret.raw" --password-file "$T/pw")
(unset CAIRN_PASSWORD; expect_fail 4 "$CAIRN" snapshots "$R" --password-file "$T/pw-wrong")
# a missing password file is an I/O error (1), not a wrong password (4)
(unset CAIRN_PASSWORD; soft expect_fail_any "1 2" "$CAIRN" snapshots "$R" --password-file "$T/no-such-file")

step "no plaintext in the repository (encrypted, zstd)"
n=$(files_containing "$MARK" "$R")
assert_eq "$n" 0 "files under the encrypted repository containing the plaintext marker"

step "no plaintext in the repository (encrypted, uncompressed)"
RU=$T/repo-enc-nocomp
cairn_q init "$RU" --compression none
cairn_q backup "$RU" --image "$T/secret.raw"
assert_eq "$(files_containing "$MARK" "$RU")" 0 "files under encrypted uncompressed repo with the marker"
# the stored size shows the data is not compressed (so the grep above was meaningful)
# (3 MiB random + the 1 MiB pattern, whose four identical 256 KiB chunks dedupe to one)
[ "$(repo_bytes "$RU")" -ge $((3 * 1048576 + 262144)) ] || die "--compression none repo smaller than the data"

step "control: unencrypted + uncompressed repository DOES contain the plaintext"
RP=$T/repo-plain
cairn_q init "$RP" --encryption none --compression none
cairn_q backup "$RP" --image "$T/secret.raw"
n=$(occurrences "$MARK" "$RP/data")
echo "  marker found $n times in the plaintext repository"
[ "$n" -ge 256 ] || die "control failed: marker found only $n times in an unencrypted repo (grep test is meaningless)"

step "chunk ids of an encrypted repo are keyed (not plain SHA-256 of the data)"
# the same data in two encrypted repos must not produce the same pack names
R2=$T/repo2
cairn_q init "$R2"
cairn_q backup "$R2" --image "$T/secret.raw"
[ "$(list_packs "$R" | xargs -n1 basename)" != "$(list_packs "$R2" | xargs -n1 basename)" ] || die "identical pack ids in two encrypted repos"

step "key add / list / remove"
CAIRN_NEW_PASSWORD=second cairn_q key add "$R"
cairn_q key list "$R" --json
cat "$T/last.out"
assert_eq "$(json 'len(j)' <"$T/last.out")" 2 "keys after key add"
assert_eq "$(json 'sum(1 for k in j if k["current"])' <"$T/last.out")" 1 "number of current keys"
cur=$(json '[k["id"] for k in j if k["current"]][0]' <"$T/last.out")
other=$(json '[k["id"] for k in j if not k["current"]][0]' <"$T/last.out")
# the new password opens the repository and decrypts data
CAIRN_PASSWORD=second restore_check "$R" "$snap" "$T/secret.raw"
CAIRN_PASSWORD=second cairn_q key list "$R" --json
assert_eq "$(json '[k["id"] for k in j if k["current"]][0]' <"$T/last.out")" "$other" "current key with the second password"
# new password from a file
printf 'third\n' >"$T/pw3"
cairn_q key add "$R" --new-password-file "$T/pw3"
CAIRN_PASSWORD=third cairn_q snapshots "$R"
cairn_q key list "$R" --json
assert_eq "$(json 'len(j)' <"$T/last.out")" 3 "keys after second key add"
third=$(json '[k["id"] for k in j if k["id"] not in ("'"$cur"'", "'"$other"'")][0]' <"$T/last.out")

step "removing the key in use is refused"
expect_fail_any "1 2" "$CAIRN" key remove "$R" "$cur"
assert_eq "$(find "$R/keys" -type f ! -name '.*' | wc -l)" 3 "key files after refused remove"

step "remove the other keys (full id and prefix)"
cairn_q key remove "$R" "$other"
cairn_q key remove "$R" "${third:0:12}"
cairn_q key list "$R" --json
assert_eq "$(json '[k["id"] for k in j]' <"$T/last.out")" "[\"$cur\"]" "keys after remove"
CAIRN_PASSWORD=second expect_fail 4 "$CAIRN" snapshots "$R"
CAIRN_PASSWORD=third expect_fail 4 "$CAIRN" snapshots "$R"

step "removing the last key is refused"
expect_fail_any "1 2" "$CAIRN" key remove "$R" "$cur"
cairn_q snapshots "$R"
step "removing an unknown key fails"
expect_fail_any "1 2" "$CAIRN" key remove "$R" 0000000000000000
step "key commands on an unencrypted repository fail cleanly"
CAIRN_NEW_PASSWORD=x expect_fail_any "1 2" "$CAIRN" key add "$RP"

step "tampered blob: check --read-data and restore exit 3"
cairn_q check "$R" --read-data
p=$(list_packs "$R" | head -n1)
sz=$(file_size "$p")
flip_byte "$p" $((sz / 2))
expect_fail 3 "$CAIRN" check "$R" --read-data
expect_fail 3 "$CAIRN" restore "$R" "$snap" --to "$T/tampered.raw"
assert_file_absent "$T/tampered.raw"
assert_no_partial "$T" tampered.raw

step "tampered blob in the encrypted but uncompressed repo (AES-GCM tag must catch it)"
p=$(list_packs "$RU" | head -n1)
flip_byte "$p" $(( $(file_size "$p") / 3 ))
expect_fail 3 "$CAIRN" check "$RU" --read-data
expect_fail 3 "$CAIRN" restore "$RU" latest --to "$T/tampered2.raw"
assert_file_absent "$T/tampered2.raw"

step "tampered key file: that key no longer opens the repository"
k=$(find "$R/keys" -type f ! -name '.*' | head -n1)
python3 - "$k" <<'PY'
import json, sys
p = sys.argv[1]
k = json.load(open(p))
d = bytearray.fromhex(k["data"]); d[5] ^= 1; k["data"] = d.hex()
json.dump(k, open(p, "w"))
PY
expect_fail_any "3 4" "$CAIRN" snapshots "$R"
pass
