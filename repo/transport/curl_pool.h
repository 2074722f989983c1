/* What the remote backends (S3, SFTP) share on top of libcurl.
 *
 * A pool of easy handles, at most `max` in use at once (--connections):
 * a handle goes back to the pool after its request and keeps its
 * connection (and SSH session) open for the next one, since a new TLS or
 * SSH handshake costs more than most requests.
 *
 * One rate limit per direction over all the pool's transfers
 * (--limit-upload/--limit-download): a virtual clock (GCRA) that each
 * transferred byte moves on by 1/limit seconds; a transfer that gets ahead
 * of real time sleeps in curl's progress callback, which holds it back, and
 * TCP passes the back-pressure on. curl's own limits are per handle; they
 * are set too, so that no single transfer bursts past the whole limit. */
#ifndef CAIRN_CURL_POOL_H
#define CAIRN_CURL_POOL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>

struct curl_pacer {
	pthread_mutex_t mu;
	uint64_t limit; /* bytes/s; 0: none */
	int64_t tat_ns; /* when the bytes accounted so far may have passed */
};

struct curl_pool {
	unsigned max;
	struct curl_pacer up, down;
	pthread_mutex_t mu; /* idle, nidle, busy */
	pthread_cond_t freed;
	CURL **idle;
	size_t nidle, busy;
};

/* One transfer's bytes already counted against the limits. */
struct curl_paced {
	struct curl_pool *pool;
	curl_off_t up_seen, down_seen;
};

/* max 0: CURL_POOL_DEFAULT_CONNECTIONS. 0 or -ENOMEM; destroy it in
 * either case. */
#define CURL_POOL_DEFAULT_CONNECTIONS 4
int curl_pool_init(struct curl_pool *p, unsigned max, uint64_t limit_up, uint64_t limit_down);
void curl_pool_destroy(struct curl_pool *p);
/* A handle with no options set (its connection kept), waiting while max
 * are in use; NULL when curl cannot make one. */
CURL *curl_pool_get(struct curl_pool *p);
/* Gives h back, its options reset. */
void curl_pool_put(struct curl_pool *p, CURL *h);
/* Sleeps before retry number attempt (1, 2, ...): first_ms doubled per
 * attempt up to max_ms, with full jitter (a random half to all of it) so
 * that the retries of many clients spread out. */
void curl_pool_backoff(unsigned attempt, unsigned first_ms, unsigned max_ms);
/* What every transfer of a remote backend sets: no signals (threads), the
 * error buffer, a connect timeout, a stalled transfer failing as a
 * timeout (to be retried) rather than hanging, TCP keepalive, and the
 * pool's rate limits through x (which must live as long as the transfer).
 * CURLE_OK or curl's error. */
CURLcode curl_pool_transport(struct curl_pool *p, CURL *h, char *errbuf, struct curl_paced *x);

#endif
