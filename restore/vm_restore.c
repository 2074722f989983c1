/* Whole-VM restore (see vm_restore.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "vm.h"
#include "vm_restore.h"

const char *cairn_image_format_name(enum cairn_image_format f)
{
	return f == CAIRN_FMT_QCOW2 ? "qcow2" : "raw";
}

static bool is_dir(const char *path)
{
	struct stat st;
	return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_block(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

/* libvirt needs absolute paths; the file itself does not exist yet. */
static char *absolute(const char *path)
{
	char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = slash ? strndup(path, (size_t)(slash - path + 1)) : strdup(".");
	char real[PATH_MAX];
	if (!dir || !realpath(dir, real))
		return NULL;
	char *out;
	return asprintf(&out, "%s/%s", real, slash ? slash + 1 : path) < 0 ? NULL : out;
}

/* Where the disk goes: path given, the --to file, or NAME-DISK.EXT in the
 * --to directory. */
static char *target_path(const struct cairn_vm_restore_opts *o, const struct cairn_snapshot *s,
			 const struct cairn_disk *d, const char *explicit_path, bool dir_mode)
{
	char *path = NULL;
	if (explicit_path)
		return strdup(explicit_path);
	if (!dir_mode)
		return strdup(o->to);
	if (asprintf(&path, "%s/%s-%s.%s", o->to, o->as ? o->as : s->name, d->name,
		     cairn_image_format_name(o->format)) < 0)
		return NULL;
	return path;
}

static int plan_target(const struct cairn_vm_restore_opts *o, const struct cairn_snapshot *s,
		       struct cairn_disk *d, const char *explicit_path, bool dir_mode,
		       struct cairn_vm_restore_target *t, char *err, size_t errlen)
{
	t->d = d;
	t->format = o->format;
	_cleanup_free_ char *path = target_path(o, s, d, explicit_path, dir_mode);
	if (!path)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	t->block = is_block(path);
	if (t->block && o->format_given && t->format == CAIRN_FMT_QCOW2)
		return set_err(err, errlen, -EINVAL,
			       "%s is a block device: disks are written to devices as raw", path);
	if (t->block)
		t->format = CAIRN_FMT_RAW;
	if (t->block && !o->force)
		return set_err(err, errlen, -EEXIST, "%s is a block device; use --force to overwrite it",
			       path);
	struct stat st;
	if (!t->block && !o->force && lstat(path, &st) == 0)
		return set_err(err, errlen, -EEXIST, "%s exists; use --force to replace it", path);
	if (!(t->path = t->block ? strdup(path) : absolute(path))) {
		int e = errno ? errno : ENOMEM;
		return set_err(err, errlen, -e, "cannot resolve %s: %s", path, strerror(e));
	}
	return 0;
}

/* The checks on the request as a whole, before any target. */
static int check_request(const struct cairn_vm_restore_opts *o, const struct cairn_snapshot *s,
			 size_t n, bool dir_mode, char *err, size_t errlen)
{
	char names[512];
	cairn_snapshot_disk_names(s, names, sizeof(names));
	if (o->define && !s->domain_xml)
		return set_err(err, errlen, -ENOENT,
			       "snapshot of %s holds a disk image, not a libvirt domain: "
			       "there is nothing to --define",
			       s->name);
	if (n > 1 && !dir_mode && o->to)
		return set_err(err, errlen, -EINVAL,
			       "snapshot has %zu disks (%s): restore them into a directory "
			       "(--to DIR/) or choose one with --disk",
			       n, names);
	bool need_to = !o->npicks;
	for (size_t i = 0; i < o->npicks; i++)
		need_to |= !o->picks[i].path;
	if (need_to && !o->to)
		return set_err(err, errlen, -EINVAL,
			       "say where to restore with --to FILE|DIR (or --disk D=PATH)");
	if (dir_mode && o->to && !is_dir(o->to) && mkdir(o->to, 0755) < 0)
		return set_err(err, errlen, -errno, "cannot create directory %s: %s", o->to,
			       strerror(errno));
	return 0;
}

int cairn_vm_restore_plan(struct cairn_snapshot *s, const struct cairn_vm_restore_opts *o,
			  struct cairn_vm_restore *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	size_t n = o->npicks ? o->npicks : s->ndisks;
	size_t tolen = o->to ? strlen(o->to) : 0;
	bool dir_mode = o->define || is_dir(o->to) || (tolen && o->to[tolen - 1] == '/');
	int rc = check_request(o, s, n, dir_mode, err, errlen);
	if (rc == 0 && n > CAIRN_VM_RESTORE_MAX_DISKS)
		rc = set_err(err, errlen, -EINVAL, "at most %d disks", CAIRN_VM_RESTORE_MAX_DISKS);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *want = o->npicks ? o->picks[i].disk : s->disks[i].name;
		struct cairn_disk *d = (struct cairn_disk *)cairn_snapshot_disk(s, want);
		if (!d) {
			char names[512];
			cairn_snapshot_disk_names(s, names, sizeof(names));
			return set_err(err, errlen, -ENOENT, "snapshot has no disk %s (disks: %s)",
				       want, names);
		}
		rc = plan_target(o, s, d, o->npicks ? o->picks[i].path : NULL, dir_mode,
				 &out->targets[out->ntargets++], err, errlen);
	}
	return rc;
}

/* The stored definition, pointing at the restored disks. */
static int rewrite_xml(const struct cairn_snapshot *s, const struct cairn_vm_restore_opts *o,
		       struct cairn_vm_restore *v, char *err, size_t errlen)
{
	struct cairn_domxml_disk disks[CAIRN_VM_RESTORE_MAX_DISKS];
	for (size_t i = 0; i < v->ntargets; i++) {
		const struct cairn_vm_restore_target *t = &v->targets[i];
		disks[i] = (struct cairn_domxml_disk){ .target = t->d->name, .path = t->path,
						       .format = cairn_image_format_name(t->format),
						       .block = t->block };
	}
	struct cairn_domxml_opts x = { .name = o->as, .disks = disks, .ndisks = v->ntargets,
				       .net_map = o->net_map, .nnet_map = o->nnet_map,
				       .new_macs = o->new_macs };
	int rc = cairn_fwstate_plan(s, o->as, &v->fw, &x, err, errlen);
	return rc < 0 ? rc : cairn_domxml_rewrite(s->domain_xml, &x, &v->domain, err, errlen);
}

static int restore_one(struct cairn_repo *r, const struct cairn_vm_restore_opts *o,
		       const struct cairn_vm_restore_target *t, char *err, size_t errlen)
{
	struct cairn_restore_opts ro = { .target = t->path, .format = t->format,
					 .force = o->force, .resume = o->resume,
					 .cancel = o->cancel };
	if (o->disk_begin)
		o->disk_begin(o->opaque, t, &ro);
	struct cairn_restore_result res;
	int64_t t0 = mono_ns();
	int rc = cairn_restore_disk(r, t->d, &ro, &res, err, errlen);
	if (o->disk_done)
		o->disk_done(o->opaque, t, rc, &res, (double)(mono_ns() - t0) / 1e9);
	return rc;
}

int cairn_vm_restore_run(struct cairn_repo *r, const struct cairn_snapshot *s,
			 const struct cairn_vm_restore_opts *o, struct cairn_vm_restore *v,
			 char *err, size_t errlen)
{
	_cleanup_(cairn_vm_host_closep) struct cairn_vm_host *h = NULL;
	int rc = 0;
	/* the host is checked before any data is written */
	if (o->define && ((rc = rewrite_xml(s, o, v, err, errlen)) < 0 ||
			  (rc = cairn_vm_host_open(o->uri, &h, err, errlen)) < 0 ||
			  (rc = cairn_vm_host_preflight(h, &v->domain, o->start, err, errlen)) < 0))
		return rc;
	for (size_t i = 0; rc == 0 && i < v->ntargets; i++)
		rc = restore_one(r, o, &v->targets[i], err, errlen);
	/* the firmware state goes where the new domain's definition names it,
	 * before libvirt can start it with fresh files */
	if (rc == 0 && o->define && (rc = cairn_fwstate_write(r, s, &v->fw, err, errlen)) < 0)
		cairn_fwstate_remove(&v->fw);
	if (rc == 0 && o->define && (rc = cairn_vm_host_define(h, v->domain.xml, false, err,
								  errlen)) < 0)
		cairn_fwstate_remove(&v->fw);
	/* a domain that does not start stays defined, with its state */
	if (rc == 0 && o->start)
		rc = cairn_vm_host_start(h, v->domain.name, err, errlen);
	return rc;
}

void cairn_vm_restore_free(struct cairn_vm_restore *v)
{
	for (size_t i = 0; i < v->ntargets; i++)
		free(v->targets[i].path);
	cairn_domxml_result_free(&v->domain);
	cairn_fwstate_free(&v->fw);
	memset(v, 0, sizeof(*v));
}
