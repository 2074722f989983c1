#!/bin/sh
# The fuzz targets' seed corpus, made by this cairn: a plain and an
# encrypted repository of small images (text, random and sparse chunks,
# two disks, incremental snapshots, tags), whose objects are copied into
# OUT/<target>/ in each target's input form (tests/fuzz/*.c: a mode byte
# before repository objects), plus the committed seeds and regression
# inputs of tests/fuzz/corpus/.
# Usage: gen_corpus.sh CAIRN GEN_SEEDS OUT
set -eu
cairn=$1 gen=$2 out=$3
src=$(cd "$(dirname "$0")" && pwd)/corpus
work=$(mktemp -d /tmp/cairn-fuzz-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT

targets="agent_conf blob chunkmap condemned config damage domxml envelope index keyfile lock manifest pack s3_xml sftp_list verification"
for t in $targets; do mkdir -p "$out/$t"; done
for d in "$src"/*/; do cp "$d"* "$out/$(basename "$d")/" 2>/dev/null || true; done
cp "$(dirname "$0")/../../docs/cairn.conf.example" "$out/agent_conf/example"

# images: text (compresses), random chunks (does not), a sparse tail
# (repeated pages of the zero chunk's id)
a=$work/a.img b=$work/b.img
seq 1 40000 >"$a"
truncate -s 1M "$a"
head -c 131072 /dev/urandom | dd of="$a" bs=64k seek=8 conv=notrunc 2>/dev/null
truncate -s 300M "$b"
printf 'cairn fuzz seed disk\n' | dd of="$b" conv=notrunc 2>/dev/null

export CAIRN_PASSWORD=fuzz-seed
"$cairn" init "$work/plain" --encryption none --chunk-size 64K >/dev/null
"$cairn" init "$work/enc" --chunk-size 64K >/dev/null
for r in plain enc; do
	"$cairn" backup "$work/$r" --image vda="$a" --image vdb="$b" --name vm1 --tag seed >/dev/null
	head -c 65536 /dev/urandom | dd of="$a" bs=64k seek=2 conv=notrunc 2>/dev/null
	"$cairn" backup "$work/$r" --image vda="$a" --name vm2 >/dev/null
done
"$gen" "$work/plain" "$out"
cp "$work"/plain/gc/* "$out/condemned/"

# put TARGET PREFIX FILE... — each file as a seed, after PREFIX (octal escapes)
put() {
	t=$1 p=$2
	shift 2
	for f in "$@"; do
		[ -f "$f" ] || continue
		{ printf "$p"; cat "$f"; } >"$out/$t/$(basename "$(dirname "$f")")-$(basename "$f" | cut -c1-16)-$(printf "$p" | od -An -tx1 | tr -d ' \n')"
	done
}
P=$work/plain E=$work/enc
cp "$P/config" "$out/config/plain"
cp "$E/config" "$out/config/encrypted"
for k in "$E"/keys/*; do cp "$k" "$out/keyfile/"; done
# plain objects: as they are (mode 0) and sealed with the test key (mode 1);
# encrypted ones unopened (mode 3: only the tag check sees them)
for kind in index:index:'\000' snapshots:manifest:'\001' verifications:verification:'\003'; do
	dir=${kind%%:*} rest=${kind#*:}
	t=${rest%%:*} k=${rest#*:}
	put "$t" '\000' "$P/$dir"/*
	put "$t" '\001' "$P/$dir"/*
	put "$t" '\003' "$E/$dir"/*
	put envelope "\\000$k" "$P/$dir"/*
	put envelope "\\001$k" "$P/$dir"/*
done
put pack '\000' "$P"/data/*/*
put pack '\001' "$P"/data/*/*
put pack '\003' "$E"/data/*/*
# the directories alone are envelopes of kind 3 (pack directories)
for f in "$P"/data/*/*; do
	python3 - "$f" "$out/envelope/dir-$(basename "$f" | cut -c1-16)" <<'EOF'
import struct, sys
p = open(sys.argv[1], "rb").read()
n = struct.unpack("<I", p[-12:-8])[0]
for mode in (0, 1):
    open(sys.argv[2] + "-%d" % mode, "wb").write(bytes([mode, 2]) + p[-12 - n:-12])
EOF
done
# last (it spoils a pack): a damage record: one byte of a pack flipped, found by check
pack=$(ls "$work"/plain/data/*/* | head -1)
printf 'X' | dd of="$pack" bs=1 seek=100 conv=notrunc 2>/dev/null
"$cairn" check "$work/plain" --read-data >/dev/null 2>&1 && exit 1
cp "$work"/plain/damaged/* "$out/damage/"
