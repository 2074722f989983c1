/* Putting a domain's firmware state back for a restored (or throwaway)
 * domain: the UEFI variable store (NVRAM) and the emulated TPM's state
 * stored with its snapshot (repo/firmware.h).
 *
 * The plan reads the stored definition and checks this host before
 * anything is written: a UEFI domain needs its firmware (the stored
 * <loader> and NVRAM template, or files of the same name in this host's
 * firmware directories, or a firmware descriptor for <os firmware='efi'>),
 * an emulated TPM needs swtpm. It picks the new domain's own files, so that
 * a copy never shares them with the original: the NVRAM at
 * /var/lib/libvirt/qemu/nvram/NAME_VARS.fd and, under a fresh UUID, the TPM
 * state in /var/lib/libvirt/swtpm/UUID/tpm2 (where libvirt looks for them),
 * and fills the domxml options that say so.
 *
 * Functions return 0 or a negative errno with a one-line reason in err:
 * -ENOENT the host lacks the firmware or swtpm the domain needs. */
#ifndef CAIRN_FWSTATE_H
#define CAIRN_FWSTATE_H

#include <stdbool.h>
#include <stddef.h>

#include "domxml.h"
#include "repo/repo.h"

struct cairn_fwstate {
	bool uefi, tpm; /* what the stored domain uses */
	char uuid[37]; /* the new domain's, when it has firmware files */
	char *nvram; /* the new domain's NVRAM file, or NULL */
	char *tpm_dir; /* the new domain's TPM state directory, or NULL */
	char *loader, *nvram_template; /* this host's, when the stored ones differ */
	/* for the caller to print as a note: what the snapshot lacked, or "" */
	char note[256];
	/* what write put down (remove takes it away) */
	size_t nvram_written, tpm_written;
};

/* Decides everything for a domain to be named name (NULL: the stored
 * name); sets x's firmware fields (valid while f lives). */
int cairn_fwstate_plan(const struct cairn_snapshot *s, const char *name, struct cairn_fwstate *f,
		       struct cairn_domxml_opts *x, char *err, size_t errlen);
/* Writes the stored NVRAM and TPM state files to the planned places
 * (every byte checked against its chunk id); an existing file there is
 * replaced. Index loaded. */
int cairn_fwstate_write(struct cairn_repo *r, const struct cairn_snapshot *s,
			struct cairn_fwstate *f, char *err, size_t errlen);
/* Deletes what write put down: the NVRAM file and the TPM state
 * directory (after a failed restore, or a throwaway boot). */
void cairn_fwstate_remove(const struct cairn_fwstate *f);
/* "NVRAM and TPM state", "NVRAM", "TPM state" (what write put down), or
 * NULL when nothing. */
const char *cairn_fwstate_what(const struct cairn_fwstate *f);
void cairn_fwstate_free(struct cairn_fwstate *f);

#endif
