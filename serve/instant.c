/* Instant recovery: overlays (qemu-img) and block pulls (libvirt). */
#include <errno.h>
#include <inttypes.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>

#include "base/proc.h"
#include "instant.h"

static const char *virt_msg(void)
{
	const char *m = virGetLastErrorMessage();
	return m ? m : "unknown libvirt error";
}

int cairn_instant_overlay(const char *overlay, const char *socket, uint64_t size,
			  char *err, size_t errlen)
{
	char backing[4200], sz[32], msg[256] = "";
	snprintf(backing, sizeof(backing), "nbd+unix:///?socket=%s", socket);
	snprintf(sz, sizeof(sz), "%" PRIu64, size);
	char *const argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
			       backing, (char *)overlay, sz, NULL };
	if (run_command(argv, NULL, msg, sizeof(msg)) < 0)
		return set_err(err, errlen, -EIO, "cannot create overlay %s: %s", overlay, msg);
	return 0;
}

static int start_pulls(virDomainPtr dom, const char *const *targets, size_t n, char *err,
		       size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (virDomainBlockPull(dom, targets[i], 0, 0) < 0)
			return set_err(err, errlen, -EIO, "block pull of %s: %s", targets[i],
				       virt_msg());
	return 0;
}

/* A job that is gone has finished, failed or been cancelled: the XML tells
 * which, since a finished pull leaves no NBD backing behind. */
static int jobs_left(virDomainPtr dom, const char *const *targets, size_t n, char *err,
		     size_t errlen)
{
	int left = 0;
	for (size_t i = 0; i < n; i++) {
		virDomainBlockJobInfo info;
		int rc = virDomainGetBlockJobInfo(dom, targets[i], &info, 0);
		if (rc < 0)
			return set_err(err, errlen, -EIO, "block job of %s: %s", targets[i],
				       virt_msg());
		left += rc > 0;
	}
	return left;
}

int cairn_instant_uses(struct cairn_vm_host *h, const char *domain, const char *dir,
		       char *err, size_t errlen)
{
	virDomainPtr dom = virDomainLookupByName(cairn_vm_host_conn(h), domain);
	if (!dom)
		return -ENOENT;
	int rc = 0;
	if (virDomainIsActive(dom) == 1) {
		char *xml = virDomainGetXMLDesc(dom, 0);
		if (!xml)
			rc = set_err(err, errlen, -EIO, "domain %s: %s", domain, virt_msg());
		else
			rc = strstr(xml, dir) != NULL;
		free(xml);
	}
	virDomainFree(dom);
	return rc;
}

/* Every job is gone: did they complete? libvirt drops a finished job
 * before it has rewritten the disk's definition (it does that when it
 * handles QEMU's completion event), so the NBD backing may show for a
 * moment after the job is gone. */
#define PULL_SETTLE_NS (10ll * 1000000000)
static int wait_nbd_gone(virDomainPtr dom, const char *domain, char *err, size_t errlen)
{
	int64_t deadline = mono_ns() + PULL_SETTLE_NS;
	for (;;) {
		char *xml = virDomainGetXMLDesc(dom, 0);
		if (!xml)
			return set_err(err, errlen, -EIO, "domain %s: %s", domain, virt_msg());
		bool nbd = strstr(xml, "protocol='nbd'") != NULL;
		free(xml);
		if (!nbd)
			return 0;
		if (mono_ns() > deadline)
			return set_err(err, errlen, -EIO,
				       "block pull ended but a disk of %s still reads from NBD", domain);
		usleep(100000);
	}
}

int cairn_instant_pull(struct cairn_vm_host *h, const char *domain,
		       const char *const *targets, size_t n, unsigned timeout_s,
		       const volatile int *cancel, char *err, size_t errlen)
{
	virDomainPtr dom = virDomainLookupByName(cairn_vm_host_conn(h), domain);
	if (!dom)
		return set_err(err, errlen, -ENOENT, "no domain %s: %s", domain, virt_msg());
	int rc = start_pulls(dom, targets, n, err, errlen);
	int64_t deadline = mono_ns() + (int64_t)timeout_s * 1000000000;
	while (rc == 0 && (rc = jobs_left(dom, targets, n, err, errlen)) > 0) {
		if (cancel && *cancel)
			rc = set_err(err, errlen, -EINTR, "interrupted while pulling");
		else if (timeout_s && mono_ns() > deadline)
			rc = set_err(err, errlen, -ETIMEDOUT, "block pull did not finish in %us",
				     timeout_s);
		else
			usleep(200000);
	}
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			virDomainBlockJobAbort(dom, targets[i], 0);
	} else {
		rc = wait_nbd_gone(dom, domain, err, errlen);
	}
	virDomainFree(dom);
	return rc;
}
