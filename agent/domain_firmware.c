/* A domain's firmware state for its snapshot: the UEFI variable store named
 * by <nvram> (or libvirt's default for a UEFI domain without one) and the
 * state directory of an emulated TPM, which libvirt keeps under
 * /var/lib/libvirt/swtpm/<uuid>/tpm2 (tpm1_2 for TPM 1.2).
 *
 * QEMU writes the NVRAM and swtpm its state files while the guest runs
 * (UEFI variable writes, TPM commands that change non-volatile state).
 * Both come from guest vCPUs, so the running path reads the files while
 * the domain is paused around the checkpoint (domain_live.c): they are
 * then what a power cut at the checkpoint instant would have left, as the
 * disks are. A shut-off domain's files are quiescent. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domain.h"
#include "base/xml.h"

#define NVRAM_DIR "/var/lib/libvirt/qemu/nvram"
#define SWTPM_DIR "/var/lib/libvirt/swtpm"

static int find_nvram(struct domain_job *j, xmlXPathContextPtr ctx)
{
	char *path = xml_xpath_string(ctx, "string(/domain/os/nvram)");
	if (path) {
		j->fw.nvram = path;
		return 0;
	}
	_cleanup_free_ char *firmware = xml_xpath_string(ctx, "string(/domain/os/@firmware)");
	_cleanup_free_ char *loader = xml_xpath_string(ctx, "string(/domain/os/loader/@type)");
	/* libvirt's own choice for a UEFI domain without <nvram> */
	if ((firmware && !strcmp(firmware, "efi")) || (loader && !strcmp(loader, "pflash")))
		if (asprintf(&j->fw.nvram, NVRAM_DIR "/%s_VARS.fd", j->o->domain) < 0)
			return -ENOMEM;
	return 0;
}

static int find_tpm(struct domain_job *j, xmlXPathContextPtr ctx)
{
	_cleanup_free_ char *type = xml_xpath_string(ctx, "string(/domain/devices/tpm/backend/@type)");
	if (!type || strcmp(type, "emulator"))
		return 0;
	_cleanup_free_ char *version =
		xml_xpath_string(ctx, "string(/domain/devices/tpm/backend/@version)");
	char uuid[VIR_UUID_STRING_BUFLEN];
	if (virDomainGetUUIDString(j->dom, uuid) < 0)
		return set_err(j->err, j->errlen, -EIO, "domain %s: %s", j->o->domain,
			       domain_virt_msg());
	/* libvirt's default version is 2.0 */
	bool v12 = version && !strcmp(version, "1.2");
	if (asprintf(&j->fw.tpm_dir, SWTPM_DIR "/%s/%s", uuid, v12 ? "tpm1_2" : "tpm2") < 0)
		return -ENOMEM;
	return 0;
}

int domain_firmware_find(struct domain_job *j, bool live)
{
	/* a running domain's definition names the files libvirt chose */
	_cleanup_free_ char *xml = live ? virDomainGetXMLDesc(j->dom, 0) : NULL;
	const char *text = xml ? xml : j->xml;
	xmlDocPtr doc = xml_parse(text, 0);
	xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
	int rc = ctx ? find_nvram(j, ctx) : -EBADMSG;
	if (rc == 0)
		rc = find_tpm(j, ctx);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	if (rc == -EBADMSG)
		set_err(j->err, j->errlen, rc, "cannot parse the XML of domain %s", j->o->domain);
	return rc;
}

bool domain_firmware_any(const struct domain_job *j)
{
	return j->fw.nvram || j->fw.tpm_dir;
}

static int read_file(struct domain_job *j, const char *kind, const char *path)
{
	if (j->fw.n == DOMAIN_MAX_FIRMWARE)
		return set_err(j->err, j->errlen, -E2BIG, "domain %s: too many TPM state files in %s",
			       j->o->domain, j->fw.tpm_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > CAIRN_FIRMWARE_MAX_FILE) {
		int e = fd < 0 || !S_ISREG(st.st_mode) || st.st_size <= CAIRN_FIRMWARE_MAX_FILE
				? (fd < 0 ? errno : EINVAL)
				: EFBIG;
		if (fd >= 0)
			close(fd);
		return set_err(j->err, j->errlen, -e, "domain %s: cannot read %s: %s", j->o->domain,
			       path, strerror(e));
	}
	struct cairn_firmware_state *f = &j->fw.files[j->fw.n];
	f->kind = kind;
	f->mode = st.st_mode & 07777;
	f->len = (size_t)st.st_size;
	f->path = strdup(path);
	f->data = malloc(f->len + 1);
	ssize_t got = f->path && f->data ? pread(fd, f->data, f->len, 0) : -1;
	int e = errno;
	close(fd);
	j->fw.n++;
	if (got != (ssize_t)f->len)
		return set_err(j->err, j->errlen, got < 0 ? -e : -EIO, "domain %s: cannot read %s: %s",
			       j->o->domain, path, got < 0 ? strerror(e) : "short read");
	return 0;
}

/* Every state file of the TPM (not swtpm's lock file), sorted by name. */
static int read_tpm(struct domain_job *j)
{
	struct dirent **names = NULL;
	int n = scandir(j->fw.tpm_dir, &names, NULL, alphasort);
	if (n < 0 && errno == ENOENT) {
		domain_notice(j, "domain %s: its TPM has no state yet (%s); none stored",
			      j->o->domain, j->fw.tpm_dir);
		return 0;
	}
	if (n < 0)
		return set_err(j->err, j->errlen, -errno, "domain %s: cannot read %s: %s",
			       j->o->domain, j->fw.tpm_dir, strerror(errno));
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		if (rc == 0 && names[i]->d_name[0] != '.' &&
		    (size_t)snprintf(path, sizeof(path), "%s/%s", j->fw.tpm_dir, names[i]->d_name) <
			    sizeof(path))
			rc = read_file(j, CAIRN_FIRMWARE_TPM, path);
		free(names[i]);
	}
	free(names);
	return rc;
}

void domain_firmware_release(struct domain_job *j)
{
	for (size_t i = 0; i < j->fw.n; i++) {
		free(j->fw.files[i].path);
		free(j->fw.files[i].data);
	}
	j->fw.n = 0;
	j->backup.firmware = NULL;
	j->backup.nfirmware = 0;
}

int domain_firmware_capture(struct domain_job *j)
{
	domain_firmware_release(j);
	int rc = 0;
	if (j->fw.nvram && access(j->fw.nvram, F_OK) < 0)
		domain_notice(j, "domain %s: its NVRAM file %s does not exist yet; none stored",
			      j->o->domain, j->fw.nvram);
	else if (j->fw.nvram)
		rc = read_file(j, CAIRN_FIRMWARE_NVRAM, j->fw.nvram);
	if (rc == 0 && j->fw.tpm_dir)
		rc = read_tpm(j);
	if (rc < 0)
		return rc;
	j->backup.firmware = j->fw.files;
	j->backup.nfirmware = j->fw.n;
	return 0;
}

void domain_firmware_warn(const struct domain_job *j)
{
	bool tpm = false;
	for (size_t i = 0; i < j->fw.n; i++)
		tpm |= !strcmp(j->fw.files[i].kind, CAIRN_FIRMWARE_TPM);
	if (tpm && !cairn_repo_encrypted(j->r))
		domain_notice(j, "WARNING: repository is not encrypted, yet it now holds the TPM state "
				 "of domain %s: anyone who can read the repository can unseal what "
				 "the guest keeps in its TPM (disk keys, BitLocker)",
			      j->o->domain);
}

void domain_firmware_free(struct domain_job *j)
{
	domain_firmware_release(j);
	free(j->fw.nvram);
	free(j->fw.tpm_dir);
}
