#!/bin/bash
# gc beside running backups on S3 (a real Ceph RGW): the rounds of
# t_gc_concurrent.sh (gc_concurrent.sh) against a bucket, with small
# listing pages so every listing follows continuation tokens, as locks,
# condemned lists and packs are written and removed around it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
. "$(dirname "$0")/gc_concurrent.sh"

why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
rgw_start
export CAIRN_S3_LIST_PAGE=7
E=$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET

list_gc() {
	rgw_curl -f "$E?list-type=2&prefix=repo%2Fgc%2F" |
		python3 -c 'import re,sys; print("\n".join(re.findall(r"<Key>([^<]*)</Key>", sys.stdin.read())))'
}
# smaller images than on a local directory: the same races, in < 3 minutes
gc_concurrent "$CAIRN_TEST_S3_URL/repo" "${GC_ROUNDS:-4}" list_gc 8
pass
