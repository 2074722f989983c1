# shellcheck shell=bash
# A simulated WAN for the integration tests and the benchmark: the
# project's delaying TCP proxy (tests/tools/wanproxy.c) in front of a
# loopback server, every byte D ms late in each direction (this kernel has
# no netem). Source after lib.sh (and rgw.sh / sshd.sh for their helpers).
#
#   wan_start DELAY_MS HOST:PORT   # a proxy on a free loopback port; exports
#                                  # WAN_PORT, WAN_PID (the newest proxy)
#   wan_stop                       # stop the newest proxy (others: at exit)
#   wan_rgw DELAY_MS               # a proxy in front of rgw_start's gateway;
#                                  # exports WAN_S3_ENDPOINT, WAN_S3_URL
#                                  # (s3:http://127.0.0.1:WAN_PORT/BUCKET)
#   wan_sshd DELAY_MS              # a proxy in front of sshd_start's server;
#                                  # exports WAN_SFTP_URL and lists the host
#                                  # key for the proxy's port in known_hosts
#
# The proxy is build/wanproxy of this checkout (make build/wanproxy; built
# into $T with cc when missing, it has no dependencies), or $WANPROXY. Every
# proxy started here is registered with at_exit and stopped by its pid.

WAN_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WAN_PORT=
WAN_PID=

# _wan_binary: the proxy's path, compiling it when the build has none
_wan_binary() {
	local bin=${WANPROXY:-$WAN_TOP/build/wanproxy}
	if [ ! -x "$bin" ] || [ "$bin" -ot "$WAN_TOP/tests/tools/wanproxy.c" ]; then
		[ -z "${WANPROXY:-}" ] || { echo "wan: no proxy at $WANPROXY" >&2; return 1; }
		bin=$T/wanproxy
		[ -x "$bin" ] || cc -O2 -std=gnu11 -Wall -o "$bin" "$WAN_TOP/tests/tools/wanproxy.c" ||
			{ echo "wan: cannot build tests/tools/wanproxy.c" >&2; return 1; }
	fi
	echo "$bin"
}

wan_start() {
	local delay=$1 target=$2 bin dir i
	bin=$(_wan_binary) || return 1
	dir=$(mktemp -d "$T/wan.XXXXXX")
	"$bin" --listen 127.0.0.1:0 --target "$target" --delay-ms "$delay" \
		--port-file "$dir/port" >>"$dir/log" 2>&1 &
	WAN_PID=$!
	at_exit "kill $WAN_PID; wait $WAN_PID"
	for ((i = 0; i < 100; i++)); do
		[ -s "$dir/port" ] && break
		kill -0 "$WAN_PID" 2>/dev/null || break
		sleep 0.05
	done
	[ -s "$dir/port" ] || { echo "wan: proxy did not start: $(cat "$dir/log")" >&2; return 1; }
	WAN_PORT=$(cat "$dir/port")
	export WAN_PORT WAN_PID
	echo "wan: 127.0.0.1:$WAN_PORT -> $target, $delay ms each way (pid $WAN_PID)"
}

wan_stop() {
	[ -n "$WAN_PID" ] || return 0
	kill "$WAN_PID" 2>/dev/null || true
	wait "$WAN_PID" 2>/dev/null || true
	WAN_PID=""
	WAN_PORT=""
}

wan_rgw() {
	[ -n "${RGW_PORT:-}" ] || { echo "wan: start the gateway first (rgw_start)" >&2; return 1; }
	wan_start "$1" "127.0.0.1:$RGW_PORT" || return 1
	export WAN_S3_ENDPOINT=http://127.0.0.1:$WAN_PORT
	export WAN_S3_URL=s3:$WAN_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET
}

wan_sshd() {
	[ -n "${SSHD_PORT:-}" ] || { echo "wan: start sshd first (sshd_start)" >&2; return 1; }
	wan_start "$1" "127.0.0.1:$SSHD_PORT" || return 1
	printf '[127.0.0.1]:%s %s\n' "$WAN_PORT" "$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")" \
		>>"$CAIRN_SFTP_KNOWN_HOSTS"
	export WAN_SFTP_URL=sftp://root@127.0.0.1:$WAN_PORT/$CAIRN_TEST_SFTP_ROOT
}
