# shellcheck shell=bash
# A throwaway S3 server for the integration tests: a single-node Ceph
# cluster (one mon, one memstore OSD, no cephx) and a RADOS Gateway on a
# free loopback port, all in a private temp directory. Source after lib.sh.
#
#   rgw_available || { echo "SKIP: $(rgw_available)"; exit 0; }
#   rgw_start            # exports CAIRN_TEST_S3_ENDPOINT, CAIRN_TEST_S3_URL,
#                        # CAIRN_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID,
#                        # AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
#   rgw_stop_gateway     # kill only radosgw (fault tests)
#   rgw_start_gateway    # start it again on the same port
#   rgw_curl ARGS...     # curl signed with the test keys (--aws-sigv4)
#
# beast runs with tcp_nodelay=1: it writes a response's header and body
# separately, and with Nagle's algorithm the body waits for the client's
# delayed ACK, 40 ms a request on loopback, which no real S3 service costs.
# Only the daemons started here are ever stopped (by pid); rgw_start
# registers rgw_stop with at_exit. RGW_STORE_BYTES sizes the memstore OSD
# (default 1 GiB): a full OSD makes requests hang rather than fail, and
# memstore holds about twice the stored data in RAM.

RGW_STORE_BYTES=${RGW_STORE_BYTES:-1073741824}
RGW_ACCESS_KEY=CAIRNTESTACCESSKEY01
RGW_SECRET_KEY=cairnTestSecretKey0123456789abcdefghijkl
RGW_DIR=
RGW_PORT=
RGW_MON_PID=
RGW_OSD_PID=
RGW_GW_PID=

# rgw_available: true when the Ceph daemons are installed; prints why not.
rgw_available() {
	local t
	for t in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
		command -v "$t" >/dev/null || {
			echo "no $t (apt-get install ceph-mon ceph-osd radosgw ceph-common)"
			return 1
		}
	done
	command -v curl >/dev/null || { echo "no curl"; return 1; }
}

# _rgw_free_port: a TCP port nobody listens on (nothing binds it meanwhile
# but a race with another test is harmless: the daemon then fails to start)
_rgw_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

_rgw_ceph() { timeout 30 ceph -c "$RGW_DIR/ceph.conf" "$@"; }

# _rgw_wait WHAT SECONDS CMD... — polls CMD every 0.1 s
_rgw_wait() {
	local what=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "rgw: $what did not come up in ${secs}s; logs in $RGW_DIR/log" >&2
	tail -n 20 "$RGW_DIR"/log/*.log >&2 2>/dev/null || true
	return 1
}

rgw_start() {
	local t0 monport fsid
	t0=$(date +%s.%N)
	RGW_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cairn-rgw.XXXXXX")
	at_exit rgw_stop
	mkdir -p "$RGW_DIR"/{log,run,mon-a,osd-0,rgw}
	monport=$(_rgw_free_port)
	RGW_PORT=$(_rgw_free_port)
	fsid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$RGW_DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$monport
public addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# the OSD would place itself in the CRUSH map at start, and its first mon
# command can race its monmap ("wrong fsid") and kill it: do it here
osd crush update on start = false
osd class update on start = false
paxos propose interval = 0.1
run dir = $RGW_DIR/run
admin socket = $RGW_DIR/run/\$name.asok
log file = $RGW_DIR/log/\$name.log
mon data = $RGW_DIR/mon-\$id
osd data = $RGW_DIR/osd-\$id
osd objectstore = memstore
memstore device bytes = $RGW_STORE_BYTES
osd memory target = 536870912
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $RGW_DIR/rgw
rgw dns name = localhost
EOF
	monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$monport]" "$RGW_DIR/monmap" >/dev/null
	ceph-mon -c "$RGW_DIR/ceph.conf" --mkfs -i a --monmap "$RGW_DIR/monmap" >/dev/null 2>&1 ||
		{ echo "rgw: ceph-mon --mkfs failed" >&2; return 1; }
	ceph-mon -c "$RGW_DIR/ceph.conf" -i a -f >>"$RGW_DIR/log/mon.out" 2>&1 &
	RGW_MON_PID=$!
	_rgw_wait "ceph-mon" 30 _rgw_ceph mon stat || return 1
	local uuid
	uuid=$(cat /proc/sys/kernel/random/uuid)
	# a mon that answers `mon stat` may still refuse commands for a moment
	# ("Error EPERM: problem getting command descriptions from mon"); osd new
	# of the same uuid gives the same id, so it is retried as it is
	_rgw_wait "osd new" 30 _rgw_ceph osd new "$uuid" || return 1
	_rgw_ceph osd crush add osd.0 1.0 root=default >/dev/null 2>&1
	ceph-osd -c "$RGW_DIR/ceph.conf" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1 ||
		{ echo "rgw: ceph-osd --mkfs failed" >&2; return 1; }
	ceph-osd -c "$RGW_DIR/ceph.conf" -i 0 -f >>"$RGW_DIR/log/osd.out" 2>&1 &
	RGW_OSD_PID=$!
	_rgw_wait "ceph-osd" 30 _rgw_osd_up || return 1
	rgw_start_gateway || return 1
	radosgw-admin -c "$RGW_DIR/ceph.conf" user create --uid cairn-test --display-name "cairn test" \
		--access-key "$RGW_ACCESS_KEY" --secret-key "$RGW_SECRET_KEY" >/dev/null 2>&1 ||
		{ echo "rgw: radosgw-admin user create failed" >&2; return 1; }
	export CAIRN_TEST_S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
	export CAIRN_TEST_S3_BUCKET=cairn-test
	export CAIRN_TEST_S3_URL=s3:$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET
	export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY
	export AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
	export AWS_DEFAULT_REGION=us-east-1
	unset AWS_SESSION_TOKEN AWS_PROFILE AWS_REGION
	rgw_curl -f -X PUT "$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET" >/dev/null ||
		{ echo "rgw: cannot create bucket $CAIRN_TEST_S3_BUCKET" >&2; return 1; }
	RGW_START_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
	echo "rgw: Ceph cluster and gateway on 127.0.0.1:$RGW_PORT up in ${RGW_START_SECONDS}s"
}

_rgw_osd_up() { _rgw_ceph osd stat | grep -q '1 up'; }

rgw_start_gateway() {
	radosgw -c "$RGW_DIR/ceph.conf" -n client.rgw -f >>"$RGW_DIR/log/rgw.out" 2>&1 &
	RGW_GW_PID=$!
	_rgw_wait "radosgw" 60 curl -sf -o /dev/null "http://127.0.0.1:$RGW_PORT/"
}

rgw_stop_gateway() {
	[ -n "$RGW_GW_PID" ] || return 0
	kill -9 "$RGW_GW_PID" 2>/dev/null || true
	wait "$RGW_GW_PID" 2>/dev/null || true
	RGW_GW_PID=
}

# rgw_curl ARGS... — curl with the test credentials, signed like any S3 client
rgw_curl() {
	curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$RGW_ACCESS_KEY:$RGW_SECRET_KEY" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

rgw_stop() {
	local p
	rgw_stop_gateway
	for p in $RGW_OSD_PID $RGW_MON_PID; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	RGW_OSD_PID= RGW_MON_PID=
	[ -n "$RGW_DIR" ] && [ -z "${KEEP_TMP:-}" ] && rm -rf "$RGW_DIR"
	return 0
}
