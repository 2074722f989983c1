# shellcheck shell=bash
# A throwaway SFTP server for the integration tests: OpenSSH's sshd on a
# free loopback port, with its own host key, one user key for root, the
# in-process sftp server, and a known_hosts file that lists it. Everything
# lives in a private temp directory. Source after lib.sh.
#
#   sshd_available || { echo "SKIP: $(sshd_available)"; exit 0; }
#   sshd_start           # exports CAIRN_TEST_SFTP_URL (sftp://root@127.0.0.1:PORT/
#                        # followed by an absolute path), CAIRN_TEST_SFTP_ROOT
#                        # (that directory on this host), SSHD_PORT,
#                        # CAIRN_SFTP_IDENTITY, CAIRN_SFTP_KNOWN_HOSTS
#   sshd_stop            # kill the server and every session it forked (fault tests)
#   sshd_start           # again: the same port, keys and directory
#   sshd_host_fingerprint   # SHA256:... of the host key, as ssh prints it
#
# Only the processes started here are ever stopped (by pid: the listener
# and its descendants); the first sshd_start registers sshd_stop with at_exit.

SSHD_DIR=
SSHD_PORT=
SSHD_PID=

sshd_available() {
	local t
	for t in /usr/sbin/sshd ssh-keygen python3; do
		command -v "$t" >/dev/null || {
			echo "no $t (apt-get install openssh-server openssh-client)"
			return 1
		}
	done
	[ "$(id -u)" = 0 ] || { echo "sshd tests log in as root: run as root"; return 1; }
}

_sshd_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

_sshd_setup() {
	SSHD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cairn-sshd.XXXXXX")
	at_exit sshd_cleanup
	mkdir -p "$SSHD_DIR/root" /run/sshd
	chmod 0755 /run/sshd
	SSHD_PORT=$(_sshd_free_port)
	ssh-keygen -q -t ed25519 -N '' -C cairn-test-host -f "$SSHD_DIR/host_ed25519"
	ssh-keygen -q -t ed25519 -N '' -C cairn-test-user -f "$SSHD_DIR/user_ed25519"
	cp "$SSHD_DIR/user_ed25519.pub" "$SSHD_DIR/authorized_keys"
	printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")" \
		>"$SSHD_DIR/known_hosts"
	cat >"$SSHD_DIR/sshd_config" <<EOF
ListenAddress 127.0.0.1:$SSHD_PORT
HostKey $SSHD_DIR/host_ed25519
PidFile $SSHD_DIR/sshd.pid
AuthorizedKeysFile $SSHD_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowUsers root
Subsystem sftp internal-sftp
LogLevel VERBOSE
MaxStartups 64:30:128
MaxSessions 64
EOF
}

sshd_start() {
	[ -n "$SSHD_DIR" ] || _sshd_setup
	/usr/sbin/sshd -t -f "$SSHD_DIR/sshd_config" || { echo "sshd: bad config" >&2; return 1; }
	/usr/sbin/sshd -D -e -f "$SSHD_DIR/sshd_config" >>"$SSHD_DIR/sshd.log" 2>&1 &
	SSHD_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
			"$SSHD_PORT" 2>/dev/null && break
		kill -0 "$SSHD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$SSHD_PID" 2>/dev/null || { echo "sshd: did not start; log:" >&2; tail -n 20 "$SSHD_DIR/sshd.log" >&2; return 1; }
	export SSHD_PORT
	export CAIRN_TEST_SFTP_ROOT=$SSHD_DIR/root
	export CAIRN_TEST_SFTP_URL=sftp://root@127.0.0.1:$SSHD_PORT/$CAIRN_TEST_SFTP_ROOT
	export CAIRN_SFTP_IDENTITY=$SSHD_DIR/user_ed25519
	export CAIRN_SFTP_KNOWN_HOSTS=$SSHD_DIR/known_hosts
	echo "sshd: pid $SSHD_PID on 127.0.0.1:$SSHD_PORT"
}

# _sshd_descendants PID — every process below PID (sessions fork twice)
_sshd_descendants() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
		echo "$c"
		_sshd_descendants "$c"
	done
}

sshd_stop() {
	[ -n "$SSHD_PID" ] || return 0
	local p kids
	kids=$(_sshd_descendants "$SSHD_PID")
	kill -9 "$SSHD_PID" 2>/dev/null || true
	for p in $kids; do kill -9 "$p" 2>/dev/null || true; done
	wait "$SSHD_PID" 2>/dev/null || true
	SSHD_PID=
}

sshd_host_fingerprint() {
	ssh-keygen -l -E sha256 -f "$SSHD_DIR/host_ed25519.pub" | awk '{print $2}'
}

sshd_cleanup() {
	sshd_stop
	[ -n "$SSHD_DIR" ] && [ -z "${KEEP_TMP:-}" ] && rm -rf "$SSHD_DIR"
	return 0
}
