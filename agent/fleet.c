/* Several domains backed up at once (see fleet.h). */
#include <pthread.h>
#include <stdio.h>

#include "fleet.h"

struct fleet_run {
	struct cairn_repo *r;
	const struct cairn_fleet_opts *o;
	struct cairn_writer *w; /* shared when parallel */
	pthread_mutex_t lock; /* next, done hooks */
	size_t next; /* next domain to back up */
};

static void backup_one(struct fleet_run *x, size_t i)
{
	const struct cairn_fleet_opts *f = x->o;
	struct cairn_domain_opts o = f->domain;
	o.domain = f->domains[i];
	if (!o.backup.name)
		o.backup.name = f->domains[i];
	o.backup.writer = x->w;
	if (f->begin && f->begin(f->opaque, i, &o) < 0)
		return;
	struct cairn_backup_result res;
	char err[512] = "";
	int rc = cairn_backup_domain(x->r, &o, &res, err, sizeof(err));
	pthread_mutex_lock(&x->lock);
	if (f->done)
		f->done(f->opaque, i, rc, &res, err);
	pthread_mutex_unlock(&x->lock);
}

static void *fleet_thread(void *arg)
{
	struct fleet_run *x = arg;
	for (;;) {
		pthread_mutex_lock(&x->lock);
		size_t i = x->next++;
		pthread_mutex_unlock(&x->lock);
		if (i >= x->o->ndomains || (x->o->stop && *x->o->stop))
			return NULL;
		backup_one(x, i);
	}
}

int cairn_backup_fleet(struct cairn_repo *r, const struct cairn_fleet_opts *o, char *err,
		       size_t errlen)
{
	struct fleet_run x = { .r = r, .o = o };
	unsigned nthreads = o->parallel > 1 ? o->parallel : 1;
	nthreads = MIN(nthreads, CAIRN_FLEET_MAX_PARALLEL);
	if (nthreads > o->ndomains)
		nthreads = (unsigned)o->ndomains;
	int rc;
	if (nthreads > 1 && (rc = cairn_writer_new(r, &x.w)) < 0)
		return set_err(err, errlen, rc, "%s", cairn_repo_error(r));
	pthread_mutex_init(&x.lock, NULL);
	/* the caller's thread is one of the workers */
	pthread_t th[CAIRN_FLEET_MAX_PARALLEL];
	unsigned started = 0;
	for (unsigned i = 1; i < nthreads; i++)
		if (pthread_create(&th[started], NULL, fleet_thread, &x) == 0)
			started++;
	fleet_thread(&x);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (x.w)
		cairn_writer_free(x.w);
	pthread_mutex_destroy(&x.lock);
	return 0;
}
