/* The agent's shared live state (see live.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "live.h"

void cairn_live_init(struct cairn_live *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
}

void cairn_live_destroy(struct cairn_live *l)
{
	pthread_mutex_destroy(&l->lock);
}

static bool queued(const struct cairn_live *l, const char *job)
{
	for (size_t i = 0; i < l->nqueue; i++)
		if (!strcmp(l->queue[i], job))
			return true;
	return false;
}

int cairn_live_request(struct cairn_live *l, const char *job)
{
	int rc = 0;
	pthread_mutex_lock(&l->lock);
	if (queued(l, job) || !strcmp(l->running, job))
		rc = -EALREADY;
	else if (l->nqueue == CAIRN_LIVE_QUEUE)
		rc = -ENOSPC;
	else
		snprintf(l->queue[l->nqueue++], sizeof(l->queue[0]), "%s", job);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

bool cairn_live_next_request(struct cairn_live *l, char *job, size_t len)
{
	pthread_mutex_lock(&l->lock);
	bool any = l->nqueue > 0;
	if (any) {
		snprintf(job, len, "%s", l->queue[0]);
		memmove(l->queue[0], l->queue[1], (l->nqueue - 1) * sizeof(l->queue[0]));
		l->nqueue--;
	}
	pthread_mutex_unlock(&l->lock);
	return any;
}

void cairn_live_begin(struct cairn_live *l, const char *job)
{
	pthread_mutex_lock(&l->lock);
	snprintf(l->running, sizeof(l->running), "%s", job);
	l->running_since_ns = now_ns();
	l->progress[0] = '\0';
	pthread_mutex_unlock(&l->lock);
}

void cairn_live_progress(struct cairn_live *l, const char *line)
{
	pthread_mutex_lock(&l->lock);
	if (l->running[0])
		snprintf(l->progress, sizeof(l->progress), "%s", line);
	pthread_mutex_unlock(&l->lock);
}

void cairn_live_end(struct cairn_live *l)
{
	pthread_mutex_lock(&l->lock);
	l->running[0] = '\0';
	l->running_since_ns = 0;
	l->progress[0] = '\0';
	pthread_mutex_unlock(&l->lock);
}

void cairn_live_snapshot(struct cairn_live *l, struct cairn_live *copy)
{
	pthread_mutex_lock(&l->lock);
	*copy = *l;
	pthread_mutex_unlock(&l->lock);
	/* the copy's mutex is a byte copy of a held one: never to be used */
	memset(&copy->lock, 0, sizeof(copy->lock));
}

/* The slot to use: a free one, else the oldest that ended. */
static int free_slot(struct cairn_live *l)
{
	if (l->nverify < CAIRN_LIVE_VERIFY)
		return (int)l->nverify++;
	int best = -1;
	for (int i = 0; i < CAIRN_LIVE_VERIFY; i++)
		if (l->verify[i].end_ns && (best < 0 || l->verify[i].end_ns < l->verify[best].end_ns))
			best = i;
	return best < 0 ? -EBUSY : best;
}

int cairn_live_verify_begin(struct cairn_live *l, const char *repository, const char *snapshot)
{
	pthread_mutex_lock(&l->lock);
	int slot = free_slot(l);
	if (slot >= 0) {
		struct cairn_live_verify *v = &l->verify[slot];
		memset(v, 0, sizeof(*v));
		snprintf(v->repository, sizeof(v->repository), "%s", repository);
		snprintf(v->snapshot, sizeof(v->snapshot), "%s", snapshot);
		v->start_ns = now_ns();
	}
	pthread_mutex_unlock(&l->lock);
	return slot;
}

void cairn_live_verify_started(struct cairn_live *l, int slot, pid_t pid)
{
	pthread_mutex_lock(&l->lock);
	l->verify[slot].pid = pid;
	pthread_mutex_unlock(&l->lock);
}

size_t cairn_live_verify_running(struct cairn_live *l, bool stop)
{
	size_t n = 0;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nverify; i++) {
		if (l->verify[i].end_ns)
			continue;
		n++;
		if (stop && l->verify[i].pid > 0)
			kill(l->verify[i].pid, SIGTERM);
	}
	pthread_mutex_unlock(&l->lock);
	return n;
}

void cairn_live_verify_end(struct cairn_live *l, int slot, int exit_code, const char *message)
{
	pthread_mutex_lock(&l->lock);
	struct cairn_live_verify *v = &l->verify[slot];
	v->pid = 0;
	v->end_ns = now_ns();
	v->exit_code = exit_code;
	snprintf(v->message, sizeof(v->message), "%s", message);
	pthread_mutex_unlock(&l->lock);
}
