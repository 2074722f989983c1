#!/bin/bash
# gc beside running backups on a local repository (gc_concurrent.sh):
# three backups, a forget and a gc at random moments, GC_ROUNDS times.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gc_concurrent.sh"

list_gc() { ls -A "$T/repo/gc" 2>/dev/null || true; }
gc_concurrent "$T/repo" "${GC_ROUNDS:-6}" list_gc
pass
