#!/bin/bash
# The anomaly guard (docs/design.md section 24) through the agent, with a
# real libvirtd: a shut-off domain whose raw disk holds an ext4 filesystem
# is backed up night after night by `cairn agent --run-job` (keep-last 1).
# Ordinary nights (about 1 % of the disk rewritten with compressible data)
# raise nothing; the night the disk is overwritten with random data the
# snapshot is marked suspicious in its manifest, the snapshot before it is
# protected (and survives the job's keep-last 1 afterwards), the webhook
# gets the summary although notify-success is off, the metric and status
# show the alarm, and `cairn snapshots` (text and --json) shows both. The
# next ordinary night raises nothing again. Then `cairn backup --image`:
# the alarm on stderr and in --json, --guard thresholds, off and a bad one.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_guard.XXXXXX)
chmod 0777 "$D"
at_exit "rm -rf '$D'"
NAME=cairn-t-guard-$$
mkimg_fs "$D/vda.raw" 64M
chmod 0666 "$D/vda.raw"
cat >"$D/dom.xml" <<EOF
<domain type='qemu'><name>$NAME</name><memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>
    <source file='$D/vda.raw'/><target dev='vda' bus='virtio'/></disk></devices></domain>
EOF
virsh -q define "$D/dom.xml" >/dev/null
at_exit "vm_destroy $NAME"

R=$T/repo
cairn_q init "$R"
echo "$CAIRN_PASSWORD" >"$T/pw"
mkdir -p "$T/metrics" "$T/hooks"

# a webhook listener: every POST body to $T/hooks/N.json
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$port" "$T/hooks" <<'PY' &
import http.server, os, sys
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n = len(os.listdir(out))
        open(os.path.join(out, ".tmp"), "wb").write(body)
        os.rename(os.path.join(out, ".tmp"), os.path.join(out, "%d.json" % n))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
BG_PIDS+=("$!")
for i in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

cat >"$T/cairn.conf" <<EOF
[global]
state-dir = $T/state
metrics-dir = $T/metrics
run-dir = $T/run

[repository local]
url = $R
password-file = $T/pw

[job nightly]
domains = $NAME
schedule = yearly
repository = local
keep-last = 1
webhook = http://127.0.0.1:$port/hook
# judge even small nights, so that the ordinary ones are really judged
anomaly-guard = min-new=256K
EOF
cairn_q agent --config "$T/cairn.conf" --check-config

# night N — one run of the job; its log lines in $T/night-N.log
night() {
	"$CAIRN" agent --config "$T/cairn.conf" --run-job nightly 2>"$T/night-$1.log" ||
		die "night $1: the job failed: $(cat "$T/night-$1.log")"
}
# ordinary_change SEED — about 1 % of the disk (640 KiB) rewritten with
# compressible text (numbers), at a place that depends on the seed
ordinary_change() {
	{ seq "$(($1 * 1000000))" "$(($1 * 1000000 + 200000))" || true; } | head -c 655360 |
		dd of="$D/vda.raw" bs=64K seek=$((16 + $1 * 24)) conv=notrunc status=none
}
snaps() { "$CAIRN" snapshots "$R" --json >"$T/snaps.json"; }
hooks() { find "$T/hooks" -name '*.json' | wc -l; }
metric() { sed -n "s/^cairn_backup_anomaly{job=\"nightly\",vm=\"$NAME\"} //p" "$T/metrics/cairn.prom"; }
latest() { json 'sorted(j, key=lambda x: x["time_ns"])[-1]'"$1" <"$T/snaps.json"; }

step "three ordinary nights: no alarm"
night 1
for n in 2 3; do
	ordinary_change "$n"
	night "$n"
	snaps
	assert_eq "$(latest '["suspicious"]')" false "night $n suspicious"
	assert_eq "$(latest '["disks"][0]["anomaly"]["suspicious"]')" false "night $n disk record"
	assert_eq "$(metric)" 0 "anomaly metric after night $n"
done
# the last ordinary night was judged against the one before, not waved through
assert_eq "$(latest '["disks"][0]["anomaly"]["basis"]')" history "basis of night 3"
clean=$(latest '["id"]')
assert_eq "$(hooks)" 0 "webhooks after ordinary nights"
grep -q 'suspicious' "$T/night-3.log" && die "an ordinary night logged an alarm"

step "the disk is overwritten with random data: the alarm"
head -c 48M /dev/urandom | dd of="$D/vda.raw" bs=1M seek=8 conv=notrunc status=none
night 4
snaps
assert_eq "$(latest '["suspicious"]')" true "night 4 suspicious"
a=$(latest '["disks"][0]["anomaly"]')
echo "  anomaly record: $a"
[ "$(echo "$a" | json 'j["change"] > 0.5 and j["incompressible"] > 0.95')" = true ] ||
	die "the record does not show the jump: $a"
assert_eq "$(echo "$a" | json 'j["thresholds"]["min_new_bytes"]')" 262144 "threshold from cairn.conf"
assert_eq "$(json '[s["protected"] for s in j if s["id"] == "'"$clean"'"][0]' <"$T/snaps.json")" true \
	"the last clean snapshot protected"
grep -q "^cairn-agent: job nightly vm $NAME: snapshot .*suspicious change: disk vda: .*snapshot ${clean:0:12} protected" \
	"$T/night-4.log" || die "no alarm in the log: $(cat "$T/night-4.log")"
for i in $(seq 1 50); do [ "$(hooks)" -ge 1 ] && break; sleep 0.1; done
assert_eq "$(hooks)" 1 "webhooks after the alarm"
assert_eq "$(json 'j["anomaly"]' <"$T/hooks/0.json")" true "webhook summary anomaly"
assert_eq "$(json 'j["ok"]' <"$T/hooks/0.json")" true "webhook summary ok"
json 'j["runs"][0]["message"]' <"$T/hooks/0.json" | grep -q "suspicious change" ||
	die "the webhook does not say why: $(cat "$T/hooks/0.json")"
assert_eq "$(metric)" 1 "anomaly metric after the alarm"
cairn_q status --state-dir "$T/state"
grep -q "$NAME .* ALARM " "$T/last.out" || die "status does not show the alarm: $(cat "$T/last.out")"
cairn_q snapshots "$R"
grep -q "^${clean:0:12} .* protected " "$T/last.out" || die "snapshots does not show the protection"
grep -q " SUSPICIOUS " "$T/last.out" || die "snapshots does not show the suspicious snapshot"
cp "$D/vda.raw" "$T/encrypted.raw"

step "the next ordinary night: no alarm, and retention keeps the protected snapshot"
ordinary_change 5
night 5
snaps
assert_eq "$(latest '["suspicious"]')" false "night 5 suspicious"
assert_eq "$(metric)" 0 "anomaly metric after night 5"
sleep 0.3
assert_eq "$(hooks)" 1 "webhooks after night 5"
# keep-last 1 kept night 5, and the protected night 3; night 4 is gone
assert_eq "$(json 'len(j)' <"$T/snaps.json")" 2 "snapshots after retention"
assert_eq "$(json '[s["id"] for s in j if s["protected"]] == ["'"$clean"'"]' <"$T/snaps.json")" true \
	"the protected snapshot kept"
cairn_q forget "$R" --name "$NAME" --keep-last 1
assert_eq "$(snap_count "$R")" 2 "snapshots after forget --keep-last 1"

step "cairn backup of an image: the alarm on stderr and in --json, --guard"
mkimg_fs "$T/img.raw" 48M
cairn_q backup "$R" --image "$T/img.raw" --name img
{ seq 1 200000 || true; } | head -c 655360 | dd of="$T/img.raw" bs=64K seek=40 conv=notrunc status=none
cairn_q backup "$R" --image "$T/img.raw" --name img --json --guard min-new=256K
assert_eq "$(json 'j["suspicious"]' <"$T/last.out")" false "image: an ordinary change"
quiet=$(json 'j["snapshot"]' <"$T/last.out")
head -c 32M /dev/urandom | dd of="$T/img.raw" bs=1M seek=8 conv=notrunc status=none
cairn_q backup "$R" --image "$T/img.raw" --name img --json
assert_eq "$(json 'j["suspicious"]' <"$T/last.out")" true "image: random overwrite"
assert_eq "$(json 'j["protected"]' <"$T/last.out")" "$quiet" "image: the snapshot protected"
grep -q "^cairn: warning: img: suspicious change: disk img.raw: .*snapshot ${quiet:0:12} protected" \
	"$T/last.err" || die "no alarm on stderr: $(cat "$T/last.err")"
expect_fail 2 "$CAIRN" backup "$R" --image "$T/img.raw" --name img --guard factor=0.5
assert_msg_matches "bad value for factor"
head -c 32M /dev/urandom | dd of="$T/img.raw" bs=1M seek=8 conv=notrunc status=none
cairn_q backup "$R" --image "$T/img.raw" --name img --json --guard off
assert_eq "$(json 'j["suspicious"]' <"$T/last.out")" false "image: --guard off"
"$CAIRN" snapshots "$R" --name img --json >"$T/img.json"
assert_eq "$(json '"anomaly" in sorted(j, key=lambda x: x["time_ns"])[-1]["disks"][0]' <"$T/img.json")" \
	false "a record without the guard"
pass
