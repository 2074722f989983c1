#!/bin/bash
# gc beside running backups on SFTP (a real OpenSSH sshd): the rounds of
# t_gc_concurrent.sh (gc_concurrent.sh) against an SFTP repository, where
# rewriting a lock (a heartbeat) is a remove and a rename, so gc must not
# take a lock's moment of absence for the end of its backup.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
. "$(dirname "$0")/gc_concurrent.sh"

why=$(sshd_available) || { echo "SKIP: $why"; exit 0; }
sshd_start
DIR=$CAIRN_TEST_SFTP_ROOT/repo

list_gc() { [ -d "$DIR/gc" ] && find "$DIR/gc" -type f ! -name '.*' -printf '%f\n'; true; }
gc_concurrent "$CAIRN_TEST_SFTP_URL/repo" "${GC_ROUNDS:-4}" list_gc 8
pass
