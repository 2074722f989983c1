# shellcheck shell=bash
# cairn benchmark, host keys section: what backing up with a write-only host
# key (docs/design.md section 26) costs against the password. Sourced by
# tests/bench/run.sh after its helpers and images; run on its own with
#
#   BENCH_ONLY=hostkeys make bench   or   BENCH_ONLY=hostkeys tests/bench/run.sh ./cairn docs/benchmarks.md
#
# which replaces only this section of an existing report.
#
# The data: osimg (the disk section's image). Three ways, each a full
# backup into a fresh local repository, taken in turn BENCH_HOSTKEYS_RUNS
# (3) times so that a change in the machine's load falls on all three:
#   - password: an ordinary encrypted repository (`cairn init`), the password;
#   - host-keys repository, password: `cairn init --host-keys` (disk data
#     sealed to the repository public key, whoever writes), the password;
#   - host key: the same kind of repository, `--key-file` of a host key and
#     no password.
# The target (issue 14): the host key costs at most 5 % of the full backup
# time with the password.

HK_RUNS=${BENCH_HOSTKEYS_RUNS:-3}
declare -A HK

# hk_cpu LABEL: user + system seconds of the timed run LABEL
hk_cpu() {
	awk -F': *' '/User time \(seconds\)|System time \(seconds\)/ { s += $2 } END { printf "%.3f", s }' \
		"$WORK/logs/$1.time"
}

# hk_run KIND N: one full backup of osimg the KIND way into a fresh repository
hk_run() {
	local kind=$1 n=$2 repo=$WORK/hostkeys/repo
	rm -rf "$repo"
	case $kind in
	password) "$CAIRN" init "$repo" >/dev/null || die "cairn init failed" ;;
	*)
		"$CAIRN" init "$repo" --host-keys >/dev/null || die "cairn init --host-keys failed"
		rm -f "$WORK/hostkeys/host.key"
		"$CAIRN" key add-host "$repo" bench --out "$WORK/hostkeys/host.key" >/dev/null ||
			die "cairn key add-host failed"
		;;
	esac
	warm "$OSIMG"
	if [ "$kind" = hostkey ]; then
		timeit "hk-$kind-$n" env -u CAIRN_PASSWORD "$CAIRN" backup "$repo" --image "$OSIMG" \
			--name osimg -q --key-file "$WORK/hostkeys/host.key"
	else
		timeit "hk-$kind-$n" "$CAIRN" backup "$repo" --image "$OSIMG" --name osimg -q
	fi
	HK[${kind}_wall]="${HK[${kind}_wall]:-} $T_WALL"
	HK[${kind}_cpu]="${HK[${kind}_cpu]:-} $(hk_cpu "hk-$kind-$n")"
	HK[${kind}_rss]=$T_RSS
	HK[${kind}_repo]=$(dir_bytes "$repo")
	rm -rf "$repo"
}

hostkeys_report() {
	local k base_w base_c
	base_w=$(median ${HK[password_wall]})
	base_c=$(median ${HK[password_cpu]})
	echo "<!-- hostkeys-bench begin -->"
	echo "## Host keys: a backup with a key that can only add"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC by \`tests/bench/hostkeys.sh\` (\`BENCH_ONLY=hostkeys make bench\`); $(nproc) cores; load average ${HK[load0]} when it started, ${HK[load1]} when it ended."
	echo
	echo "osimg ($IMG_SIZE raw, $((STAGED_BYTES / 1000000)) MB of /usr in ext4), a full backup into a fresh local repository (default chunk size, aes-256-gcm), three ways taken in turn, $HK_RUNS runs each; page caches warm. In a host-keys repository (\`cairn init --host-keys\`) disk data is sealed per pack to the repository public key (one X25519 key agreement per pack) whoever writes it."
	echo
	echo "| full backup of osimg | wall s (median) | CPU s (median) | wall / password | CPU / password | peak RSS MiB | repository MiB | every run: wall s |"
	echo "|---|---:|---:|---:|---:|---:|---:|---|"
	for k in password hkrepo hostkey; do
		local w c
		w=$(median ${HK[${k}_wall]})
		c=$(median ${HK[${k}_cpu]})
		echo "| $(case $k in password) echo "ordinary repository, password" ;; hkrepo) echo "host-keys repository, password" ;; hostkey) echo "host-keys repository, host key (\`--key-file\`)" ;; esac) | $(secs "$w") | $(secs "$c") | $(awk -v a="$w" -v b="$base_w" 'BEGIN { printf "%.3f", a / b }') | $(awk -v a="$c" -v b="$base_c" 'BEGIN { printf "%.3f", a / b }') | $((HK[${k}_rss] / 1024)) | $(mib "${HK[${k}_repo]}") |$(for x in ${HK[${k}_wall]}; do printf ' %s' "$(secs "$x")"; done) |"
	done
	local r
	r=$(awk -v a="$(median ${HK[hostkey_wall]})" -v b="$base_w" 'BEGIN { printf "%.3f", a / b }')
	echo
	echo "Target: the host key costs at most 5 % of the full backup time with the password: host key / password = $r, $(awk -v r="$r" 'BEGIN { print (r <= 1.05) ? "PASS" : "MISS" }')."
	echo "<!-- hostkeys-bench end -->"
}

hostkeys_bench_main() {
	rm -rf "$WORK/hostkeys"
	mkdir -p "$WORK/hostkeys"
	HK[load0]=$(awk '{ print $1 }' /proc/loadavg)
	local n
	for n in $(seq 1 "$HK_RUNS"); do
		hk_run password "$n"
		hk_run hkrepo "$n"
		hk_run hostkey "$n"
		log "hostkeys run $n: password $(secs "${HK[password_wall]##* }") s, host-keys repository $(secs "${HK[hkrepo_wall]##* }") s, host key $(secs "${HK[hostkey_wall]##* }") s"
	done
	HK[load1]=$(awk '{ print $1 }' /proc/loadavg)
	rm -rf "$WORK/hostkeys"
}
