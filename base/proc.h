/* Running helper programs (qemu-img, qemu-nbd) without a shell. */
#ifndef CAIRN_PROC_H
#define CAIRN_PROC_H

#include "util.h"

/* Runs argv (no shell), capturing stdout into out (may be NULL) and the
 * first line of stderr into err. 0 on exit status 0, else -EIO. */
int run_command(char *const argv[], struct buf *out, char *err, size_t errlen);

#endif
