#!/bin/bash
# The agent's HTTP console with a real agent, libvirtd and a QEMU guest
# under TCG, a local repository and its replica on S3 (a Ceph RGW, when
# installed), and a second agent as a [peer]: the API with curl (401 without or with a
# wrong token, 4xx JSON errors on bad input, run-now queues a job that the
# status shows running and then done, snapshots/stats/metrics/protect,
# a boot test started from the API with the guest's console lines kept,
# the browser session cookie and its CSRF rules), then the page itself in
# headless Chromium (tests/integration/console_page.js) when Chromium and
# puppeteer-core are there. Screenshots go to the test logs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"
. "$(dirname "$0")/rgw.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_console.XXXXXX)
chmod 0777 "$D"
at_exit "rm -rf '$D'"
at_exit 'for d in $(virsh list --name | grep "^cairn-verify-"); do virsh -q destroy "$d"; done'
NAME=cairn-t-console-$$
qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
vm_define "$NAME" "$D" "$D/vda.qcow2"
virsh -q start "$NAME" >/dev/null

R=$T/repo
echo "$CAIRN_PASSWORD" >"$T/pw"
cairn_q init "$R"
head -c 32 /dev/urandom | base64 | tr -d '/+=' >"$T/token"
TOKEN=$(cat "$T/token")
PORT=$((20000 + $$ % 20000))
U=http://127.0.0.1:$PORT
ART=${CAIRN_TEST_LOGS:-$T}/t_console
mkdir -p "$ART"
CLOUD="" REPLICATE=""
if why=$(rgw_available); then
	rgw_start
	cairn_q init "$CAIRN_TEST_S3_URL/console" --replica-of "$R"
	printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
		"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$T/aws"
	CLOUD="[repository cloud]
url = $CAIRN_TEST_S3_URL/console
password-file = $T/pw
s3-credentials-file = $T/aws"
	REPLICATE="replicate-to = cloud"
else
	echo "no RGW ($why): the local repository only"
fi

# the peer: another agent (its job never due) whose status the first shows
head -c 32 /dev/urandom | base64 | tr -d '/+=' >"$T/peer-token"
PEER_PORT=$((PORT + 1))
mkdir -p "$T/peer"
cat >"$T/peer/cairn.conf" <<EOF2
[global]
state-dir = $T/peer/state
run-dir = $T/peer/run
[repository local]
url = $R
password-file = $T/pw
[job peerjob]
domains = cairn-t-console-nothing
schedule = yearly
repository = local
[http]
listen = 127.0.0.1:$PEER_PORT
token-file = $T/peer-token
www-dir = $TOP_DIR/daemon/www
EOF2
"$CAIRN" agent --config "$T/peer/cairn.conf" --foreground 2>"$T/peer/agent.log" &
at_exit "kill $! 2>/dev/null || true"

cat >"$T/cairn.conf" <<EOF2
[global]
state-dir = $T/state
run-dir = $T/run

[repository local]
url = $R
password-file = $T/pw

[job nightly]
domains = $NAME
schedule = daily
repository = local
# the backup of this small guest takes a second: long enough to be seen running
pre-hook = sleep 3
$REPLICATE

$CLOUD

[peer hv2]
url = http://127.0.0.1:$PEER_PORT
token-file = $T/peer-token

[http]
listen = 127.0.0.1:$PORT
token-file = $T/token
www-dir = $TOP_DIR/daemon/www
EOF2
start_agent_console "$T/cairn.conf" "$U"
at_exit "cp '$T/agent.log' '$ART/agent.log' 2>/dev/null || true"

# req METHOD PATH [CURL-ARGS...]: the body in $T/body, prints the status
req() {
	local m=$1 p=$2; shift 2
	curl -s -o "$T/body" -w '%{http_code}' -X "$m" "$@" "$U$p"
}
auth=(-H "Authorization: Bearer $TOKEN")
api() { req "$1" "$2" "${auth[@]}" "${@:3}"; }
body() { json "$1" <"$T/body"; }
expect() { # STATUS METHOD PATH [ARGS...]: and a JSON error body for 4xx
	local want=$1 got; shift
	got=$("$@")
	[ "$got" = "$want" ] || die "$2 $3: HTTP $got, expected $want: $(cat "$T/body")"
	case $want in 4*) body 'j["error"]' >/dev/null || die "$2 $3: no JSON error: $(cat "$T/body")" ;; esac
}

step "no token, a wrong token: 401 with a JSON error; the page itself needs none"
expect 401 req GET /api/v1/status
expect 401 req GET /metrics
expect 401 req GET /api/v1/status -H "Authorization: Bearer wrong$TOKEN"
expect 401 req POST /api/v1/jobs/nightly/run
assert_eq "$(req GET /)" 200 "the page"
grep -q '<script src="app.js"' "$T/body" || die "the page is not the console's"
expect 404 req GET /../../etc/passwd

step "bad input: 4xx JSON errors, and the agent keeps serving"
expect 404 api GET /api/v1/nothing
expect 404 api POST /api/v1/jobs/nosuchjob/run
expect 404 api GET /api/v1/repositories/nosuchrepo/snapshots
expect 405 api DELETE /api/v1/status
expect 400 api POST /api/v1/verify -d 'not json'
expect 400 api POST /api/v1/verify -d '{"repository": "local"}'
expect 404 api POST /api/v1/verify -d '{"repository": "nope", "snapshot": "latest"}'
expect 400 api POST /api/v1/verify -d '{"repository": "local", "snapshot": "../x"}'
expect 400 api POST /api/v1/repositories/local/snapshots/zz/protect
expect 404 api POST /api/v1/repositories/local/snapshots/abcdef12/protect
expect 413 api POST /api/v1/verify --data-binary @<(head -c 100000 /dev/zero | tr '\0' x)
expect 200 api GET /api/v1/status
assert_eq "$(body 'len(j["jobs"])')" 1 "jobs in the status"

step "run now: the job is queued, the status shows it running, then done"
vm_wait_records "$NAME" "$D" 50
expect 202 api POST /api/v1/jobs/nightly/run
assert_eq "$(body 'j["queued"]')" true "queued"
expect 409 api POST /api/v1/jobs/nightly/run
seen_running=no
for i in $(seq 120); do
	api GET /api/v1/status >/dev/null
	[ "$(body 'j["running"] and j["running"]["job"] or ""')" = nightly ] && seen_running=yes
	[ "$(body 'len(j["jobs"][0]["vms"])')" = 1 ] && break
	sleep 0.5
done
assert_eq "$seen_running" yes "the status showed the job running"
assert_eq "$(body 'j["jobs"][0]["vms"][0]["vm"]')" "$NAME" "the VM in the status"
assert_eq "$(body 'j["jobs"][0]["vms"][0]["ok"]')" true "the run's result: $(cat "$T/body")"
assert_eq "$(body 'j["jobs"][0]["vms"][0]["rpo"]')" ok "the VM's recovery point"
assert_eq "$(body 'j["running"]')" null "nothing running after the run"
expect 200 api GET /api/v1/history
assert_eq "$(body 'j[0]["vm"]')" "$NAME" "the history's newest run"

step "snapshots, stats and metrics agree with the CLI"
expect 200 api GET /api/v1/repositories
assert_eq "$(body 'j[0]["name"]')" local "repositories"
expect 200 api GET /api/v1/repositories/local/snapshots
snap=$(body 'j[0]["id"]')
assert_eq "$snap" "$(snap_id "$R" "$NAME")" "the snapshot id"
assert_eq "$(body 'j[0]["name"]')" "$NAME" "the snapshot's VM"
assert_eq "$(body 'j[0]["kind"]')" full "its kind"
assert_eq "$(body 'j[0]["protected"]')" false "not protected"
expect 200 api GET /api/v1/repositories/local/stats
assert_eq "$(body 'j["snapshots"]')" 1 "stats: snapshots"
assert_eq "$(body 'len(j["history"])')" 1 "stats: history points"
if [ -n "$CLOUD" ]; then
	expect 200 api GET /api/v1/repositories/cloud/snapshots
	assert_eq "$(body 'j[0]["id"]')" "$snap" "the replica's snapshot (RGW)"
	expect 200 api GET /api/v1/repositories/cloud/stats
	assert_eq "$(body 'j["snapshots"]')" 1 "stats of the replica (RGW)"
fi
expect 200 api GET /api/v1/peers
assert_eq "$(body 'j[0]["name"]')" hv2 "the peer"
assert_eq "$(body 'j[0]["status"]["jobs"][0]["name"]')" peerjob "the peer's job, through its API"
expect 200 api GET /metrics
grep -q "^cairn_backup_last_success{job=\"nightly\",vm=\"$NAME\"} 1$" "$T/body" ||
	die "metrics: $(cat "$T/body")"

step "protect and unprotect, by id prefix"
expect 200 api POST "/api/v1/repositories/local/snapshots/${snap:0:12}/protect"
expect 200 api GET /api/v1/repositories/local/snapshots
assert_eq "$(body 'j[0]["protected"]')" true "protected"
expect 200 api POST "/api/v1/repositories/local/snapshots/${snap:0:12}/unprotect"
expect 200 api GET /api/v1/repositories/local/snapshots
assert_eq "$(body 'j[0]["protected"]')" false "unprotected"

step "a browser session: login sets an HttpOnly SameSite=Strict cookie; POSTs need the header and this origin"
expect 403 req POST /api/v1/login -d "{\"token\": \"$TOKEN\"}"
expect 401 req POST /api/v1/login -H 'X-Cairn-Request: 1' -d '{"token": "wrong"}'
req POST /api/v1/login -H 'X-Cairn-Request: 1' -d "{\"token\": \"$TOKEN\"}" -D "$T/headers" -c "$T/jar" >/dev/null
grep -i '^set-cookie: cairn_session=[0-9a-f]\{64\}; Path=/; HttpOnly; SameSite=Strict' "$T/headers" >/dev/null ||
	die "login cookie: $(cat "$T/headers")"
grep -q "$TOKEN" "$T/jar" && die "the cookie holds the token itself"
expect 200 req GET /api/v1/status -b "$T/jar"
expect 403 req POST /api/v1/jobs/nightly/run -b "$T/jar"
expect 403 req POST /api/v1/jobs/nightly/run -b "$T/jar" -H 'X-Cairn-Request: 1' -H 'Origin: http://evil.example'
expect 403 api POST /api/v1/jobs/nightly/run -H 'Origin: http://evil.example'

step "a boot test from the API: it runs beside the schedule and is recorded"
expect 202 api POST /api/v1/verify -d "{\"repository\": \"local\", \"snapshot\": \"$snap\", \"expect_console\": \"cairn-guest: ready\", \"timeout\": 120}"
vid=$(body 'j["id"]')
for i in $(seq 240); do
	api GET /api/v1/status >/dev/null
	state=$(body "j['verify_tests'][$vid]['state']")
	[ "$state" != running ] && break
	sleep 0.5
done
assert_eq "$state" ok "the boot test: $(cat "$T/body")"
expect 200 api GET /api/v1/repositories/local/snapshots
assert_eq "$(body 'j[0]["verification"]["result"]')" ok "the recorded verification"
expect 200 api GET "/api/v1/repositories/local/snapshots/$snap/console"
grep -q "cairn-guest: ready" "$T/body" || die "the console lines kept: $(cat "$T/body")"

if [ -x /usr/bin/chromium ] && [ -d "${CAIRN_NODE_MODULES:-/usr/local/lib/cairn-test-node}/node_modules/puppeteer-core" ]; then
	step "the page in headless Chromium"
	NODE_PATH=${CAIRN_NODE_MODULES:-/usr/local/lib/cairn-test-node}/node_modules \
		node "$LIB_DIR/console_page.js" "$U" "$TOKEN" "$NAME" "$ART" ||
		die "the page test failed"
else
	echo "page test skipped: no /usr/bin/chromium or puppeteer-core (make deps)"
fi

step "HTTPS with tls-cert and tls-key: the cookie is Secure"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
	-subj /CN=127.0.0.1 2>/dev/null
sed -e "s|^listen = .*|listen = 127.0.0.1:$((PORT + 2))|" -e "s|^token-file = $T/token$|&\ntls-cert = $T/cert.pem\ntls-key = $T/key.pem|" \
	-e '/^\[job nightly\]/,/^$/d' -e "s|^state-dir = .*|state-dir = $T/tls-state|" "$T/cairn.conf" >"$T/tls.conf"
"$CAIRN" agent --config "$T/tls.conf" --foreground 2>"$T/tls.log" &
at_exit "kill $! 2>/dev/null || true"
for i in $(seq 50); do curl -sk -o /dev/null "https://127.0.0.1:$((PORT + 2))/" && break; sleep 0.2; done
assert_eq "$(curl -sk -o /dev/null -w '%{http_code}' "${auth[@]}" "https://127.0.0.1:$((PORT + 2))/api/v1/repositories")" 200 "over HTTPS"
curl -sk -o /dev/null -D "$T/headers" -X POST -H 'X-Cairn-Request: 1' -d "{\"token\": \"$TOKEN\"}" \
	"https://127.0.0.1:$((PORT + 2))/api/v1/login"
grep -qi '^set-cookie: .*; Secure' "$T/headers" || die "no Secure cookie over HTTPS: $(cat "$T/headers")"

kill "$AGENT"
wait "$AGENT" || true
grep -q "stopped" "$T/agent.log" || die "the agent did not stop cleanly: $(tail -3 "$T/agent.log")"
pass
