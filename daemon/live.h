/* What the running agent is doing now, shared between its scheduler thread
 * and the threads of its HTTP server (daemon/http.h): the job running (with its
 * latest log line as progress), jobs asked to run now (a bounded queue the
 * scheduler drains between runs, so a request never runs a job itself nor
 * two runs of a job at once), and boot tests started from the API.
 *
 * Every function takes the one mutex inside; callers hold no lock. The
 * struct is owned by whoever made it (cairn agent) and outlives both the
 * scheduler loop and the HTTP server. */
#ifndef CAIRN_DAEMON_LIVE_H
#define CAIRN_DAEMON_LIVE_H

#include <pthread.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_LIVE_QUEUE 16
#define CAIRN_LIVE_VERIFY 8

struct cairn_live_verify {
	char repository[128], snapshot[65];
	pid_t pid; /* of its cairn verify-boot while that runs, else 0 */
	int64_t start_ns, end_ns; /* end_ns 0: still running */
	int exit_code; /* of cairn verify-boot, once ended */
	char message[512]; /* its last line of output */
};

struct cairn_live {
	pthread_mutex_t lock;
	char running[128]; /* job name, "" when idle */
	int64_t running_since_ns;
	char progress[512]; /* the running job's latest log line */
	char queue[CAIRN_LIVE_QUEUE][128];
	size_t nqueue;
	struct cairn_live_verify verify[CAIRN_LIVE_VERIFY]; /* ring, newest last */
	size_t nverify;
};

void cairn_live_init(struct cairn_live *l);
void cairn_live_destroy(struct cairn_live *l);

/* 0, -EALREADY (queued or running already), -ENOSPC (queue full). */
int cairn_live_request(struct cairn_live *l, const char *job);
/* Pops the oldest request into job (len bytes); false when none. */
bool cairn_live_next_request(struct cairn_live *l, char *job, size_t len);
void cairn_live_begin(struct cairn_live *l, const char *job);
void cairn_live_progress(struct cairn_live *l, const char *line);
void cairn_live_end(struct cairn_live *l);

/* A copy taken under the lock, for readers. */
void cairn_live_snapshot(struct cairn_live *l, struct cairn_live *copy);

/* Boot tests: begin returns a slot index (the oldest ended slot is reused)
 * or -EBUSY when CAIRN_LIVE_VERIFY are running. */
int cairn_live_verify_begin(struct cairn_live *l, const char *repository, const char *snapshot);
void cairn_live_verify_started(struct cairn_live *l, int slot, pid_t pid);
void cairn_live_verify_end(struct cairn_live *l, int slot, int exit_code, const char *message);
/* How many boot tests have not ended; with stop, each running child is
 * sent SIGTERM first (verify-boot then removes its VM and stops). The
 * agent calls this until it returns 0 before the struct goes away. */
size_t cairn_live_verify_running(struct cairn_live *l, bool stop);

#endif
