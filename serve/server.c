/* Starting, watching and stopping nbdkit with the cairn plugin. nbdkit's
 * stderr comes back through a pipe: before it is ready, its first error is
 * the reason a start failed; afterwards (foreground) its log is relayed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "server.h"

struct cairn_server {
	pid_t pid; /* nbdkit serving (the daemon's pid once detached) */
	int log_fd; /* read end of nbdkit's stderr, -1 when closed */
	bool foreground, reaped;
	struct buf log; /* partial line */
};

static bool readable(const char *path)
{
	return access(path, R_OK) == 0;
}

int cairn_server_find_plugin(char *out, size_t len, char *err, size_t errlen)
{
	const char *env = getenv("CAIRN_NBDKIT_PLUGIN");
	if (env && *env) {
		if (!readable(env))
			return set_err(err, errlen, -ENOENT, "CAIRN_NBDKIT_PLUGIN=%s: no such file",
				       env);
		snprintf(out, len, "%s", env);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return set_err(err, errlen, -ENOENT, "cannot find the cairn executable: %s",
			       strerror(errno));
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	/* a checkout (./cairn, build/), inside the build dir (build/asan/cairn),
	 * then an installation (PREFIX/bin and PREFIX/lib/cairn) */
	static const char *const rel[] = { "build/", "", "../", "../lib/cairn/" };
	for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
		snprintf(out, len, "%s/%s%s", exe, rel[i], CAIRN_PLUGIN_NAME);
		if (readable(out)) {
			char real[PATH_MAX];
			if (realpath(out, real))
				snprintf(out, len, "%s", real);
			return 0;
		}
	}
	return set_err(err, errlen, -ENOENT,
		       "%s not found beside %s or in %s/../lib/cairn (run make, or set CAIRN_NBDKIT_PLUGIN)",
		       CAIRN_PLUGIN_NAME, exe, exe);
}

pid_t cairn_pidfile_read(const char *pidfile)
{
	char buf[32] = "";
	int fd = open(pidfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
	return pid > 0 && pid < INT_MAX ? (pid_t)pid : 0;
}

/* A pid is recycled after its process ends: only an nbdkit that is not a
 * zombie counts as the server. */
static bool is_live_nbdkit(pid_t pid)
{
	char path[64], stat[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	const char *close_paren = n > 0 ? strrchr(stat, ')') : NULL;
	return close_paren && strstr(stat, "(nbdkit)") && close_paren[1] == ' ' &&
	       close_paren[2] != 'Z';
}

pid_t cairn_server_running(const char *pidfile)
{
	pid_t pid = cairn_pidfile_read(pidfile);
	return pid > 0 && is_live_nbdkit(pid) ? pid : 0;
}

#define NKEYS 12

/* key=value for the plugin, when value is set */
static int add_key(char *keys[NKEYS], size_t *nk, const char *argv[32], int *n, const char *key,
		   const char *value)
{
	if (!value)
		return 0;
	if (asprintf(&keys[*nk], "%s=%s", key, value) < 0) {
		keys[*nk] = NULL;
		return -ENOMEM;
	}
	argv[(*n)++] = keys[(*nk)++];
	return 0;
}

static int make_argv(const struct cairn_server_opts *o, char *keys[NKEYS], const char *argv[32])
{
	int n = 0;
	argv[n++] = "nbdkit";
	if (o->foreground) {
		argv[n++] = "-f";
		argv[n++] = "--exit-with-parent";
	}
	argv[n++] = "-r";
	argv[n++] = "-P";
	argv[n++] = o->pidfile;
	if (o->socket) {
		argv[n++] = "--unix";
		argv[n++] = o->socket;
	} else {
		argv[n++] = "-p";
		argv[n++] = o->port;
		argv[n++] = "-i";
		argv[n++] = o->address ? o->address : "127.0.0.1";
	}
	argv[n++] = o->plugin;
	const struct cairn_backend_opts *b = o->backend;
	char conns[16] = "", cache_size[32] = "";
	if (b && b->connections)
		snprintf(conns, sizeof(conns), "%u", b->connections);
	if (o->cache_dir && o->cache_size)
		snprintf(cache_size, sizeof(cache_size), "%llu", (unsigned long long)o->cache_size);
	size_t nk = 0;
	if (add_key(keys, &nk, argv, &n, "repo", o->repo) < 0 ||
	    add_key(keys, &nk, argv, &n, "snapshot", o->snapshot) < 0 ||
	    add_key(keys, &nk, argv, &n, "disk", o->disk) < 0 ||
	    add_key(keys, &nk, argv, &n, "password-file", o->password_file) < 0 ||
	    add_key(keys, &nk, argv, &n, "s3-credentials-file", b ? b->credentials_file : NULL) < 0 ||
	    add_key(keys, &nk, argv, &n, "sftp-identity", b ? b->identity_file : NULL) < 0 ||
	    add_key(keys, &nk, argv, &n, "sftp-known-hosts", b ? b->known_hosts_file : NULL) < 0 ||
	    add_key(keys, &nk, argv, &n, "connections", conns[0] ? conns : NULL) < 0 ||
	    add_key(keys, &nk, argv, &n, "cache-dir", o->cache_dir) < 0 ||
	    add_key(keys, &nk, argv, &n, "cache-size", cache_size[0] ? cache_size : NULL) < 0)
		return -ENOMEM;
	argv[n] = NULL;
	return 0;
}

static void exec_nbdkit(const struct cairn_server_opts *o, const char *const argv[],
			int log_fd)
{
	int null = open("/dev/null", O_RDWR);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(log_fd, 2) < 0)
		_exit(127);
	if (!o->foreground)
		setsid(); /* a terminal's ^C must not reach a detached server */
	if (o->password && !o->password_file)
		setenv("CAIRN_PASSWORD", o->password, 1);
	else
		unsetenv("CAIRN_PASSWORD");
	execvp(argv[0], (char *const *)argv);
	dprintf(2, "nbdkit: error: cannot run nbdkit: %s (apt-get install nbdkit)\n",
		strerror(errno));
	_exit(127);
}

/* The reason in nbdkit's output: its first error message. */
static void first_error(const struct buf *log, char *err, size_t errlen)
{
	_cleanup_free_ char *text = strndup((const char *)log->p, log->len);
	if (!text || !*text)
		return;
	char *line = text, *pick = NULL;
	for (char *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *e = strstr(line, "error: ");
		if (e) {
			pick = e + 7;
			break;
		}
		if (!pick)
			pick = line;
	}
	if (pick)
		snprintf(err, errlen, "nbdkit could not start: %s", pick);
}

static int drain(int fd, struct buf *log)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	if (n > 0 && buf_append(log, chunk, (size_t)n) < 0)
		return -ENOMEM;
	return n > 0 ? 1 : n == 0 ? 0 : (errno == EINTR || errno == EAGAIN ? 1 : -errno);
}

/* Waits for the pid file; the launched process may exit 0 on the way
 * (nbdkit forking into the background). */
static int wait_ready(struct cairn_server *srv, const struct cairn_server_opts *o,
		      char *err, size_t errlen)
{
	int64_t deadline = mono_ns() + (int64_t)(o->timeout_s ? o->timeout_s : 30) * 1000000000;
	bool launcher_done = false;
	while (mono_ns() < deadline) {
		struct pollfd p = { .fd = srv->log_fd, .events = POLLIN };
		if (srv->log_fd >= 0 && poll(&p, 1, 20) > 0 && drain(srv->log_fd, &srv->log) == 0) {
			close(srv->log_fd);
			srv->log_fd = -1;
		} else if (srv->log_fd < 0) {
			usleep(20000);
		}
		if (cairn_pidfile_read(o->pidfile) > 0)
			return 0;
		int status;
		if (!launcher_done && waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
			launcher_done = srv->reaped = true;
			if (!o->foreground && WIFEXITED(status) && WEXITSTATUS(status) == 0)
				continue;
			while (srv->log_fd >= 0 && drain(srv->log_fd, &srv->log) > 0)
				;
			set_err(err, errlen, -EIO, "nbdkit could not start");
			first_error(&srv->log, err, errlen);
			return -EIO;
		}
	}
	return set_err(err, errlen, -ETIMEDOUT, "nbdkit did not become ready in %us",
		       o->timeout_s ? o->timeout_s : 30);
}

static int prepare(const struct cairn_server_opts *o, char *err, size_t errlen)
{
	pid_t old = cairn_server_running(o->pidfile);
	if (old > 0)
		return set_err(err, errlen, -EEXIST, "a server (pid %d) already runs with pid file %s",
			       (int)old, o->pidfile);
	if (unlink(o->pidfile) < 0 && errno != ENOENT)
		return set_err(err, errlen, -errno, "cannot remove stale %s: %s", o->pidfile,
			       strerror(errno));
	struct stat st;
	/* a socket left by a server that died; anything else stays */
	if (o->socket && lstat(o->socket, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return set_err(err, errlen, -EEXIST, "%s exists and is not a socket",
				       o->socket);
		unlink(o->socket);
	}
	return 0;
}

int cairn_server_start(const struct cairn_server_opts *o, struct cairn_server **out,
		       char *err, size_t errlen)
{
	int rc = prepare(o, err, errlen);
	if (rc < 0)
		return rc;
	char *keys[NKEYS] = { 0 };
	const char *argv[32];
	int fds[2] = { -1, -1 };
	struct cairn_server *srv = calloc(1, sizeof(*srv));
	if (!srv || make_argv(o, keys, argv) < 0)
		rc = set_err(err, errlen, -ENOMEM, "out of memory");
	else if (pipe2(fds, O_CLOEXEC) < 0)
		rc = set_err(err, errlen, -errno, "pipe: %s", strerror(errno));
	else if ((srv->pid = fork()) < 0)
		rc = set_err(err, errlen, -errno, "fork: %s", strerror(errno));
	else if (srv->pid == 0)
		exec_nbdkit(o, argv, fds[1]);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		free(keys[i]);
	if (fds[1] >= 0)
		close(fds[1]);
	if (rc < 0) {
		if (fds[0] >= 0)
			close(fds[0]);
		free(srv);
		return rc;
	}
	srv->log_fd = fds[0];
	srv->foreground = o->foreground;
	if ((rc = wait_ready(srv, o, err, errlen)) == 0 && o->socket && o->world_connectable &&
	    chmod(o->socket, 0666) < 0)
		rc = set_err(err, errlen, -errno, "chmod %s: %s", o->socket, strerror(errno));
	if (rc == 0 && !o->foreground) {
		if (!srv->reaped)
			waitpid(srv->pid, NULL, 0);
		srv->reaped = true;
		srv->pid = cairn_pidfile_read(o->pidfile);
		close(srv->log_fd); /* the daemon logs to syslog */
		srv->log_fd = -1;
	}
	if (rc < 0) {
		if (!srv->reaped) {
			kill(srv->pid, SIGTERM);
			waitpid(srv->pid, NULL, 0);
			srv->reaped = true;
		}
		if (!o->foreground)
			cairn_server_stop(o->pidfile, o->socket, NULL, 0);
		cairn_server_free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

pid_t cairn_server_pid(const struct cairn_server *srv)
{
	return srv->pid;
}

static void relay_lines(struct buf *log, cairn_report_fn report, void *opaque)
{
	size_t start = 0;
	for (size_t i = 0; i < log->len; i++) {
		if (log->p[i] != '\n')
			continue;
		log->p[i] = '\0';
		if (report)
			report(opaque, (const char *)log->p + start);
		start = i + 1;
	}
	memmove(log->p, log->p + start, log->len - start);
	log->len -= start;
}

int cairn_server_wait(struct cairn_server *srv, cairn_report_fn report, void *opaque,
		      const volatile int *cancel, char *err, size_t errlen)
{
	bool asked = false;
	relay_lines(&srv->log, report, opaque);
	while (srv->log_fd >= 0) {
		if (cancel && *cancel && !asked) {
			kill(srv->pid, SIGTERM);
			asked = true;
		}
		struct pollfd p = { .fd = srv->log_fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		if (drain(srv->log_fd, &srv->log) <= 0) {
			close(srv->log_fd);
			srv->log_fd = -1;
		}
		relay_lines(&srv->log, report, opaque);
	}
	int status = 0;
	while (!srv->reaped && waitpid(srv->pid, &status, 0) < 0 && errno == EINTR)
		if (cancel && *cancel && !asked) {
			kill(srv->pid, SIGTERM);
			asked = true;
		}
	srv->reaped = true;
	if (asked || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
		return 0;
	return set_err(err, errlen, -EIO, "nbdkit ended with %s %d",
		       WIFSIGNALED(status) ? "signal" : "status",
		       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

void cairn_server_free(struct cairn_server *srv)
{
	if (!srv)
		return;
	if (srv->foreground && !srv->reaped) {
		kill(srv->pid, SIGTERM);
		waitpid(srv->pid, NULL, 0);
	}
	if (srv->log_fd >= 0)
		close(srv->log_fd);
	buf_free(&srv->log);
	free(srv);
}

int cairn_server_stop(const char *pidfile, const char *socket, char *err, size_t errlen)
{
	pid_t pid = cairn_pidfile_read(pidfile);
	if (pid < 0)
		return set_err(err, errlen, pid, "cannot read %s: %s", pidfile, strerror(-pid));
	if (pid > 0 && is_live_nbdkit(pid)) {
		kill(pid, SIGTERM);
		for (int i = 0; i < 100 && is_live_nbdkit(pid); i++)
			usleep(50000);
		if (is_live_nbdkit(pid)) {
			kill(pid, SIGKILL);
			for (int i = 0; i < 40 && is_live_nbdkit(pid); i++)
				usleep(50000);
		}
	}
	unlink(pidfile);
	if (socket)
		unlink(socket);
	return 0;
}
