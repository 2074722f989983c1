#!/bin/bash
# The agent daemon with real libvirtd and QEMU guests: --check-config; a job
# scheduled every minute backs up two guests, applies retention, replicates
# to a second repository and to S3 (a Ceph RGW, credentials from the
# repository's s3-credentials-file), and status and the metrics file show it; SIGHUP
# with a changed configuration takes effect (and a broken one is refused);
# a job whose VM cannot be read fails for that VM only, and the webhook
# (a listener on loopback) receives the failure summary; SIGTERM during a
# backup leaves no libvirt job, no new checkpoint and a clean repository.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"
. "$(dirname "$0")/rgw.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_agent.XXXXXX)
chmod 0777 "$D"
at_exit "rm -rf '$D'"
A=cairn-t-agent-a-$$
B=cairn-t-agent-b-$$
C=cairn-t-agent-c-$$
qemu-img create -q -f qcow2 "$D/a.qcow2" 64M
qemu-img create -q -f qcow2 "$D/b.qcow2" 64M
vm_define "$A" "$D" "$D/a.qcow2"
# B's second disk: incompressible, so that a backup of it lasts long
# enough to be interrupted
head -c 192M /dev/urandom >"$D/big.raw"
vm_define "$B" "$D" "$D/b.qcow2" "$D/big.raw"
virsh -q start "$A" >/dev/null
virsh -q start "$B" >/dev/null
vm_wait_records "$A" "$D" 50
vm_wait_records "$B" "$D" 50

R=$T/repo
R2=$T/offsite
echo "$CAIRN_PASSWORD" >"$T/pw"
cairn_q init "$R"
cairn_q init "$R2" --replica-of "$R"
rgw_start
R3=$CAIRN_TEST_S3_URL/agent
cairn_q init "$R3" --replica-of "$R"
# the agent gets its keys from the file only, not from the environment
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$T/aws"
S3_ID=$AWS_ACCESS_KEY_ID S3_SECRET=$AWS_SECRET_ACCESS_KEY
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
STATE=$T/state
METRICS=$T/metrics
mkdir -p "$METRICS"
conf() { # JOB-EXTRA-LINES
	cat >"$T/cairn.conf" <<EOF2
[global]
state-dir = $STATE
metrics-dir = $METRICS
run-dir = $T/run

[repository local]
url = $R
password-file = $T/pw

[repository offsite]
url = $R2
password-file = $T/pw
keep-last = 1

[repository cloud]
url = $R3
password-file = $T/pw
s3-credentials-file = $T/aws
connections = 2
keep-last = 1

[job minutely]
domains = cairn-t-agent-a-* $B
schedule = minutely
repository = local
keep-last = 2
replicate-to = offsite cloud
$1
EOF2
}

step "--check-config: a good file, then a broken one with its line"
conf ""
cairn_q agent --config "$T/cairn.conf" --check-config
grep -q "job minutely: next run" "$T/last.out" || die "no next run shown"
conf "paralel = 2"
expect_fail 1 "$CAIRN" agent --config "$T/cairn.conf" --check-config
assert_msg_matches "cairn.conf:28: unknown key 'paralel' .*did you mean 'parallel'"

step "the daemon runs the minutely job for both guests"
conf ""
"$CAIRN" agent --config "$T/cairn.conf" --foreground 2>"$T/agent.log" &
agent=$!
BG_PIDS+=("$agent")
for i in $(seq 1 150); do
	n=$(find "$STATE/runs/minutely" -name "*.json" 2>/dev/null | wc -l || true)
	[ "$n" -ge 2 ] && break
	sleep 1
done
[ "$n" -ge 2 ] || die "no runs recorded: $(tail -5 "$T/agent.log")"
cairn_q status --state-dir "$STATE" --json
assert_eq "$(json '" ".join(sorted(r["vm"] for r in j))' <"$T/last.out")" "$A $B" "VMs in status"
assert_eq "$(json 'all(r["ok"] for r in j)' <"$T/last.out")" true "runs ok"
grep -q "cairn_backup_last_success{job=\"minutely\",vm=\"$A\"} 1" "$METRICS/cairn.prom" ||
	die "metrics missing: $(cat "$METRICS/cairn.prom")"
assert_eq "$(snap_count "$R2")" 2 "snapshots replicated (keep-last 1 per VM there)"
AWS_ACCESS_KEY_ID=$S3_ID AWS_SECRET_ACCESS_KEY=$S3_SECRET cairn_q check "$R3" --read-data
assert_eq "$(AWS_ACCESS_KEY_ID=$S3_ID AWS_SECRET_ACCESS_KEY=$S3_SECRET snap_count "$R3")" 2 \
	"snapshots replicated to S3 (keep-last 1 per VM there)"
grep -q "job minutely vm $A: snapshot" "$T/agent.log" || die "no per-VM log line"

step "SIGHUP: a broken file is refused, a fixed one is taken"
conf "paralel = 2"
kill -HUP "$agent"
for i in $(seq 1 20); do grep -q "reload refused" "$T/agent.log" && break; sleep 0.5; done
grep -q "reload refused, old configuration kept: .*paralel" "$T/agent.log" || die "bad reload not refused"
conf "parallel = 2
[job second]
domains = $A
schedule = yearly
repository = local"
kill -HUP "$agent"
for i in $(seq 1 20); do grep -q "configuration reloaded (2 jobs)" "$T/agent.log" && break; sleep 0.5; done
grep -q "configuration reloaded (2 jobs)" "$T/agent.log" || die "reload not taken: $(tail -3 "$T/agent.log")"
kill -TERM "$agent"
wait "$agent" || true
grep -q "cairn-agent: stopped" "$T/agent.log" || die "the daemon did not stop cleanly"

step "a VM that cannot be read fails alone; the webhook hears about it"
cat >"$D/c.xml" <<EOF2
<domain type='qemu'><name>$C</name><memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
    <source file='$D/missing.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>
EOF2
virsh -q define "$D/c.xml" >/dev/null
at_exit "vm_destroy $C"
port=$((20000 + $$ % 20000))
python3 - "$port" "$T/hook.json" <<'PY' &
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        open(out, "wb").write(body)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).handle_request()
PY
hook=$!
BG_PIDS+=("$hook")
sleep 0.5
cat >>"$T/cairn.conf" <<EOF2
[job broken]
domains = $A $C
schedule = yearly
repository = local
webhook = http://127.0.0.1:$port/hook
EOF2
rc=0
# under systemd (JOURNAL_STREAM set), every line carries its syslog priority
JOURNAL_STREAM=8:4242 "$CAIRN" agent --config "$T/cairn.conf" --run-job broken 2>"$T/broken.log" || rc=$?
assert_eq "$rc" 1 "exit code of a job with a failed VM"
grep -q "^<3>cairn-agent: job broken vm $C: .*missing.qcow2" "$T/broken.log" ||
    die "no failure line at priority 3: $(cat "$T/broken.log")"
grep -q "^<6>cairn-agent: job broken vm $A: backup started" "$T/broken.log" ||
    die "no info line at priority 6: $(cat "$T/broken.log")"
wait "$hook" || true
[ -s "$T/hook.json" ] || die "the webhook got nothing"
assert_eq "$(json 'j["ok"]' <"$T/hook.json")" false "summary ok"
assert_eq "$(json '{r["vm"]: r["ok"] for r in j["runs"]}["'"$A"'"]' <"$T/hook.json")" true "$A in the summary"
assert_eq "$(json '{r["vm"]: r["ok"] for r in j["runs"]}["'"$C"'"]' <"$T/hook.json")" false "$C in the summary"
"$CAIRN" status --state-dir "$STATE" >"$T/status.txt" && die "status exits 0 although a run failed"
grep -q "$C .*FAILED" "$T/status.txt" || die "status does not show the failure"

step "SIGTERM during a backup: no job, no new checkpoint, clean repository"
# a repository of its own: the first backup into it reads every disk in full
cairn_q init "$T/fresh"
cat >"$T/term.conf" <<EOF2
[global]
state-dir = $STATE
run-dir = $T/run
log-level = error
[repository fresh]
url = $T/fresh
password-file = $T/pw
[job second]
domains = $B
schedule = yearly
repository = fresh
EOF2
ckpts=$(virsh checkpoint-list "$B" --name | sort)
"$CAIRN" agent --config "$T/term.conf" --run-job second 2>"$T/term.log" &
run=$!
for i in $(seq 1 3000); do compgen -G "/var/tmp/cairn-??????/nbd.sock" >/dev/null && break; sleep 0.01; done
sleep 0.5
kill -TERM "$run"
wait "$run" && die "the interrupted job reported success"
grep -q "job second vm $B: .*interrupted" "$T/term.log" || die "not interrupted mid-backup: $(cat "$T/term.log")"
grep -q "backup started" "$T/term.log" && die "log-level = error printed an info line: $(cat "$T/term.log")"
[[ $(virsh domjobinfo "$B") == *"Job type:"*None* ]] || die "a libvirt job is still running"
assert_eq "$(virsh checkpoint-list "$B" --name | sort)" "$ckpts" "checkpoints after SIGTERM"
cairn_q check "$T/fresh"
assert_eq "$(snap_count "$T/fresh")" 0 "snapshots written by the interrupted job"

step "catch-up: a daily job that last ran two days ago runs as soon as the agent starts"
cat >"$T/catchup.conf" <<EOF2
[global]
state-dir = $STATE
run-dir = $T/run
[repository local]
url = $R
password-file = $T/pw
[job nightly]
domains = $A
schedule = daily
randomized-delay = 2s
repository = local
EOF2
mkdir -p "$STATE/jobs"
python3 -c 'import json, sys, time; json.dump({"version": 1, "job": "nightly", "last_run": "two days ago", "last_run_ns": int((time.time() - 2 * 86400) * 1e9)}, open(sys.argv[1], "w"))' \
	"$STATE/jobs/nightly.json"
"$CAIRN" agent --config "$T/catchup.conf" --foreground 2>"$T/catchup.log" &
agent=$!
BG_PIDS+=("$agent")
for i in $(seq 1 90); do
	compgen -G "$STATE/runs/nightly/*.json" >/dev/null && break
	sleep 1
done
compgen -G "$STATE/runs/nightly/*.json" >/dev/null || die "the missed run did not happen: $(cat "$T/catchup.log")"
grep -q "job nightly: missed its run at .*, running at" "$T/catchup.log" ||
	die "the catch-up was not announced: $(cat "$T/catchup.log")"
kill -TERM "$agent"
wait "$agent" || die "the agent did not stop cleanly after SIGTERM"

step "a damaged manifest in the repository fails the run, and status names it"
dmg=$(snap_id "$R" "$A")
flip_byte "$R/snapshots/$dmg" 40
"$CAIRN" agent --config "$T/catchup.conf" --run-job nightly 2>"$T/dmg.log" &&
	die "a run that met a damaged manifest reported success"
grep -q "repository damage: .*${dmg:0:12}.*damaged" "$T/dmg.log" ||
	die "the run does not name the damaged manifest: $(cat "$T/dmg.log")"
"$CAIRN" status --state-dir "$STATE" --json >"$T/status.json" || true
assert_eq "$(json '[r["ok"] for r in j if r["job"] == "nightly"]' <"$T/status.json")" "[false]" "nightly's record after damage"
json '[r["message"] for r in j if r["job"] == "nightly"][0]' <"$T/status.json" | grep -q "repository damage: .*${dmg:0:12}" ||
	die "status does not name the damaged manifest: $(cat "$T/status.json")"
"$CAIRN" status --state-dir "$STATE" >"$T/status.txt" && die "status exits 0 after a damaged run"
grep -q "$A .*FAILED" "$T/status.txt" || die "status does not show the failed run"
pass
