#!/bin/bash
# A clean repository checks clean (structure and --read-data); --json parses.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R"
mkimg_raw "$T/a.raw" 3M+777 dense
mkimg_raw "$T/b.raw" 4M sparse
cairn_q backup "$R" --image "$T/a.raw"
cairn_q backup "$R" --image "$T/b.raw" --name b

step "check (structure)"
cairn check "$R"
step "check --read-data"
cairn check "$R" --read-data

step "check --json"
cairn_q check "$R" --json
json 'j["ok"]' <"$T/last.out" >"$T/ok"
assert_eq "$(cat "$T/ok")" true "check --json .ok"
assert_eq "$(json 'j["problems_found"]' <"$T/last.out")" 0 "check --json .problems_found"
assert_eq "$(json 'len(j["problems"])' <"$T/last.out")" 0 "check --json .problems"
assert_eq "$(json 'j["read_data"]' <"$T/last.out")" false "check --json .read_data"

cairn_q check "$R" --read-data --json
assert_eq "$(json 'j["ok"]' <"$T/last.out")" true "check --read-data --json .ok"
assert_eq "$(json 'j["read_data"]' <"$T/last.out")" true "check --read-data --json .read_data"

step "check of an unencrypted repository"
R2=$T/repo2
cairn_q init "$R2" --encryption none --compression none
cairn_q backup "$R2" --image "$T/a.raw"
cairn_q check "$R2" --read-data --json
assert_eq "$(json 'j["ok"]' <"$T/last.out")" true "plain repo check .ok"

step "check of an empty repository"
R3=$T/repo3
cairn_q init "$R3"
cairn check "$R3" --read-data

step "check --json is only JSON on stdout (quiet stderr not required)"
"$CAIRN" check "$R" --json 2>/dev/null | python3 -c 'import json,sys; json.load(sys.stdin)'

step "the check must see damage (guard against a check that always says ok)"
p=$(list_packs "$R" | head -n1)
flip_byte "$p" $(( $(file_size "$p") / 2 ))
expect_fail 3 "$CAIRN" check "$R" --read-data
pass
