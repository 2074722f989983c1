/* wanproxy: a TCP proxy that delays every byte by a fixed one-way latency,
 * the WAN simulation of the integration tests and the benchmark (this
 * kernel has no netem).
 *
 *   wanproxy --listen [HOST:]PORT --target HOST:PORT --delay-ms D
 *            [--port-file F] [--pid-file F] [--no-handshake] [--max-queue-mb N]
 *            [--verbose]
 *
 * Contract:
 * - Every accepted connection gets its own connection to TARGET. Bytes
 *   read from one side are written to the other D ms after they were read,
 *   in each direction independently: a request/response round trip costs
 *   2 x D, a stream keeps its throughput (bytes wait in a timestamped queue;
 *   nothing sleeps per read). A direction stops reading only when more than
 *   --max-queue-mb (default 256) wait in its queue.
 * - A new connection also pays TCP's handshake: the client's first bytes
 *   reach the target 3 x D after the accept (connect round trip + one way),
 *   unless --no-handshake. A target that refuses resets the client 2 x D
 *   after the accept.
 * - End of stream (FIN) travels like data: D ms later the proxy shuts the
 *   other side's write half (half-close is kept). A reset (or read error)
 *   on one side resets the other side once the bytes before it are
 *   delivered; a write error resets both sides at once.
 * - PORT 0 picks a free port; --port-file receives the port actually
 *   bound (written atomically once the proxy accepts), --pid-file the pid.
 * - Single-threaded, epoll; no limit on the number of connections but the
 *   process's descriptors. Runs until killed (SIGTERM/SIGINT: exit 0).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_MAX (256 * 1024)
#define MAX_EVENTS 256

enum seg_kind { SEG_DATA, SEG_EOF, SEG_RESET };

/* bytes read at one moment, due at one deadline */
struct seg {
	struct seg *next;
	int64_t due_ns;
	enum seg_kind kind;
	size_t len, off;
	char data[];
};

/* one direction of a connection: read from src, queue, write to dst */
struct pipe_dir {
	struct seg *head, *tail;
	size_t queued;
	bool src_done;   /* EOF or error read from src: no more reading */
	bool dst_done;   /* EOF delivered (dst write half shut) */
	bool write_blocked;
};

struct conn;

/* what an epoll event points at: the listener or one side of a connection */
struct endpoint {
	struct conn *conn; /* NULL: the listening socket */
	int side;          /* 0 client, 1 target */
};

struct conn {
	struct conn *prev, *next;
	int fd[2];
	uint32_t mask[2];  /* events registered with epoll (0: not registered) */
	struct endpoint ep[2];
	bool connecting;   /* target connect in progress */
	bool dead;         /* to be reset and freed after this batch of events */
	int64_t open_ns;   /* accept time */
	/* dir[0]: client -> target, dir[1]: target -> client */
	struct pipe_dir dir[2];
	unsigned long id;
};

struct proxy {
	int epfd, listen_fd, sig_fd;
	struct endpoint listen_ep;
	struct sockaddr_storage target;
	socklen_t target_len;
	int64_t delay_ns;
	bool handshake;
	bool verbose;
	size_t max_queue;
	struct conn *conns;
	unsigned long next_id;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* close so that the peer sees a reset, not an orderly end */
static void close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* "HOST:PORT" or "PORT" (host defaulting to def_host) into an address */
static int resolve(const char *spec, const char *def_host, struct sockaddr_storage *out,
		   socklen_t *out_len)
{
	char host[256];
	const char *port = strrchr(spec, ':');
	if (port) {
		size_t hl = (size_t)(port - spec);
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		port++;
	} else {
		snprintf(host, sizeof(host), "%s", def_host);
		port = spec;
	}
	/* [::1]:80 */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -EINVAL;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*out_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* ---------------------------------------------------------------- epoll */

static int fd_update(struct proxy *px, struct conn *c, int side, uint32_t want)
{
	int fd = c->fd[side];
	if (fd < 0 || c->mask[side] == want)
		return 0;
	int op = !c->mask[side] ? EPOLL_CTL_ADD : want ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
	struct epoll_event ev = { .events = want, .data.ptr = &c->ep[side] };
	if (epoll_ctl(px->epfd, op, fd, &ev) < 0)
		return -errno;
	c->mask[side] = want;
	return 0;
}

/* the events a side needs: readable while its outgoing direction may read,
 * writable while its incoming direction waits for room (or connect) */
static int conn_update(struct proxy *px, struct conn *c)
{
	for (int side = 0; side < 2; side++) {
		const struct pipe_dir *out = &c->dir[side], *in = &c->dir[!side];
		uint32_t want = 0;
		if (side == 1 && c->connecting) {
			want = EPOLLOUT;
		} else {
			if (!out->src_done && out->queued < px->max_queue)
				want |= EPOLLIN;
			if (in->write_blocked)
				want |= EPOLLOUT;
		}
		int rc = fd_update(px, c, side, want);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------------- connections */

static void seg_free_all(struct pipe_dir *d)
{
	while (d->head) {
		struct seg *s = d->head;
		d->head = s->next;
		free(s);
	}
	d->tail = NULL;
	d->queued = 0;
}

static void conn_free(struct proxy *px, struct conn *c, bool reset)
{
	if (px->verbose)
		fprintf(stderr, "wanproxy: connection %lu %s\n", c->id, reset ? "reset" : "closed");
	for (int side = 0; side < 2; side++) {
		if (c->fd[side] < 0)
			continue;
		if (c->mask[side])
			epoll_ctl(px->epfd, EPOLL_CTL_DEL, c->fd[side], NULL);
		if (reset)
			close_reset(c->fd[side]);
		else
			close(c->fd[side]);
	}
	seg_free_all(&c->dir[0]);
	seg_free_all(&c->dir[1]);
	if (c->prev)
		c->prev->next = c->next;
	else
		px->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* the earliest moment data of this direction may leave */
static int64_t due_time(const struct proxy *px, const struct conn *c, int dir, int64_t now)
{
	int64_t start = now;
	/* the client's bytes wait for the connect round trip a real link has */
	if (dir == 0 && px->handshake && start < c->open_ns + 2 * px->delay_ns)
		start = c->open_ns + 2 * px->delay_ns;
	return start + px->delay_ns;
}

static int enqueue(struct pipe_dir *d, enum seg_kind kind, const char *data, size_t len,
		   int64_t due)
{
	struct seg *s = malloc(sizeof(*s) + len);
	if (!s)
		return -ENOMEM;
	*s = (struct seg){ .due_ns = due, .kind = kind, .len = len };
	if (len)
		memcpy(s->data, data, len);
	if (d->tail)
		d->tail->next = s;
	else
		d->head = s;
	d->tail = s;
	d->queued += len;
	return 0;
}

/* read what side has to say into the direction leaving it */
static int conn_read(struct proxy *px, struct conn *c, int side, char *buf)
{
	struct pipe_dir *d = &c->dir[side];
	if (d->src_done)
		return 0;
	ssize_t n = recv(c->fd[side], buf, READ_MAX, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	int64_t due = due_time(px, c, side, mono_ns());
	if (n > 0)
		return enqueue(d, SEG_DATA, buf, (size_t)n, due);
	d->src_done = true;
	return enqueue(d, n == 0 ? SEG_EOF : SEG_RESET, NULL, 0, due);
}

/* write the due part of one direction; 1 when the connection is to be reset */
static int dir_flush(struct conn *c, int dir, int64_t now)
{
	struct pipe_dir *d = &c->dir[dir];
	int dst = c->fd[!dir];
	if (dir == 0 && c->connecting)
		return 0;
	d->write_blocked = false;
	while (d->head && d->head->due_ns <= now) {
		struct seg *s = d->head;
		if (s->kind == SEG_RESET)
			return 1;
		if (s->kind == SEG_EOF) {
			shutdown(dst, SHUT_WR);
			d->dst_done = true;
		} else {
			ssize_t n = send(dst, s->data + s->off, s->len - s->off,
					 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				d->write_blocked = true;
				return 0;
			}
			if (n < 0)
				return 1;
			s->off += (size_t)n;
			d->queued -= (size_t)n;
			if (s->off < s->len)
				continue;
		}
		d->head = s->next;
		if (!d->head)
			d->tail = NULL;
		free(s);
	}
	return 0;
}

/* flush both directions; frees the connection when it is over.
 * Returns false when c is gone. */
static bool conn_progress(struct proxy *px, struct conn *c, int64_t now)
{
	if (c->dead) {
		conn_free(px, c, true);
		return false;
	}
	for (int dir = 0; dir < 2; dir++) {
		if (dir_flush(c, dir, now)) {
			conn_free(px, c, true);
			return false;
		}
	}
	if (c->dir[0].dst_done && c->dir[1].dst_done) {
		conn_free(px, c, false);
		return false;
	}
	if (conn_update(px, c) < 0) {
		conn_free(px, c, true);
		return false;
	}
	return true;
}

/* the target's connect finished: err is its errno, or -1 to ask the socket */
static void conn_connected(struct proxy *px, struct conn *c, int err)
{
	socklen_t len = sizeof(err);
	if (err < 0 && getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	c->connecting = false;
	if (!err)
		return;
	if (px->verbose)
		fprintf(stderr, "wanproxy: connection %lu: target: %s\n", c->id, strerror(err));
	/* the client learns it after the SYN's round trip */
	epoll_ctl(px->epfd, EPOLL_CTL_DEL, c->fd[1], NULL);
	c->mask[1] = 0;
	close(c->fd[1]);
	c->fd[1] = -1;
	c->dir[0].src_done = c->dir[1].src_done = true;
	seg_free_all(&c->dir[0]);
	c->dir[0].dst_done = true;
	enqueue(&c->dir[1], SEG_RESET, NULL, 0, c->open_ns + 2 * px->delay_ns);
}

static int conn_open(struct proxy *px, int client)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close_reset(client);
		return -ENOMEM;
	}
	c->id = px->next_id++;
	c->open_ns = mono_ns();
	c->fd[0] = client;
	c->fd[1] = socket(px->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	for (int side = 0; side < 2; side++)
		c->ep[side] = (struct endpoint){ .conn = c, .side = side };
	c->next = px->conns;
	if (px->conns)
		px->conns->prev = c;
	px->conns = c;
	if (c->fd[1] < 0) {
		conn_free(px, c, true);
		return -errno;
	}
	set_nonblock(client);
	set_nodelay(client);
	set_nodelay(c->fd[1]);
	c->connecting = true;
	if (connect(c->fd[1], (struct sockaddr *)&px->target, px->target_len) == 0)
		conn_connected(px, c, 0);
	else if (errno != EINPROGRESS)
		conn_connected(px, c, errno);
	if (px->verbose)
		fprintf(stderr, "wanproxy: connection %lu opened\n", c->id);
	if (conn_update(px, c) < 0)
		conn_free(px, c, true);
	return 0;
}

static void accept_all(struct proxy *px)
{
	for (;;) {
		int fd = accept4(px->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				fprintf(stderr, "wanproxy: accept: %s\n", strerror(errno));
			return;
		}
		conn_open(px, fd);
	}
}

/* ---------------------------------------------------------------- main loop */

/* ms until the earliest queued byte that may be written is due (-1: none) */
static int next_timeout(const struct proxy *px, int64_t now)
{
	int64_t best = -1;
	for (const struct conn *c = px->conns; c; c = c->next) {
		for (int dir = 0; dir < 2; dir++) {
			const struct pipe_dir *d = &c->dir[dir];
			if (!d->head || d->write_blocked || (dir == 0 && c->connecting))
				continue;
			int64_t wait = d->head->due_ns - now;
			if (wait < 0)
				wait = 0;
			if (best < 0 || wait < best)
				best = wait;
		}
	}
	if (best < 0)
		return -1;
	/* round up: waking early only costs a loop, late never happens */
	int64_t ms = (best + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void handle_event(struct proxy *px, struct endpoint *ep, uint32_t events, char *buf)
{
	struct conn *c = ep->conn;
	int side = ep->side;
	if (c->dead)
		return;
	if (side == 1 && c->connecting) {
		conn_connected(px, c, -1);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c->mask[side] & EPOLLIN)) {
		if (conn_read(px, c, side, buf) < 0) {
			c->dead = true;
			return;
		}
	}
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->dir[!side].write_blocked = false;
}

static int run(struct proxy *px)
{
	struct epoll_event events[MAX_EVENTS];
	char *buf = malloc(READ_MAX);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		int n = epoll_wait(px->epfd, events, MAX_EVENTS, next_timeout(px, mono_ns()));
		if (n < 0 && errno != EINTR) {
			free(buf);
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct endpoint *ep = events[i].data.ptr;
			if (ep == NULL) { /* SIGTERM or SIGINT */
				while (px->conns)
					conn_free(px, px->conns, false);
				free(buf);
				return 0;
			}
			if (ep == &px->listen_ep)
				accept_all(px);
			else
				handle_event(px, ep, events[i].events, buf);
		}
		/* connections are freed only here, never while a batch of events
		 * may still name them */
		int64_t now = mono_ns();
		struct conn *next;
		for (struct conn *c = px->conns; c; c = next) {
			next = c->next;
			conn_progress(px, c, now);
		}
	}
}

/* ---------------------------------------------------------------- setup */

static int write_file_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		int rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

static int listen_on(struct proxy *px, const char *spec, int *port)
{
	struct sockaddr_storage addr;
	socklen_t len;
	if (resolve(spec, "127.0.0.1", &addr, &len) < 0)
		return -EINVAL;
	int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, len) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	*port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
						 : ((struct sockaddr_in *)&addr)->sin_port);
	px->listen_fd = fd;
	return 0;
}

/* SIGTERM and SIGINT end the loop through a signalfd (data.ptr NULL) */
static int watch_signals(struct proxy *px)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	px->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (px->sig_fd < 0)
		return -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(px->epfd, EPOLL_CTL_ADD, px->sig_fd, &ev) < 0)
		return -errno;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: wanproxy --listen [HOST:]PORT --target HOST:PORT --delay-ms D\n"
		   "                [--port-file F] [--pid-file F] [--no-handshake]\n"
		   "                [--max-queue-mb N] [--verbose]\n");
}

struct options {
	const char *listen, *target, *port_file, *pid_file;
	long delay_ms, max_queue_mb;
	bool no_handshake, verbose;
};

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "target", required_argument, NULL, 't' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "port-file", required_argument, NULL, 'P' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "max-queue-mb", required_argument, NULL, 'q' },
		{ "no-handshake", no_argument, NULL, 'H' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct options){ .delay_ms = -1, .max_queue_mb = 256 };
	int opt;
	char *end;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': o->listen = optarg; break;
		case 't': o->target = optarg; break;
		case 'P': o->port_file = optarg; break;
		case 'p': o->pid_file = optarg; break;
		case 'H': o->no_handshake = true; break;
		case 'v': o->verbose = true; break;
		case 'd':
			o->delay_ms = strtol(optarg, &end, 10);
			if (*end || end == optarg || o->delay_ms < 0 || o->delay_ms > 3600000)
				return -EINVAL;
			break;
		case 'q':
			o->max_queue_mb = strtol(optarg, &end, 10);
			if (*end || end == optarg || o->max_queue_mb < 1 || o->max_queue_mb > 65536)
				return -EINVAL;
			break;
		case 'h': usage(stdout); exit(0);
		default: return -EINVAL;
		}
	}
	if (optind != argc || !o->listen || !o->target || o->delay_ms < 0)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct proxy px = { .listen_fd = -1, .sig_fd = -1 };
	char text[64];
	int port = 0, rc;
	/* segments come and go by the thousand a second: keep them on the heap
	 * rather than paying mmap, munmap and fresh page faults for each */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	/* two descriptors a connection: take all the process may have */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	if (parse_options(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	px.delay_ns = o.delay_ms * 1000000;
	px.handshake = !o.no_handshake;
	px.verbose = o.verbose;
	px.max_queue = (size_t)o.max_queue_mb << 20;
	if (resolve(o.target, "127.0.0.1", &px.target, &px.target_len) < 0) {
		fprintf(stderr, "wanproxy: cannot resolve target %s\n", o.target);
		return 1;
	}
	if ((rc = listen_on(&px, o.listen, &port)) < 0) {
		fprintf(stderr, "wanproxy: cannot listen on %s: %s\n", o.listen, strerror(-rc));
		return 1;
	}
	px.epfd = epoll_create1(EPOLL_CLOEXEC);
	px.listen_ep = (struct endpoint){ 0 };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &px.listen_ep };
	if (px.epfd < 0 || epoll_ctl(px.epfd, EPOLL_CTL_ADD, px.listen_fd, &ev) < 0 ||
	    watch_signals(&px) < 0) {
		fprintf(stderr, "wanproxy: epoll: %s\n", strerror(errno));
		return 1;
	}
	snprintf(text, sizeof(text), "%d\n", (int)getpid());
	if (o.pid_file && (rc = write_file_atomic(o.pid_file, text)) < 0) {
		fprintf(stderr, "wanproxy: %s: %s\n", o.pid_file, strerror(-rc));
		return 1;
	}
	snprintf(text, sizeof(text), "%d\n", port);
	if (o.port_file && (rc = write_file_atomic(o.port_file, text)) < 0) {
		fprintf(stderr, "wanproxy: %s: %s\n", o.port_file, strerror(-rc));
		return 1;
	}
	if (o.verbose)
		fprintf(stderr, "wanproxy: 127.0.0.1:%d -> %s, %ld ms each way\n", port, o.target,
			o.delay_ms);
	if ((rc = run(&px)) < 0) {
		fprintf(stderr, "wanproxy: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
