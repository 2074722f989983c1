/* Instant recovery: a VM that runs from a snapshot before any full copy.
 * Each disk gets a local qcow2 overlay whose backing file is a cairn
 * server's NBD socket; guest writes land in the overlay, reads of untouched
 * blocks go to the repository. A block pull (libvirt's block stream) later
 * copies the rest into the overlay, after which the servers can go.
 *
 * The domain itself is defined and started through restore/vm.h with the
 * XML from restore/domxml.h. Functions return 0 or a negative errno with a
 * one-line reason in err. */
#ifndef CAIRN_SERVE_INSTANT_H
#define CAIRN_SERVE_INSTANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "restore/vm.h"

/* overlay: a new qcow2 of size bytes backed (raw) by the NBD socket. */
int cairn_instant_overlay(const char *overlay, const char *socket, uint64_t size,
			  char *err, size_t errlen);

/* Pulls the backing data of every listed disk (targets: vda, ...) into its
 * overlay, one job per disk at once, and waits until all are done. On
 * return without error no disk reads from NBD any more. */
int cairn_instant_pull(struct cairn_vm_host *h, const char *domain,
		       const char *const *targets, size_t n, unsigned timeout_s,
		       const volatile int *cancel, char *err, size_t errlen);

/* Whether a running domain still reads from something under dir (its
 * servers' sockets): -ENOENT no such domain, 0 no, 1 yes. */
int cairn_instant_uses(struct cairn_vm_host *h, const char *domain, const char *dir,
		       char *err, size_t errlen);

#endif
