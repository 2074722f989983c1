/* agent: backing up several libvirt domains into one repository, each its
 * own snapshot, up to `parallel` at once (they then share one writer). One
 * domain failing does not stop the others. This is the one place that
 * schedules such a run: `cairn backup --domain ... --parallel N` and the
 * daemon's jobs both come here and differ only in their hooks.
 *
 * The repository must be locked (shared) by the caller. Returns 0 when the
 * run took place (each domain's outcome went to its done hook), or a
 * negative errno with a one-line reason in err when it could not start. */
#ifndef CAIRN_AGENT_FLEET_H
#define CAIRN_AGENT_FLEET_H

#include "agent.h"

#define CAIRN_FLEET_MAX_PARALLEL 64

struct cairn_fleet_opts {
	const char *const *domains;
	size_t ndomains;
	unsigned parallel; /* 0 or 1: one domain at a time */
	/* each domain's options start as a copy of this one, with .domain set,
	 * .backup.name set to the domain's name unless given, and
	 * .backup.writer the shared writer when parallel */
	struct cairn_domain_opts domain;
	/* non-zero: no further domain starts (those running finish) */
	const volatile int *stop;
	/* In the worker thread before domain i: may adjust o (progress,
	 * notices). A negative return skips the domain (done is not called:
	 * the hook reports the skip itself). May be NULL. */
	int (*begin)(void *opaque, size_t i, struct cairn_domain_opts *o);
	/* After domain i, one call at a time: rc 0 with res, or a negative
	 * errno with err. */
	void (*done)(void *opaque, size_t i, int rc, const struct cairn_backup_result *res,
		     const char *err);
	void *opaque;
};

int cairn_backup_fleet(struct cairn_repo *r, const struct cairn_fleet_opts *o, char *err,
		       size_t errlen);

#endif
