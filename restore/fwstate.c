/* A domain's NVRAM and TPM state put back for a restore (see fwstate.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fwstate.h"
#include "base/xml.h"
#include "repo/firmware.h"

#define NVRAM_DIR "/var/lib/libvirt/qemu/nvram"
#define SWTPM_DIR "/var/lib/libvirt/swtpm"

/* Where distributions keep OVMF; a stored path missing here is looked up
 * by its file name in these. */
static const char *const firmware_dirs[] = { "/usr/share/OVMF", "/usr/share/edk2/ovmf",
					     "/usr/share/edk2/x64", "/usr/share/qemu", NULL };
/* What libvirt reads to pick firmware for <os firmware='efi'>. */
static const char *const descriptor_dirs[] = { "/etc/qemu/firmware", "/usr/share/qemu/firmware",
					       NULL };

/* The stored definition's UEFI and TPM facts. */
struct stored {
	bool efi_auto, pflash, tpm, tpm12;
	char *loader, *nvram_template, *name;
};

static int read_stored(const char *xml, struct stored *st)
{
	xmlDocPtr doc = xml_parse(xml, 0);
	xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
	if (ctx) {
		st->efi_auto = xml_xpath_is(ctx, "string(/domain/os/@firmware)", "efi");
		st->pflash = xml_xpath_is(ctx, "string(/domain/os/loader/@type)", "pflash");
		st->loader = xml_xpath_string(ctx, "string(/domain/os/loader)");
		st->nvram_template = xml_xpath_string(ctx, "string(/domain/os/nvram/@template)");
		st->tpm = xml_xpath_is(ctx, "string(/domain/devices/tpm/backend/@type)", "emulator");
		st->tpm12 = xml_xpath_is(ctx, "string(/domain/devices/tpm/backend/@version)", "1.2");
		st->name = xml_xpath_string(ctx, "string(/domain/name)");
	}
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return ctx ? 0 : -EINVAL;
}

/* The stored firmware file, or this host's file of the same name (set in
 * *other), or -ENOENT. */
static int host_firmware(const char *stored, char **other, char *err, size_t errlen)
{
	if (access(stored, R_OK) == 0)
		return 0;
	_cleanup_free_ char *copy = strdup(stored);
	if (!copy)
		return -ENOMEM;
	const char *base = basename(copy);
	for (size_t i = 0; firmware_dirs[i]; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", firmware_dirs[i], base);
		if (access(path, R_OK) == 0)
			return (*other = strdup(path)) ? 0 : -ENOMEM;
	}
	return set_err(err, errlen, -ENOENT,
		       "this host has no UEFI firmware %s (nor %s in /usr/share/OVMF or "
		       "/usr/share/edk2): install OVMF, or restore the disks without --define",
		       stored, base);
}

static bool has_descriptor(void)
{
	for (size_t i = 0; descriptor_dirs[i]; i++) {
		DIR *d = opendir(descriptor_dirs[i]);
		bool found = false;
		for (struct dirent *e; d && !found && (e = readdir(d));)
			found = strstr(e->d_name, ".json") != NULL;
		if (d)
			closedir(d);
		if (found)
			return true;
	}
	return false;
}

static bool has_swtpm(void)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *dirs = strdup(path && *path ? path : "/usr/bin:/usr/sbin");
	char *save = NULL;
	for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
		char file[PATH_MAX];
		snprintf(file, sizeof(file), "%s/swtpm", d);
		if (access(file, X_OK) == 0)
			return true;
	}
	return false;
}

static int check_host(const struct stored *st, struct cairn_fwstate *f, char *err, size_t errlen)
{
	int rc = 0;
	if (st->pflash && st->loader)
		rc = host_firmware(st->loader, &f->loader, err, errlen);
	if (rc == 0 && st->pflash && st->nvram_template)
		rc = host_firmware(st->nvram_template, &f->nvram_template, err, errlen);
	if (rc == 0 && st->efi_auto && !st->loader && !has_descriptor())
		rc = set_err(err, errlen, -ENOENT,
			     "the domain boots UEFI but this host has no UEFI firmware (no "
			     "descriptor in /usr/share/qemu/firmware): install OVMF, or restore "
			     "the disks without --define");
	if (rc == 0 && st->tpm && !has_swtpm())
		rc = set_err(err, errlen, -ENOENT,
			     "the domain has an emulated TPM but this host has no swtpm: install "
			     "swtpm, or restore the disks without --define");
	return rc;
}

static int new_uuid(char out[37])
{
	uint8_t b[16];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

static void set_note(const struct cairn_snapshot *s, struct cairn_fwstate *f)
{
	bool no_nvram = f->uefi && !cairn_firmware_count(s, CAIRN_FIRMWARE_NVRAM);
	bool no_tpm = f->tpm && !cairn_firmware_count(s, CAIRN_FIRMWARE_TPM);
	if (no_nvram || no_tpm)
		snprintf(f->note, sizeof(f->note),
			 "the snapshot holds no %s (taken before cairn stored firmware "
			 "state, or none existed yet): the domain starts with %s",
			 no_nvram && no_tpm ? "NVRAM or TPM state"
			 : no_nvram	    ? "NVRAM"
					    : "TPM state",
			 no_nvram && no_tpm ? "a fresh NVRAM from its template and a new TPM"
			 : no_nvram	    ? "a fresh NVRAM from its template"
					    : "a new TPM");
}

int cairn_fwstate_plan(const struct cairn_snapshot *s, const char *name, struct cairn_fwstate *f,
		       struct cairn_domxml_opts *x, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	struct stored st = { 0 };
	int rc = read_stored(s->domain_xml, &st);
	f->uefi = st.efi_auto || st.pflash;
	f->tpm = st.tpm;
	if (rc == 0)
		rc = check_host(&st, f, err, errlen);
	free(st.loader);
	free(st.nvram_template);
	_cleanup_free_ char *stored_name = st.name;
	if (!name)
		name = stored_name;
	if (rc < 0 || (!f->uefi && !f->tpm) || !name)
		return rc == -EINVAL ? 0 : rc; /* domxml reports an unparsable XML */
	if ((rc = new_uuid(f->uuid)) < 0)
		return set_err(err, errlen, rc, "cannot make a UUID: %s", strerror(-rc));
	if ((f->uefi && asprintf(&f->nvram, NVRAM_DIR "/%s_VARS.fd", name) < 0) ||
	    (f->tpm && asprintf(&f->tpm_dir, SWTPM_DIR "/%s/%s", f->uuid,
				st.tpm12 ? "tpm1_2" : "tpm2") < 0))
		return set_err(err, errlen, -ENOMEM, "out of memory");
	set_note(s, f);
	x->uuid = f->uuid;
	x->nvram = f->nvram;
	x->loader = f->loader;
	x->nvram_template = f->nvram_template;
	return 0;
}

/* path (replaced atomically) holds item f of the snapshot. */
static int write_item(struct cairn_repo *r, const struct cairn_firmware_file *item,
		      const char *path, char *err, size_t errlen)
{
	_cleanup_free_ uint8_t *data = NULL;
	int rc = cairn_firmware_read(r, item, &data);
	if (rc < 0)
		return set_err(err, errlen, rc, "%s state %s: %s", item->kind, item->path,
			       cairn_repo_error(r));
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.cairn-tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		      item->mode & 0777 ? item->mode & 0777 : 0600);
	bool ok = fd >= 0 && pwrite_full(fd, data, item->size, 0) == 0 &&
		  fchmod(fd, item->mode & 0777) == 0 && fsync(fd) == 0;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (ok && rename(tmp, path) == 0)
		return 0;
	e = ok ? errno : e;
	unlink(tmp);
	return set_err(err, errlen, -e, "cannot write %s: %s", path, strerror(e));
}

static int make_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return set_err(err, errlen, -errno, "cannot create %s: %s", path, strerror(errno));
	return 0;
}

/* SWTPM_DIR/UUID/tpm2: libvirt makes them 0711 and 0700. */
static int make_tpm_dir(const struct cairn_fwstate *f, char *err, size_t errlen)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), SWTPM_DIR "/%s", f->uuid);
	int rc = make_dir(SWTPM_DIR, 0711, err, errlen);
	if (rc == 0)
		rc = make_dir(parent, 0711, err, errlen);
	return rc < 0 ? rc : make_dir(f->tpm_dir, 0700, err, errlen);
}

static int write_tpm(struct cairn_repo *r, const struct cairn_snapshot *s,
		     struct cairn_fwstate *f, char *err, size_t errlen)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < s->nfirmware; i++) {
		const struct cairn_firmware_file *item = &s->firmware[i];
		if (strcmp(item->kind, CAIRN_FIRMWARE_TPM))
			continue;
		const char *base = strrchr(item->path, '/');
		base = base ? base + 1 : item->path;
		if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
			return set_err(err, errlen, -EBADMSG, "bad TPM state file name %s",
				       item->path);
		if (f->tpm_written == 0 && (rc = make_tpm_dir(f, err, errlen)) < 0)
			return rc;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", f->tpm_dir, base);
		if ((rc = write_item(r, item, path, err, errlen)) == 0)
			f->tpm_written++;
	}
	return rc;
}

int cairn_fwstate_write(struct cairn_repo *r, const struct cairn_snapshot *s,
			struct cairn_fwstate *f, char *err, size_t errlen)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && f->nvram && i < s->nfirmware; i++)
		if (!strcmp(s->firmware[i].kind, CAIRN_FIRMWARE_NVRAM) && f->nvram_written == 0) {
			rc = make_dir(NVRAM_DIR, 0755, err, errlen);
			if (rc == 0 && (rc = write_item(r, &s->firmware[i], f->nvram, err, errlen)) == 0)
				f->nvram_written++;
		}
	if (rc == 0 && f->tpm_dir)
		rc = write_tpm(r, s, f, err, errlen);
	return rc;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		char path[PATH_MAX];
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < sizeof(path) &&
		    unlink(path) < 0 && errno == EISDIR)
			remove_tree(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

void cairn_fwstate_remove(const struct cairn_fwstate *f)
{
	/* a file of that name that write did not put there is someone else's;
	 * the TPM directory is under a UUID this plan made up */
	if (f->nvram && f->nvram_written)
		unlink(f->nvram);
	if (f->tpm_dir) {
		char parent[PATH_MAX];
		snprintf(parent, sizeof(parent), SWTPM_DIR "/%s", f->uuid);
		remove_tree(parent);
	}
}

const char *cairn_fwstate_what(const struct cairn_fwstate *f)
{
	if (f->nvram_written && f->tpm_written)
		return "NVRAM and TPM state";
	if (f->nvram_written)
		return "NVRAM";
	return f->tpm_written ? "TPM state" : NULL;
}

void cairn_fwstate_free(struct cairn_fwstate *f)
{
	free(f->nvram);
	free(f->tpm_dir);
	free(f->loader);
	free(f->nvram_template);
	memset(f, 0, sizeof(*f));
}
