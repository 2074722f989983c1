/* The remote backends' curl handle pool and shared rate limits: see
 * curl_pool.h. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/rand.h>

#include "curl_pool.h"
#include "base/util.h"

/* what a limited transfer may run ahead of its share */
#define PACE_BURST_NS 50000000LL
#define CONNECT_TIMEOUT_S 15L
/* a transfer slower than this for this long has stalled (a full or hung
 * server): it fails as a timeout and is retried */
#define STALL_BYTES_PER_S 1024L
#define STALL_TIME_S 60L

int curl_pool_init(struct curl_pool *p, unsigned max, uint64_t limit_up, uint64_t limit_down)
{
	*p = (struct curl_pool){ .max = max ? max : CURL_POOL_DEFAULT_CONNECTIONS };
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->freed, NULL);
	pthread_mutex_init(&p->up.mu, NULL);
	pthread_mutex_init(&p->down.mu, NULL);
	p->up.limit = limit_up;
	p->down.limit = limit_down;
	p->idle = calloc(p->max, sizeof(*p->idle));
	return p->idle ? 0 : -ENOMEM;
}

void curl_pool_destroy(struct curl_pool *p)
{
	for (size_t i = 0; i < p->nidle; i++)
		curl_easy_cleanup(p->idle[i]);
	free(p->idle);
	p->idle = NULL;
	p->nidle = 0;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->up.mu);
	pthread_mutex_destroy(&p->down.mu);
}

CURL *curl_pool_get(struct curl_pool *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->busy >= p->max)
		pthread_cond_wait(&p->freed, &p->mu);
	p->busy++;
	CURL *h = p->nidle ? p->idle[--p->nidle] : NULL;
	pthread_mutex_unlock(&p->mu);
	if (!h && !(h = curl_easy_init())) {
		pthread_mutex_lock(&p->mu);
		p->busy--;
		pthread_cond_signal(&p->freed);
		pthread_mutex_unlock(&p->mu);
	}
	return h;
}

void curl_pool_put(struct curl_pool *p, CURL *h)
{
	/* its options point into the finished request; its connection stays */
	curl_easy_reset(h);
	pthread_mutex_lock(&p->mu);
	p->idle[p->nidle++] = h;
	p->busy--;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->mu);
}

static void pace(struct curl_pacer *p, curl_off_t bytes)
{
	if (!p->limit || bytes <= 0)
		return;
	int64_t now = mono_ns(), wait;
	pthread_mutex_lock(&p->mu);
	if (p->tat_ns < now)
		p->tat_ns = now;
	p->tat_ns += (int64_t)((double)bytes * 1e9 / (double)p->limit);
	wait = p->tat_ns - now - PACE_BURST_NS;
	pthread_mutex_unlock(&p->mu);
	if (wait > 0) {
		struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000),
				       .tv_nsec = (long)(wait % 1000000000) };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal;
	(void)ultotal;
	struct curl_paced *x = opaque;
	pace(&x->pool->up, ulnow - x->up_seen);
	pace(&x->pool->down, dlnow - x->down_seen);
	x->up_seen = MAX(x->up_seen, ulnow);
	x->down_seen = MAX(x->down_seen, dlnow);
	return 0;
}

CURLcode curl_pool_transport(struct curl_pool *p, CURL *h, char *errbuf, struct curl_paced *x)
{
	*x = (struct curl_paced){ .pool = p };
	CURLcode e = CURLE_OK;
#define SET(opt, val) (e = e ? e : curl_easy_setopt(h, opt, val))
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	SET(CURLOPT_LOW_SPEED_LIMIT, STALL_BYTES_PER_S);
	SET(CURLOPT_LOW_SPEED_TIME, STALL_TIME_S);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	if (p->up.limit || p->down.limit) {
		SET(CURLOPT_NOPROGRESS, 0L);
		SET(CURLOPT_XFERINFOFUNCTION, on_progress);
		SET(CURLOPT_XFERINFODATA, x);
	}
	/* no single transfer bursts past the whole limit either */
	if (p->up.limit)
		SET(CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)p->up.limit);
	if (p->down.limit)
		SET(CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)p->down.limit);
#undef SET
	return e;
}

void curl_pool_backoff(unsigned attempt, unsigned first_ms, unsigned max_ms)
{
	uint64_t ms = first_ms;
	for (unsigned i = 1; i < attempt && ms < max_ms; i++)
		ms *= 2;
	ms = MIN(ms, (uint64_t)max_ms);
	uint32_t r = 0;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	ms = ms / 2 + r % (ms / 2 + 1);
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
