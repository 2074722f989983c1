#!/usr/bin/env python3
"""Repository mutation run for t_mutate.sh (issue 16).

    mutate.py CAIRN PRISTINE_REPO A1 A2 ID1 ID2 WORKDIR SEED COUNT

PRISTINE_REPO holds two snapshots of one image named "a": ID1 (image file
A1) and the newer ID2 (A2). For COUNT mutants (sampled with SEED), a copy
of the repository gets one object mutated, and every read command runs on
it. A mutant fails the run when a command crashes (a signal, a sanitizer
report), hangs (a timeout), ends non-zero without a one-line "cairn:"
error, or exits 0 with bytes that differ from the snapshot asked for. A
damaged manifest must also never be silent: `snapshots --json` lists it.

Mutations: in place (bit rot: byte flips, truncation, garbage, appended
bytes; in a pack also absurd trailer lengths and directory counts), and,
for a repository without encryption, hostile objects (an index file or
manifest decoded, given absurd counts, lengths or nesting, encoded again
and stored under its new hash, as anyone who can write the store could).
"""
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys

TIMEOUT = int(os.environ.get("CAIRN_MUTATE_TIMEOUT", "60"))
SANITIZER = (b"AddressSanitizer", b"LeakSanitizer", b"runtime error:", b"UndefinedBehaviorSanitizer")


# -- envelopes (docs/design.md section 8), plain repositories only --------

def unwrap(env):
    """The plaintext of a zstd envelope without encryption."""
    if len(env) < 4 or env[0:1] != b"C" or env[3] & 2:
        return None
    if not env[3] & 1:
        return env[4:]
    r = subprocess.run(["zstd", "-q", "-d", "-c"], input=env[4:], capture_output=True)
    return r.stdout if r.returncode == 0 else None


def wrap(kind_byte, plain, workdir):
    """An envelope holding plain, zstd-compressed with its size known."""
    tmp = os.path.join(workdir, "plain.tmp")
    with open(tmp, "wb") as f:
        f.write(plain)
    z = subprocess.run(["zstd", "-q", "-c", "-3", tmp], capture_output=True, check=True).stdout
    os.unlink(tmp)
    return b"C\x01" + bytes([kind_byte, 1]) + z


# -- generic in-place mutations (damage) ------------------------------------

def m_flip(rng, b):
    b = bytearray(b)
    for _ in range(rng.choice([1, 1, 1, 3])):
        if b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def m_truncate(rng, b):
    return b[: rng.randrange(len(b))] if b else b


def m_empty(rng, b):
    return b""


def m_garbage(rng, b):
    return bytes(rng.randrange(256) for _ in range(rng.choice([len(b), 1, 17, 4096])))


def m_append(rng, b):
    return b + bytes(rng.randrange(256) for _ in range(rng.choice([1, 48, 1000])))


GENERIC = [m_flip, m_flip, m_flip, m_truncate, m_empty, m_garbage, m_append]


# -- packs: absurd trailer lengths, directory counts (docs/design.md s. 6) --

def m_pack_trailer_len(rng, b):
    if len(b) < 20:
        return m_flip(rng, b)
    v = rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, len(b), len(b) - 11])
    return b[:-12] + struct.pack("<I", v & 0xFFFFFFFF) + b[-8:]


def m_pack_dir(rng, b, workdir):
    """The directory decoded, its count or an entry made absurd (plain)."""
    if len(b) < 20:
        return None
    dlen = struct.unpack("<I", b[-12:-8])[0]
    start = len(b) - 12 - dlen
    plain = unwrap(b[start:-12]) if 0 <= start else None
    if plain is None or len(plain) < 4:
        return None
    plain = bytearray(plain)
    count = struct.unpack("<I", plain[:4])[0]
    what = rng.choice(["count", "offset", "stored", "raw", "type"] if count else ["count"])
    if what == "count":
        plain[:4] = struct.pack("<I", rng.choice([0xFFFFFFFF, count + 1, 0x00FFFFFF]))
    else:
        e = 4 + 48 * rng.randrange(count)
        at = {"offset": 36, "stored": 40, "raw": 44, "type": 32}[what]
        val = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, len(b)]) if what != "type" else 7
        if what == "type":
            plain[e + at] = val
        else:
            plain[e + at : e + at + 4] = struct.pack("<I", val)
    env = wrap(3, bytes(plain), workdir)
    return b[:start] + env + struct.pack("<I", len(env)) + b[-8:]


# -- hostile index files (docs/design.md section 7) ---------------------------

def m_index(rng, plain):
    """(what, new plaintext)"""
    p = bytearray(plain)
    if len(p) < 12:
        return "short", bytes(p) + b"\xff" * 8
    what = rng.choice(["packs", "entries", "entry", "cut"])
    if what == "packs":
        p[8:12] = struct.pack("<I", rng.choice([0xFFFFFFFF, 0x10000000, struct.unpack("<I", p[8:12])[0] + 1]))
    elif what == "entries" and len(p) >= 48:
        p[44:48] = struct.pack("<I", rng.choice([0xFFFFFFFF, 0x08000000]))
    elif what == "entry" and len(p) >= 48 + 48:
        e = 48 + 48 * rng.randrange((len(p) - 48) // 48)
        at = rng.choice([36, 40, 44])
        p[e + at : e + at + 4] = struct.pack("<I", rng.choice([0xFFFFFFFF, 0x02000000, 0]))
    else:
        p = p[: rng.randrange(8, len(p))]
    return what, bytes(p)


# -- hostile manifests (docs/design.md section 9) -----------------------------

def m_manifest(rng, plain):
    """(what, new plaintext)"""
    try:
        j = json.loads(plain)
    except ValueError:
        return "flip", m_flip(rng, plain)
    d = j["disks"][0] if j.get("disks") else {}
    what = rng.choice(["size", "chunks", "pages", "nopages", "deep", "tags", "disks",
                       "time", "cs", "version", "name", "text"])
    if what == "size":
        d["size"] = rng.choice([2**62, 2**63 - 1, -1])
        d["chunks"] = (d["size"] + d["chunk_size"] - 1) // d["chunk_size"] if d["size"] > 0 else 0
    elif what == "chunks":
        d["chunks"] = rng.choice([2**40, 0, d.get("chunks", 0) + 1])
    elif what == "pages":
        d["pages"] = d.get("pages", []) * rng.choice([2, 1000])
    elif what == "nopages":
        d["pages"] = []
    elif what == "deep":
        # written as text: json.dumps of 5000 nested lists passes Python's
        # recursion limit (CI: RecursionError under seed 1796688271)
        depth = rng.choice([100, 5000])
        j["tags"] = "@deep@"
        return what, json.dumps(j).replace('"@deep@"', "[" * depth + "]" * depth).encode()
    elif what == "tags":
        j["tags"] = ["t%d" % i for i in range(20000)]
    elif what == "disks":
        j["disks"] = j.get("disks", []) * rng.choice([0, 2, 2000])
    elif what == "time":
        j["time_ns"] = rng.choice([2**63 - 1, -(2**63), 0])
    elif what == "cs":
        d["chunk_size"] = rng.choice([0, 1, 2**31, 3 * 65536])
    elif what == "version":
        j["version"] = rng.choice([0, 2, 2**40])
    elif what == "name":
        j["name"] = rng.choice([None, 7, "x" * 100000])
    else:
        return "flip", m_flip(rng, plain)
    return what, json.dumps(j).encode()


# -- the run ----------------------------------------------------------------

def objects(repo):
    out = []
    for top in ("config", "keys", "snapshots", "index", "data"):
        p = os.path.join(repo, top)
        if os.path.isfile(p):
            out.append(top)
        for dirpath, _, files in os.walk(p):
            for f in files:
                if not f.startswith("."):
                    out.append(os.path.relpath(os.path.join(dirpath, f), repo))
    return sorted(out)


def make_mutant(rng, repo, rel, encrypted, workdir):
    """Mutates rel in repo; returns (description, hostile, new name or None)."""
    path = os.path.join(repo, rel)
    with open(path, "rb") as f:
        b = f.read()
    top = rel.split("/")[0]
    hostile = not encrypted and top in ("index", "snapshots") and rng.random() < 0.5
    if hostile:
        plain = unwrap(b)
        if plain is not None:
            what, new = m_index(rng, plain) if top == "index" else m_manifest(rng, plain)
            env = wrap(1 if top == "index" else 2, new, workdir)
            name = hashlib.sha256(env).hexdigest()
            os.unlink(path)
            with open(os.path.join(repo, top, name), "wb") as f:
                f.write(env)
            return "hostile (%s) %s -> %s/%s" % (what, rel, top, name[:12]), True, name
    fn = rng.choice(GENERIC)
    if top == "data" and rng.random() < 0.5:
        if not encrypted and rng.random() < 0.5:
            nb = m_pack_dir(rng, b, workdir)
            if nb is not None:
                with open(path, "wb") as f:
                    f.write(nb)
                return "pack directory of %s" % rel, False, None
        fn = m_pack_trailer_len
    nb = fn(rng, b)
    with open(path, "wb") as f:
        f.write(nb)
    return "%s of %s" % (fn.__name__, rel), False, None


def run(cmd, workdir):
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, cwd=workdir)
    except subprocess.TimeoutExpired:
        return None, b"", b""
    return r.returncode, r.stdout, r.stderr


def same(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def check_mutant(cairn, repo, a1, a2, id1, id2, desc, hostile, rel, workdir):
    bad = []
    out = os.path.join(workdir, "out.raw")
    want = {"latest": [a2] if not hostile else [a1, a2], "latest-readable": [a1, a2],
            id1: [a1], id2: [a2]}
    cmds = [["snapshots", repo], ["snapshots", repo, "--json"], ["ls", repo, id2],
            ["stats", repo], ["key", "list", repo],
            ["forget", repo, "--all", "--keep-last", "1", "--dry-run"]]
    for spec in ("latest", "latest-readable", id1, id2):
        cmds.append(["restore", repo, spec, "--to", out])
    cmds += [["check", repo], ["check", repo, "--read-data"]]
    for c in cmds:
        if os.path.exists(out):
            os.unlink(out)
        rc, so, se = run([cairn] + c, workdir)
        what = "%s: cairn %s" % (desc, " ".join(x if x != repo else "REPO" for x in c))
        if rc is None:
            bad.append("%s: no answer in %ds (hang)" % (what, TIMEOUT))
            continue
        if rc < 0 or rc >= 128 or any(s in se for s in SANITIZER):
            bad.append("%s: crashed (rc %d): %s" % (what, rc, se[-400:].decode(errors="replace")))
            continue
        lines = [l for l in se.decode(errors="replace").splitlines() if not l.startswith("cairn: warning:")]
        if rc != 0 and (len(lines) != 1 or not lines[0].startswith("cairn:")):
            bad.append("%s: exit %d without one 'cairn:' line: %r" % (what, rc, lines[-3:]))
        if c[0] == "restore" and rc == 0 and not os.path.exists(out):
            bad.append("%s: exit 0 without writing the target" % what)
        elif c[0] == "restore" and rc == 0:
            good = [w for w in want[c[2]] if same(w, out)]
            if not good:
                bad.append("%s: exit 0 with bytes that are not snapshot %s" % (what, c[2]))
            elif good[0] == a1 and c[2] == "latest-readable" and b"damaged" not in se:
                bad.append("%s: took the older snapshot without naming the damage" % what)
        if c[1:] == [repo, "--json"] and c[0] == "snapshots" and rc == 0 and \
                rel.startswith("snapshots/") and not hostile:
            rows = json.loads(so)
            name = os.path.basename(rel)
            if not any(r.get("id") == name and r.get("damaged") for r in rows):
                bad.append("%s: the mutated manifest %s is not listed as damaged" % (what, name[:12]))
    return bad


def main():
    cairn, pristine, a1, a2, id1, id2, workdir, seed, count = sys.argv[1:10]
    rng = random.Random(int(seed))
    encrypted = os.path.isdir(os.path.join(pristine, "keys")) and bool(os.listdir(os.path.join(pristine, "keys")))
    objs = objects(pristine)
    # every kind of object at least once, then at random
    kinds = {}
    for o in objs:
        kinds.setdefault(o.split("/")[0], []).append(o)
    picks = [rng.choice(v) for _, v in sorted(kinds.items())]
    while len(picks) < int(count):
        picks.append(rng.choice(objs))
    failures, n = [], 0
    for rel in picks[: max(int(count), len(kinds))]:
        repo = os.path.join(workdir, "m")
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(pristine, repo)
        desc, hostile, _ = make_mutant(rng, repo, rel, encrypted, workdir)
        bad = check_mutant(cairn, repo, a1, a2, id1, id2, desc, hostile, rel, workdir)
        n += 1
        print("%-4s %s" % ("BAD" if bad else "ok", desc), flush=True)
        failures += bad
    shutil.rmtree(os.path.join(workdir, "m"), ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    print("%d mutants of %s, %d failures" % (n, "an encrypted" if encrypted else "a plain", len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
