/* Waiting for a booting VM to prove it is alive, for recovery tests
 * (cairn verify-boot): the QEMU guest agent answers guest-ping, the serial
 * console log matches a pattern, or an admin's command exits 0. Every check
 * that is asked for must pass before the timeout.
 *
 * Returns 0 when the guest passed, -ETIMEDOUT when it did not in time,
 * -EINTR when cancelled, -ESRCH when the domain died, another negative errno
 * on a local error; detail gets one line either way. */
#ifndef CAIRN_BOOTCHECK_H
#define CAIRN_BOOTCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "vm.h"

struct cairn_boot_check {
	bool agent; /* guest-ping through the QEMU guest agent */
	const char *console_log; /* file the serial console writes to */
	const char *console_regex; /* POSIX extended, matched per line */
	/* run by /bin/sh every few seconds until it exits 0; it gets
	 * CAIRN_VERIFY_DOMAIN and CAIRN_VERIFY_CONSOLE in its environment */
	const char *script;
	unsigned timeout_s;
	const volatile int *cancel;
	/* not NULL: after the test, the console log's last
	 * CAIRN_BOOT_CONSOLE_TAIL bytes are kept in this file (what the test VM
	 * showed, for the agent's console) */
	const char *keep_console;
};
#define CAIRN_BOOT_CONSOLE_TAIL (16u * 1024)

/* The method names of the checks asked for, joined by '+' ("agent",
 * "console", "script"). */
void cairn_boot_check_method(const struct cairn_boot_check *c, char *out, size_t len);

int cairn_boot_wait(struct cairn_vm_host *h, const char *domain,
		    const struct cairn_boot_check *c, double *seconds, char *detail,
		    size_t detail_len);

#endif
