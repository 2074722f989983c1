#!/usr/bin/env bash
# cairn benchmark: cairn vs restic vs borg on a raw KVM-style disk image,
# then cairn vs virtnbdbackup on a running VM (tests/bench/vm.sh).
#
#   tests/bench/run.sh CAIRN_BINARY OUTPUT.md        (what `make bench` runs)
#
# Environment (defaults in brackets):
#   BENCH_DIR          work directory, images are kept and reused [/var/tmp/cairn-bench]
#   BENCH_IMG_SIZE     size of the raw image (truncate syntax)     [4G]
#   BENCH_DATA_MB      MB (10^6 bytes) of /usr copied into the ext4 [2500]
#   BENCH_RUNS         full sequences per tool, medians reported    [3]
#   BENCH_TOOLS        tools to compare                             ["cairn restic borg"]
#   BENCH_CHUNK_SIZES  cairn chunk-size study ("" to skip)          ["64K 256K 512K 1M 4M"]
#   BENCH_SCATTER_WRITES  number of 64 KiB random writes            [~1% of the image]
#   BENCH_SEED         seed for the scatter offsets and data        [20240601]
#   BENCH_IMAGES_ONLY  1: only build (or check) the images, then stop
#   BENCH_ONLY         vm: only the running-VM section (replaced in an existing
#                      OUTPUT.md, the rest kept); disk: only the image benchmark;
#                      lifecycle: only gc/check (tests/bench/lifecycle.sh);
#                      replicate: only replication and backup to a Ceph RGW
#                      (tests/bench/replicate.sh); wan: only restore from
#                      RGW through a simulated WAN (tests/bench/wan.sh);
#                      thin: only thin vs thick disks (tests/bench/thin.sh);
#                      hostkeys: only backup with a host key vs the password
#                      (tests/bench/hostkeys.sh)
#                      [all]; see tests/bench/vm.sh for its own variables
#   CAIRN_BENCH_QUICK  1: the wan and thin sections on small sizes and one
#                      delay, a smoke test of a few minutes (marked so in
#                      the report: do not commit its numbers)
#
# Quick smoke test:
#   BENCH_IMG_SIZE=256M BENCH_DATA_MB=150 BENCH_RUNS=1 tests/bench/run.sh ./cairn /tmp/b.md
set -euo pipefail
export LC_ALL=C
BENCH_HERE=$(cd "$(dirname "$0")" && pwd)

usage() { echo "usage: $0 CAIRN_BINARY OUTPUT.md" >&2; exit 2; }
[ $# -eq 2 ] || usage

CAIRN=$1
OUT_MD=$2
WORK=${BENCH_DIR:-/var/tmp/cairn-bench}
IMG_SIZE=${BENCH_IMG_SIZE:-4G}
DATA_MB=${BENCH_DATA_MB:-2500}
RUNS=${BENCH_RUNS:-3}
TOOLS=${BENCH_TOOLS:-cairn restic borg}
CHUNK_SIZES=${BENCH_CHUNK_SIZES-64K 256K 512K 1M 4M}
SEED=${BENCH_SEED:-20240601}
BLOCK=65536                       # scatter write size and alignment

PASSWORD='cairn-bench-password'
export CAIRN_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# ---------------------------------------------------------------- helpers

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

has_tool() { case " $TOOLS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# need CMD APT_PACKAGE: fail with an install hint if CMD is missing
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    MISSING+=("$1 (apt-get install $2)")
}

check_tools() {
    MISSING=()
    need awk mawk; need cmp diffutils; need numfmt coreutils; need truncate coreutils
    need dd coreutils; need mkfs.ext4 e2fsprogs; need openssl openssl; need zstd zstd
    [ -x /usr/bin/time ] || MISSING+=("/usr/bin/time (apt-get install time)")
    has_tool restic && need restic restic
    has_tool borg && need borg borgbackup
    if has_tool cairn && [ ! -x "$CAIRN" ]; then
        MISSING+=("$CAIRN (build it: make cairn)")
    fi
    if [ ${#MISSING[@]} -gt 0 ]; then
        printf 'bench: missing tool: %s\n' "${MISSING[@]}" >&2
        exit 1
    fi
    for t in $TOOLS; do
        case $t in cairn|restic|borg) ;; *) die "unknown tool '$t' in BENCH_TOOLS" ;; esac
    done
}

# timeit LABEL CMD...: run CMD under /usr/bin/time -v, output in logs/LABEL.log.
# Sets T_WALL (seconds) and T_RSS (peak RSS, KiB).
timeit() {
    local label=$1; shift
    local tfile="$WORK/logs/$label.time" lfile="$WORK/logs/$label.log"
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$tfile" "$@" >"$lfile" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    if [ $rc -ne 0 ]; then
        tail -n 20 "$lfile" >&2
        die "$label failed (exit $rc): $*  (log: $lfile)"
    fi
    T_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    T_RSS=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$tfile")
    [ -n "$T_RSS" ] || die "no peak RSS in $tfile"
}

# warm FILE|DIR...: flush earlier writes, then read everything once so the
# timed run starts from a warm page cache
warm() { sync; find "$@" -type f -exec cat {} + >/dev/null; }

dir_bytes() { du -sb "$1" | awk '{ print $1 }'; }

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
secs() { awk -v s="$1" 'BEGIN { printf "%.2f", s }'; }

# record TOOL METRIC VALUE: append one run's value
declare -A R
CHUNK_ROWS=()
record() { R[$1:$2]="${R[$1:$2]:-} $3"; }
med() { local -a v; read -ra v <<<"${R[$1:$2]}"; median "${v[@]}"; }
rssmax() { local -a v; read -ra v <<<"${R[$1:rss]}"; maxof "${v[@]}"; }

# verify_restore RESTORED: the restored image must equal osimg byte for byte
verify_restore() {
    [ -f "$1" ] || die "restore produced no file at $1"
    cmp "$1" "$OSIMG" || die "RESTORED IMAGE DIFFERS FROM THE ORIGINAL: $1"
}

# ---------------------------------------------------------------- workload

# The staging budget is TARGET bytes, met within TOL (1 %).
staged_enough() { [ "$STAGED" -ge $((TARGET - TOL)) ]; }

# fill PATH: copy PATH (file, link or directory) into the staging dir if it
# fits in what is left of the budget; descend into directories that do not.
fill() {
    local p=$1 size child
    staged_enough && return 0
    [ -e "$STAGE$p" ] && return 0
    size=$(du -sb "$p" 2>/dev/null | awk '{ print $1 }') || return 0
    [ -n "$size" ] || return 0
    if [ $((STAGED + size)) -le $((TARGET + TOL)) ]; then
        # from / with a relative path: cp 9.1 --parents fails on absolute ones
        (cd / && cp -a --parents "${p#/}" "$STAGE") || return 0
        # count what landed: hard links split across copies take more room
        STAGED=$((STAGED + $(du -sb "$STAGE$p" | awk '{ print $1 }')))
    elif [ -d "$p" ] && [ ! -L "$p" ]; then
        while IFS= read -r -d '' child; do
            fill "$child"
            staged_enough && break
        done < <(find "$p" -mindepth 1 -maxdepth 1 -print0 | sort -z)
    fi
    return 0
}

# stage_usr DIR MB: copy about MB megabytes (10^6) of /usr into DIR, whole
# files and directories in a fixed order; sets STAGE and STAGED (bytes)
stage_usr() {
    STAGE=$1
    TARGET=$(($2 * 1000000))
    TOL=$((TARGET / 100))
    STAGED=0
    mkdir -p "$STAGE"
    log "staging ~$2 MB of /usr in $STAGE"
    local top child
    for top in /usr/lib/x86_64-linux-gnu /usr/bin /usr/share/doc /usr/sbin /usr/libexec \
               /usr/lib /usr/share /usr/include /usr/src /usr/local /usr/lib32 /usr/lib64 /usr/games; do
        [ -d "$top" ] || continue
        while IFS= read -r -d '' child; do
            fill "$child"
            staged_enough && break
        done < <(find "$top" -mindepth 1 -maxdepth 1 -print0 | sort -z)
        staged_enough && break
    done
    STAGED=$(dir_bytes "$STAGE")
}

# fs_image SIZE MB [RANDOM_MB]: the path of a SIZE raw image holding ext4
# made from about MB megabytes of /usr and a file of RANDOM_MB MiB of
# incompressible data (packages, media, compressed logs: what a real disk
# also holds), for the WAN and thin-disk sections; built once and kept in
# WORK like the other images
fs_image() {
    local dir="$WORK/fsimg-v1-$1-${2}MB-r${3:-0}"
    if [ ! -f "$dir/complete" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        stage_usr "$dir/stage" "$2" >&2
        head -c $((${3:-0} * 1048576)) /dev/zero |
            openssl enc -aes-256-ctr -K "$(printf '%064x' "$SEED")" -iv "$(printf '%032x' 3)" \
            >"$dir/stage/incompressible.bin"
        truncate -s "$1" "$dir/disk.raw"
        mkfs.ext4 -q -F -U 6a1b4c2e-0d5f-4e21-9a3b-c0ffee000003 \
            -E hash_seed=6a1b4c2e-0d5f-4e21-9a3b-c0ffee000004 -d "$dir/stage" "$dir/disk.raw" >&2 \
            || die "mkfs.ext4 -d failed (is $1 large enough for $2 MB?)"
        rm -rf "$dir/stage"
        touch "$dir/complete"
    fi
    echo "$dir/disk.raw"
}

build_images() {
    IMG_BYTES=$(numfmt --from=iec "$IMG_SIZE")
    local blocks=$((IMG_BYTES / BLOCK))
    SCATTER_WRITES=${BENCH_SCATTER_WRITES:-$(( (blocks * 640 + 32768) / 65536 ))}
    [ "$SCATTER_WRITES" -ge 1 ] || SCATTER_WRITES=1
    IMGDIR="$WORK/img-v2-$IMG_SIZE-${DATA_MB}MB-w$SCATTER_WRITES-s$SEED"
    OSIMG="$IMGDIR/osimg.raw"
    SCATTER="$IMGDIR/scatter.raw"

    if [ -f "$IMGDIR/complete" ]; then
        log "reusing images in $IMGDIR"
    else
        rm -rf "$IMGDIR"
        mkdir -p "$IMGDIR"
        stage_usr "$IMGDIR/stage" "$DATA_MB"
        local nfiles
        nfiles=$(find "$STAGE" -type f | wc -l)
        if [ "$STAGED" -lt $((TARGET - TOL)) ]; then
            log "note: this machine's /usr gave only $((STAGED / 1000000)) MB (asked for $DATA_MB MB)"
        fi
        log "staged $((STAGED / 1000000)) MB in $nfiles files; making ext4 in a $IMG_SIZE raw image"
        truncate -s "$IMG_SIZE" "$OSIMG"
        mkfs.ext4 -q -F -U 6a1b4c2e-0d5f-4e21-9a3b-c0ffee000001 \
            -E hash_seed=6a1b4c2e-0d5f-4e21-9a3b-c0ffee000002 -d "$STAGE" "$OSIMG" \
            || die "mkfs.ext4 -d failed (is $IMG_SIZE large enough for $DATA_MB MB?)"
        rm -rf "$STAGE"

        log "scatter: $SCATTER_WRITES random 64 KiB writes (seed $SEED)"
        cp --sparse=always "$OSIMG" "$SCATTER"
        awk -v seed="$SEED" -v n="$SCATTER_WRITES" -v blocks="$blocks" 'BEGIN {
            srand(seed)
            while (k < n) { b = int(rand() * blocks); if (!(b in seen)) { seen[b] = 1; print b; k++ } }
        }' >"$IMGDIR/offsets"
        head -c $((SCATTER_WRITES * BLOCK)) /dev/zero |
            openssl enc -aes-256-ctr -K "$(printf '%064x' "$SEED")" -iv "$(printf '%032x' "$SEED")" \
            >"$IMGDIR/random.bin"
        local i=0 off
        while read -r off; do
            dd if="$IMGDIR/random.bin" of="$SCATTER" bs=$BLOCK count=1 skip=$i seek="$off" \
               conv=notrunc status=none
            i=$((i + 1))
        done <"$IMGDIR/offsets"
        rm -f "$IMGDIR/random.bin"
        cmp -s "$OSIMG" "$SCATTER" && die "scatter image equals osimg"
        echo "$STAGED $nfiles" >"$IMGDIR/info"
        touch "$IMGDIR/complete"
    fi
    read -r STAGED_BYTES STAGED_FILES <"$IMGDIR/info"
    IMG_ALLOC=$(du -B1 "$OSIMG" | awk '{ print $1 }')
}

# put_source osimg|scatter: WORK/src/disk.raw becomes that image (hard link, no copy)
put_source() {
    local img=$OSIMG
    [ "$1" = scatter ] && img=$SCATTER
    mkdir -p "$WORK/src"
    ln -f "$img" "$SRC"
}

# ---------------------------------------------------------------- tools

# cairn_sequence RUNDIR LABEL [--chunk-size S]: init, full backup, scatter backup.
# Sets S_FULL S_REPO S_SCAT S_GROWTH S_RSS S_SNAP1.
cairn_sequence() {
    local run=$1 label=$2; shift 2
    local repo="$run/repo"
    "$CAIRN" init "$repo" --encryption aes-256-gcm "$@" >"$WORK/logs/$label-init.log" 2>&1 \
        || die "cairn init failed: $(cat "$WORK/logs/$label-init.log")"
    put_source osimg; warm "$SRC"
    timeit "$label-full" "$CAIRN" backup "$repo" --image "$SRC" --name osimg --json
    S_FULL=$T_WALL; S_RSS=$T_RSS
    S_SNAP1=$(sed -n 's/^ *"snapshot": *"\([0-9a-f]*\)".*/\1/p' "$WORK/logs/$label-full.log")
    [ -n "$S_SNAP1" ] || die "no snapshot id in cairn backup --json output"
    S_REPO=$(dir_bytes "$repo")
    put_source scatter; warm "$SRC"
    timeit "$label-scatter" "$CAIRN" backup "$repo" --image "$SRC" --name osimg --json
    S_SCAT=$T_WALL; S_RSS=$(maxof "$S_RSS" "$T_RSS")
    S_GROWTH=$(( $(dir_bytes "$repo") - S_REPO ))
}

bench_cairn() {
    local n=$1 run="$WORK/runs/cairn-$1"
    rm -rf "$run"; mkdir -p "$run/out"
    cairn_sequence "$run" "cairn-$n"
    warm "$run/repo"
    timeit "cairn-$n-restore" "$CAIRN" restore "$run/repo" "$S_SNAP1" --to "$run/out/disk.raw"
    verify_restore "$run/out/disk.raw"
    record cairn full "$S_FULL"; record cairn repo "$S_REPO"
    record cairn scat "$S_SCAT"; record cairn growth "$S_GROWTH"
    record cairn restore "$T_WALL"; record cairn rss "$(maxof "$S_RSS" "$T_RSS")"
    rm -rf "$run"
}

bench_restic() {
    local n=$1 run="$WORK/runs/restic-$1" rss full repo0
    rm -rf "$run"; mkdir -p "$run/out"
    export RESTIC_REPOSITORY="$run/repo" RESTIC_CACHE_DIR="$run/cache"
    restic init --repository-version 2 >"$WORK/logs/restic-$n-init.log" 2>&1 \
        || die "restic init failed: $(cat "$WORK/logs/restic-$n-init.log")"
    put_source osimg; warm "$SRC"
    timeit "restic-$n-full" restic backup --compression auto --tag full "$SRC"
    full=$T_WALL; rss=$T_RSS; repo0=$(dir_bytes "$run/repo")
    record restic full "$full"; record restic repo "$repo0"
    put_source scatter; warm "$SRC"
    timeit "restic-$n-scatter" restic backup --compression auto --tag scatter "$SRC"
    rss=$(maxof "$rss" "$T_RSS")
    record restic scat "$T_WALL"; record restic growth $(( $(dir_bytes "$run/repo") - repo0 ))
    warm "$run/repo"
    timeit "restic-$n-restore" restic restore latest --tag full --target "$run/out"
    verify_restore "$run/out$SRC"
    record restic restore "$T_WALL"; record restic rss "$(maxof "$rss" "$T_RSS")"
    unset RESTIC_REPOSITORY RESTIC_CACHE_DIR
    rm -rf "$run"
}

bench_borg() {
    local n=$1 run="$WORK/runs/borg-$1" rss repo0
    rm -rf "$run"; mkdir -p "$run/out"
    export BORG_BASE_DIR="$run/home"
    borg init --encryption=none "$run/repo" >"$WORK/logs/borg-$n-init.log" 2>&1 \
        || die "borg init failed: $(cat "$WORK/logs/borg-$n-init.log")"
    put_source osimg; warm "$SRC"
    timeit "borg-$n-full" borg create --compression zstd,3 "$run/repo::a" "$SRC"
    rss=$T_RSS; repo0=$(dir_bytes "$run/repo")
    record borg full "$T_WALL"; record borg repo "$repo0"
    put_source scatter; warm "$SRC"
    timeit "borg-$n-scatter" borg create --compression zstd,3 "$run/repo::b" "$SRC"
    rss=$(maxof "$rss" "$T_RSS")
    record borg scat "$T_WALL"; record borg growth $(( $(dir_bytes "$run/repo") - repo0 ))
    warm "$run/repo"
    # borg extract writes into the current directory, path without the leading /
    cd "$run/out"
    timeit "borg-$n-restore" borg extract "$run/repo::a"
    cd "$WORK"
    verify_restore "$run/out/${SRC#/}"
    record borg restore "$T_WALL"; record borg rss "$(maxof "$rss" "$T_RSS")"
    unset BORG_BASE_DIR
    rm -rf "$run"
}

chunk_study() {
    local cs run
    [ -n "$CHUNK_SIZES" ] || return 0
    DEFAULT_CHUNK=$("$CAIRN" init "$WORK/runs/probe" --encryption none 2>/dev/null >/dev/null &&
        sed -n 's/.*"chunk_size": *\([0-9]*\).*/\1/p' "$WORK/runs/probe/config")
    rm -rf "$WORK/runs/probe"
    for cs in $CHUNK_SIZES; do
        run="$WORK/runs/chunk-$cs"
        rm -rf "$run"; mkdir -p "$run"
        log "chunk study: cairn --chunk-size $cs"
        cairn_sequence "$run" "chunk-$cs" --chunk-size "$cs"
        local bytes mark=""
        bytes=$(numfmt --from=iec "$cs")
        [ "$bytes" = "$DEFAULT_CHUNK" ] && mark=" (default)"
        CHUNK_ROWS+=("| $cs$mark | $(mib "$S_REPO") | $(mib "$S_GROWTH") | $S_GROWTH | $(secs "$S_FULL") | $(secs "$S_SCAT") | $(mib $((S_RSS * 1024))) |")
        rm -rf "$run"
    done
}

physical_refs() {
    log "physical references"
    local i cats=() zsts=()
    warm "$OSIMG"
    for i in 1 2 3; do          # best of 3: a reference is what the machine can do
        timeit ref-cat cat "$OSIMG"; cats+=("$T_WALL")
        # shellcheck disable=SC2016
        timeit ref-zstd sh -c 'zstd -q -T0 -3 -c "$1" >/dev/null' sh "$OSIMG"; zsts+=("$T_WALL")
    done
    REF_CAT=$(printf '%s\n' "${cats[@]}" | sort -g | head -n 1)
    REF_ZSTD=$(printf '%s\n' "${zsts[@]}" | sort -g | head -n 1)
    REF_SHA=$(openssl speed -seconds 3 sha256 2>/dev/null |
        awk '/^sha256 / { v = $NF; sub(/k$/, "", v); printf "%.0f", v / 1000 }')
    REF_GCM=$(openssl speed -seconds 3 -evp aes-256-gcm 2>/dev/null |
        awk 'tolower($1) == "aes-256-gcm" { v = $NF; sub(/k$/, "", v); printf "%.0f", v / 1000 }')
    # single-core zstd speed per level on the image's first 512 MiB (mostly
    # file data): what one core can compress, the floor under any backup
    local sample="$WORK/runs/zstd-sample"
    head -c 512M "$OSIMG" >"$sample"
    local lvl line
    REF_ZLEVELS=""
    for lvl in 1 3; do
        line=$(zstd -b"$lvl" -i3 "$sample" 2>&1 | tr '\r' '\n' | grep 'MB/s,' | tail -n 1)
        REF_ZLEVELS+=$(awk -v l="$lvl" '{ for (i = 1; i <= NF; i++) { if ($i ~ /^\(x/) r = $i; if ($i ~ /^MB\/s/ && !s) s = $(i - 1) } }
            END { gsub(/[(),]/, "", r); printf "level %d: %s MB/s (%s); ", l, s, r }' <<<"$line")
    done
    rm -f "$sample"
}

# ---------------------------------------------------------------- report

# ratio_row NAME CAIRN_VALUE OTHER_VALUE REQUIRED_RATIO MODE
#   MODE faster: ratio = other / cairn, pass if >= required
#   MODE smaller: ratio = cairn / other, pass if <= required
ratio_row() {
    local name=$1 c=$2 o=$3 req=$4 mode=$5
    if [ -z "$c" ] || [ -z "$o" ]; then
        echo "| $name | n/a | n/a | n/a | n/a |"; return
    fi
    awk -v n="$name" -v c="$c" -v o="$o" -v r="$req" -v m="$mode" 'BEGIN {
        if (m == "faster") { x = (c > 0) ? o / c : 0; ok = x >= r; want = sprintf("≥ %.2fx", r) }
        else { x = (o > 0) ? c / o : 1e9; ok = x <= r; want = sprintf("≤ %.2f", r) }
        printf "| %s | %.2f | %s | %s |\n", n, x, want, ok ? "PASS" : "MISS"
    }'
}

write_report() {
    local md=$1 t m
    local cpu ram kern fs
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    ram=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    kern=$(uname -sr)
    fs=$(df -T "$WORK" | awk 'NR == 2 { print $2 }')
    {
        echo "# cairn benchmarks"
        echo
        echo "Generated by \`make bench\` (tests/bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'). Do not edit by hand: re-run \`make bench\`."
        echo
        echo "## Machine"
        echo
        echo "- CPU: $cpu, $(nproc) cores (nproc)"
        echo "- RAM: $ram; kernel $kern; work directory on $fs ($WORK)"
        echo "- Tools:"
        has_tool cairn && echo "  - $("$CAIRN" --version 2>&1 | head -n 1)$(git -C "$(dirname "$CAIRN")" rev-parse --short HEAD 2>/dev/null | sed 's/^/, git /')"
        has_tool restic && echo "  - $(restic version | head -n 1)"
        has_tool borg && echo "  - $(borg --version)"
        echo "  - $(zstd --version | sed 's/^\*\*\* //; s/ \*\*\*$//'); $(openssl version)"
        echo
        echo "## Workload"
        echo
        echo "- **osimg**: a $IMG_SIZE raw image (sparse file) holding ext4 made with \`mkfs.ext4 -d\` from $((STAGED_BYTES / 1000000)) MB ($(mib "$STAGED_BYTES") MiB, $STAGED_FILES files) of this machine's /usr (binaries, libraries, docs); $(mib "$IMG_ALLOC") MiB allocated."
        echo "- **scatter**: a copy of osimg after $SCATTER_WRITES writes of 64 KiB of random data at distinct random 64 KiB-aligned offsets (seed $SEED), $(awk -v w="$SCATTER_WRITES" -v b="$IMG_BYTES" 'BEGIN { printf "%.2f", w * 65536 * 100 / b }') % of the image."
        echo "- Every tool backs up the same path, \`$SRC\`: first with the osimg content, then with the scatter content (the second backup of the same file), then restores the first backup; the restored image is compared byte for byte with osimg (\`cmp\`)."
        echo "- $RUNS run(s) per tool, each with a fresh repository (and fresh restic/borg caches); times and sizes are medians, peak RSS is the maximum over all runs and commands (\`/usr/bin/time -v\`)."
        echo "- Caches cannot be dropped reliably, so every timed run starts warm: after a \`sync\`, the source image is read once with \`cat\` before each backup, the repository files before each restore."
        echo "- Commands:"
        echo "  - cairn: \`cairn init --encryption aes-256-gcm\` (default chunk size), \`cairn backup REPO --image disk.raw --name osimg --json\` (twice; \`--json\` only to read the snapshot id), \`cairn restore REPO <first snapshot> --to out.raw\`"
        echo "  - restic: \`restic init --repository-version 2\`, \`restic backup --compression auto --tag full disk.raw\`, then \`--tag scatter\`, \`restic restore latest --tag full --target DIR\` (encrypted, as restic always is)"
        echo "  - borg: \`borg init --encryption=none\`, \`borg create --compression zstd,3 REPO::a disk.raw\`, then \`::b\`, \`borg extract REPO::a\`"
        echo "  - Each tool restores in its default way: cairn writes a sparse file; restic 0.14 and borg (without \`--sparse\`) write every zero."
        echo
        echo "## Results"
        echo
        echo "| tool | full backup s | repo size MiB | scatter backup s | scatter growth MiB | restore s | peak RSS MiB |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for t in $TOOLS; do
            echo "| $t | $(secs "$(med "$t" full)") | $(mib "$(med "$t" repo)") | $(secs "$(med "$t" scat)") | $(mib "$(med "$t" growth)") | $(secs "$(med "$t" restore)") | $(mib $(( $(rssmax "$t") * 1024 ))) |"
        done
        echo
        echo "<details><summary>every run</summary>"
        echo
        echo "| tool | metric | runs |"
        echo "|---|---|---|"
        for t in $TOOLS; do
            for m in full repo scat growth restore rss; do
                echo "| $t | $m | ${R[$t:$m]# } |"
            done
        done
        echo
        echo "Times in seconds, sizes in bytes, peak RSS in KiB."
        echo
        echo "</details>"
        echo
        if has_tool cairn; then
            local cf cr cs cg cx crss rf rr rg rx bf br
            cf=$(med cairn full); cr=$(med cairn repo); cg=$(med cairn growth); cx=$(med cairn restore)
            crss=$(rssmax cairn)
            if has_tool restic; then rf=$(med restic full); rr=$(med restic repo); rg=$(med restic growth); rx=$(med restic restore); fi
            if has_tool borg; then bf=$(med borg full); br=$(med borg repo); fi
            echo "## Targets"
            echo
            echo "| target | measured | required | result |"
            echo "|---|---:|---:|---|"
            ratio_row "full backup speed-up vs restic" "$cf" "${rf:-}" 4 faster
            ratio_row "full backup speed-up vs borg" "$cf" "${bf:-}" 3 faster
            ratio_row "repo size / restic's" "$cr" "${rr:-}" 1 smaller
            ratio_row "repo size / borg's" "$cr" "${br:-}" 1 smaller
            ratio_row "scatter growth / restic's" "$cg" "${rg:-}" 0.5 smaller
            ratio_row "restore speed-up vs restic" "$cx" "${rx:-}" 3 faster
            awk -v k="$crss" 'BEGIN { printf "| peak RSS MiB | %.1f | < 256 | %s |\n", k / 1024, (k / 1024 < 256) ? "PASS" : "MISS" }'
            echo
        fi
        if [ ${#CHUNK_ROWS[@]} -gt 0 ]; then
            echo "## Chunk size"
            echo
            echo "cairn with \`--chunk-size\` (aes-256-gcm, zstd), one run each: full backup of osimg, then the scatter image ($SCATTER_WRITES × 64 KiB changed)."
            echo
            echo "| chunk size | repo size MiB | scatter growth MiB | scatter growth bytes | full backup s | scatter backup s | peak RSS MiB |"
            echo "|---|---:|---:|---:|---:|---:|---:|"
            printf '%s\n' "${CHUNK_ROWS[@]}"
            echo
        fi
        echo "## Physical references (same run)"
        echo
        echo "| reference | value |"
        echo "|---|---:|"
        echo "| \`cat\` image > /dev/null (warm page cache, best of 3), $IMG_SIZE | $(secs "$REF_CAT") s ($(awk -v b="$IMG_BYTES" -v s="$REF_CAT" 'BEGIN { printf "%.0f", b / 1048576 / s }') MiB/s) |"
        echo "| \`zstd -T0 -3 -c\` image > /dev/null (best of 3) | $(secs "$REF_ZSTD") s ($(awk -v b="$IMG_BYTES" -v s="$REF_ZSTD" 'BEGIN { printf "%.0f", b / 1048576 / s }') MiB/s) |"
        echo "| \`openssl speed -seconds 3 sha256\`, 16384-byte blocks, one core | ${REF_SHA:-?} MB/s |"
        echo "| \`openssl speed -seconds 3 -evp aes-256-gcm\`, 16384-byte blocks, one core | ${REF_GCM:-?} MB/s |"
        echo "| \`zstd -b1 -e3\` on the first 512 MiB of osimg, one core, compression | ${REF_ZLEVELS:-?} |"
        if declare -F vm_bench_report >/dev/null; then
            echo
            vm_bench_report
        fi
        if [ -f "$BENCH_HERE/analysis.md" ]; then
            echo
            cat "$BENCH_HERE/analysis.md"
        fi
    } >"$md"
}

# splice_section NAME REPORT_FN OUT.md: the lines REPORT_FN prints (from
# "<!-- NAME-bench begin -->" to "<!-- NAME-bench end -->") replace that
# section of OUT.md, or go in before the analysis when it has none
splice_section() {
    local name=$1 report=$2 md=$3 tmp="$WORK/$1-section.md.tmp" sec="$WORK/$1-section.md" first
    "$report" >"$sec"
    first=$(head -n 1 "$BENCH_HERE/analysis.md")
    if [ ! -f "$md" ]; then
        { echo "# cairn benchmarks"; echo; cat "$sec"; } >"$md"
        return
    fi
    awk -v first="$first" -v sec="$sec" -v begin="<!-- $name-bench begin -->" -v end="<!-- $name-bench end -->" '
        function emit() { while ((getline l < sec) > 0) print l; close(sec); done = 1 }
        $0 == begin { skip = 1; emit(); next }
        $0 == end { skip = 0; next }
        skip { next }
        $0 == first && !done { emit(); print "" }
        { print }
        END { if (!done) emit() }
    ' "$md" >"$tmp"
    # the hand-written analysis at the end follows tests/bench/analysis.md
    awk -v first="$first" '$0 == first { exit } { print }' "$tmp" >"$md"
    cat "$BENCH_HERE/analysis.md" >>"$md"
    rm -f "$tmp"
}

# keep_sections OLD NEW — every measured section of OLD (its begin/end
# markers and what is between) spliced into NEW, which has none of them
keep_sections() {
    local old=$1 new=$2 name
    for name in vm lifecycle replicate wan thin hostkeys; do
        KEPT_BLOCK=$WORK/kept-$name.md
        sed -n "/^<!-- $name-bench begin -->\$/,/^<!-- $name-bench end -->\$/p" "$old" >"$KEPT_BLOCK"
        if [ -s "$KEPT_BLOCK" ]; then splice_section "$name" kept_block "$new"; fi
    done
}
kept_block() { cat "$KEPT_BLOCK"; }

# ---------------------------------------------------------------- main

# only_section wan|thin: run that section alone and splice it into OUT_MD
only_section() {
    # shellcheck source=/dev/null
    . "$BENCH_HERE/$1.sh"
    "${1}_bench_main"
    splice_section "$1" "${1}_report" "$OUT_MD"
    sed -n "/^<!-- $1-bench begin -->/,/^<!-- $1-bench end -->/p" "$OUT_MD"
    log "$1 section written to $OUT_MD"
}

main() {
    ONLY=${BENCH_ONLY:-}
    case $ONLY in ''|vm|disk|lifecycle|replicate|wan|thin|hostkeys) ;; *) die "BENCH_ONLY must be vm, disk, lifecycle, replicate, wan, thin or hostkeys, not '$ONLY'" ;; esac
    [ "$ONLY" = vm ] && TOOLS=cairn
    [ "$ONLY" = hostkeys ] && TOOLS=cairn
    [ "$ONLY" = thin ] && TOOLS=cairn
    [ "$ONLY" = wan ] && TOOLS="cairn restic"
    [ "$ONLY" = lifecycle ] && TOOLS="cairn restic"
    [ "$ONLY" = replicate ] && TOOLS="cairn restic"
    check_tools
    [ "$(id -u)" = 0 ] || log "warning: not root; reading /usr may skip some files"
    if has_tool cairn; then CAIRN=$(realpath "$CAIRN"); else CHUNK_SIZES=""; fi
    mkdir -p "$(dirname "$OUT_MD")"
    OUT_MD=$(realpath "$OUT_MD")
    mkdir -p "$WORK/logs" "$WORK/runs"
    WORK=$(realpath "$WORK")
    SRC="$WORK/src/disk.raw"
    trap 'declare -F vm_bench_cleanup >/dev/null && vm_bench_cleanup; rm -rf "$WORK/runs" "$WORK/src"' EXIT
    trap 'exit 130' INT; trap 'exit 143' TERM

    if [ "$ONLY" = wan ] || [ "$ONLY" = thin ]; then
        # these sections make their own image: no osimg needed
        only_section "$ONLY"
        return 0
    fi
    build_images
    log "osimg $OSIMG ($IMG_SIZE, $((STAGED_BYTES / 1000000)) MB of /usr), scatter $SCATTER_WRITES writes"
    if [ "${BENCH_IMAGES_ONLY:-0}" = 1 ]; then log "BENCH_IMAGES_ONLY=1: images ready, stopping"; return 0; fi

    if [ "$ONLY" = hostkeys ]; then
        only_section hostkeys
        return 0
    fi
    if [ "$ONLY" = lifecycle ]; then
        . "$BENCH_HERE/lifecycle.sh"
        lifecycle_bench_main
        splice_section lifecycle lifecycle_report "$OUT_MD"
        sed -n '/^<!-- lifecycle-bench begin -->/,/^<!-- lifecycle-bench end -->/p' "$OUT_MD"
        log "lifecycle section written to $OUT_MD"
        return 0
    fi
    if [ "$ONLY" = replicate ]; then
        . "$BENCH_HERE/replicate.sh"
        replicate_bench_main
        splice_section replicate replicate_report "$OUT_MD"
        sed -n '/^<!-- replicate-bench begin -->/,/^<!-- replicate-bench end -->/p' "$OUT_MD"
        log "replication section written to $OUT_MD"
        return 0
    fi
    local n t
    [ "$ONLY" = vm ] || for n in $(seq 1 "$RUNS"); do
        for t in $TOOLS; do
            log "$t run $n/$RUNS"
            "bench_$t" "$n"
            log "$t run $n: full $(secs "${R[$t:full]##* }") s, repo $(mib "${R[$t:repo]##* }") MiB, scatter $(secs "${R[$t:scat]##* }") s (+$(mib "${R[$t:growth]##* }") MiB), restore $(secs "${R[$t:restore]##* }") s, restore verified"
        done
    done
    if [ "$ONLY" != vm ]; then chunk_study; physical_refs; fi
    if [ "$ONLY" != disk ]; then
        . "$BENCH_HERE/vm.sh"
        vm_bench_main
    fi
    if [ "$ONLY" = vm ]; then
        [ -z "$VMB_SKIP" ] || { log "nothing measured; $OUT_MD left as it was"; return 0; }
        vm_bench_splice "$OUT_MD"
        echo
        sed -n '/^<!-- vm-bench begin -->/,/^<!-- vm-bench end -->/p' "$OUT_MD"
        echo
        log "VM section written to $OUT_MD"
        return 0
    fi

    local tmp="$WORK/benchmarks.md.tmp"
    write_report "$tmp"
    # a disk-only run keeps the sections it did not measure
    if [ "$ONLY" = disk ] && [ -f "$OUT_MD" ]; then keep_sections "$OUT_MD" "$tmp"; fi
    mv "$tmp" "$OUT_MD"
    if has_tool restic && [ -z "$ONLY" ]; then
        . "$BENCH_HERE/lifecycle.sh"
        lifecycle_bench_main
        splice_section lifecycle lifecycle_report "$OUT_MD"
    fi
    if has_tool restic && [ -z "$ONLY" ]; then
        if command -v radosgw >/dev/null; then
            . "$BENCH_HERE/replicate.sh"
            replicate_bench_main
            splice_section replicate replicate_report "$OUT_MD"
        else
            log "no radosgw (apt-get install ceph-mon ceph-osd radosgw ceph-common): replication section skipped"
        fi
    fi
    if has_tool restic && [ -z "$ONLY" ]; then
        if command -v radosgw >/dev/null; then
            . "$BENCH_HERE/wan.sh"
            wan_bench_main
            splice_section wan wan_report "$OUT_MD"
        else
            log "no radosgw: WAN section skipped"
        fi
    fi
    if [ -z "$ONLY" ]; then
        . "$BENCH_HERE/thin.sh"
        thin_bench_main
        splice_section thin thin_report "$OUT_MD"
        . "$BENCH_HERE/hostkeys.sh"
        hostkeys_bench_main
        splice_section hostkeys hostkeys_report "$OUT_MD"
    fi
    echo
    sed -n '/^## Results/,$p' "$OUT_MD"
    echo
    log "report written to $OUT_MD"
}

main
