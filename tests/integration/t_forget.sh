#!/bin/bash
# Retention: cairn forget with keep rules applied per name (dry run first,
# then for real), protected snapshots never removed, the kept snapshots
# still restore, bad invocations refused. The rules themselves (periods,
# ISO weeks, UTC, keep-within) are unit-tested with fixed dates.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R"
mkimg_raw "$T/a.raw" 2M dense a0
mkimg_raw "$T/b.raw" 2M dense b0
for i in 1 2 3 4 5; do
	write_at "$T/a.raw" 0 "a$i" 65536
	tag=(); [ "$i" = 2 ] && tag=(--tag month-end)
	cairn_q backup "$R" --image "$T/a.raw" --name vm-a "${tag[@]}"
	cp "$T/a.raw" "$T/a-$i.raw"
done
cairn_q backup "$R" --image "$T/b.raw" --name vm-b
cairn_q backup "$R" --image "$T/b.raw" --name vm-b
ids=$("$CAIRN" snapshots "$R" --name vm-a --json | json '" ".join(x["id"] for x in j)')
read -r s1 s2 s3 s4 s5 <<<"$ids"

step "bad invocations are refused"
expect_fail 2 "$CAIRN" forget "$R" --all
assert_msg_matches "no --keep-\\* rule"
expect_fail 2 "$CAIRN" forget "$R" --keep-last 1
assert_msg_matches "--name VM.*--all"
expect_fail 2 "$CAIRN" forget "$R" --all --keep-within 3q
expect_fail 2 "$CAIRN" forget "$R" --all --keep-last -1

step "protect the oldest"
cairn_q protect "$R" "$s1"
grep -q "is protected" "$T/last.out" || die "no protect message"

step "dry run: nothing removed, the plan shows every rule that keeps a snapshot"
cairn_q forget "$R" --name vm-a --keep-last 2 --keep-tag month-end --dry-run --json
plan=$T/last.out
assert_eq "$(json 'len(j)' <"$plan")" 1 "groups in the plan"
assert_eq "$(json '" ".join(sorted(x["id"] for x in j[0]["remove"]))' <"$plan")" "$s3" "would remove"
assert_eq "$(json '{x["id"]: x["reasons"] for x in j[0]["keep"]}["'"$s5"'"]' <"$plan")" last "why s5"
assert_eq "$(json '{x["id"]: x["reasons"] for x in j[0]["keep"]}["'"$s2"'"]' <"$plan")" tag "why s2"
assert_eq "$(json '{x["id"]: x["reasons"] for x in j[0]["keep"]}["'"$s1"'"]' <"$plan")" protected "why s1"
assert_eq "$(snap_count "$R")" 7 "snapshots after a dry run"

step "for real: only vm-a's s3 goes; vm-b untouched"
cairn_q forget "$R" --name vm-a --keep-last 2 --keep-tag month-end
grep -q "1 removed" "$T/last.out" || die "summary: $(cat "$T/last.out")"
assert_eq "$(snap_count "$R")" 6 "snapshots after forget"
"$CAIRN" snapshots "$R" --json | json '" ".join(x["id"] for x in j)' | grep -q "$s3" && die "s3 still listed"

step "kept snapshots restore byte-identical; check is clean"
cairn_q restore "$R" "$s4" --to "$T/r4.raw"
cmp "$T/r4.raw" "$T/a-4.raw" || die "s4 restores wrong"
cairn_q restore "$R" "$s1" --to "$T/r1.raw"
cmp "$T/r1.raw" "$T/a-1.raw" || die "s1 restores wrong"
cairn_q check "$R"

step "--all applies per name; the protected one stays until unprotected"
cairn_q forget "$R" --all --keep-last 1
assert_eq "$(snap_count "$R")" 3 "vm-a newest + protected s1, vm-b newest"
cairn_q unprotect "$R" "$s1"
cairn_q forget "$R" --all --keep-daily 1 --json
assert_eq "$(json '[len(g["keep"]) for g in j]' <"$T/last.out")" "[1, 1]" "kept per name"
assert_eq "$(snap_count "$R")" 2 "one per name"
cairn_q restore "$R" latest --name vm-a --to "$T/r5.raw"
cmp "$T/r5.raw" "$T/a-5.raw" || die "latest restores wrong"
cairn_q check "$R" --read-data
pass
