/* cairn mount: nbdkit (detached, see server.c) + nbdfuse, tied together by
 * a state directory holding nbd.sock, nbdkit.pid, nbdfuse.pid and
 * nbdfuse.log (nbdfuse's stderr: it outlives us, so no pipe). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/proc.h"
#include "mount.h"

struct state_paths {
	char sock[PATH_MAX], nbdkit_pid[PATH_MAX], fuse_pid[PATH_MAX], fuse_log[PATH_MAX];
};

static int state_paths(const char *dir, struct state_paths *p)
{
	if (strlen(dir) > PATH_MAX - 16)
		return -ENAMETOOLONG;
	snprintf(p->sock, sizeof(p->sock), "%.*s/nbd.sock", PATH_MAX - 16, dir);
	snprintf(p->nbdkit_pid, sizeof(p->nbdkit_pid), "%.*s/nbdkit.pid", PATH_MAX - 16, dir);
	snprintf(p->fuse_pid, sizeof(p->fuse_pid), "%.*s/nbdfuse.pid", PATH_MAX - 16, dir);
	snprintf(p->fuse_log, sizeof(p->fuse_log), "%.*s/nbdfuse.log", PATH_MAX - 16, dir);
	return 0;
}

static bool alive(pid_t pid)
{
	char path[64], st[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, st, sizeof(st) - 1);
	close(fd);
	const char *paren = n > 0 ? strrchr(st, ')') : NULL;
	return paren && paren[1] == ' ' && paren[2] != 'Z';
}

static void spawn_nbdfuse(const struct cairn_mount_opts *o, const struct state_paths *p)
{
	char target[PATH_MAX];
	snprintf(target, sizeof(target), "%s/%s", o->dir, o->file);
	int null = open("/dev/null", O_RDWR);
	int log = open(p->fuse_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (null < 0 || log < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(log, 2) < 0)
		_exit(127);
	setsid(); /* outlives cairn, away from the terminal's signals */
	execlp("nbdfuse", "nbdfuse", "-r", "-P", p->fuse_pid, target, "--unix", p->sock,
	       (char *)NULL);
	dprintf(2, "cannot run nbdfuse: %s (apt-get install libnbd-bin fuse3)\n",
		strerror(errno));
	_exit(127);
}

/* nbdfuse's last words, for the error line. */
static void fuse_reason(const struct state_paths *p, char *err, size_t errlen)
{
	char text[512] = "";
	int fd = open(p->fuse_log, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	snprintf(err, errlen, "nbdfuse could not mount: %s", text);
}

static int wait_mounted(const struct cairn_mount_opts *o, const struct state_paths *p,
			pid_t pid, char *err, size_t errlen)
{
	char target[PATH_MAX];
	snprintf(target, sizeof(target), "%s/%s", o->dir, o->file);
	int64_t deadline = mono_ns() + (int64_t)(o->timeout_s ? o->timeout_s : 30) * 1000000000;
	struct stat st;
	while (mono_ns() < deadline) {
		if (cairn_pidfile_read(p->fuse_pid) > 0 && stat(target, &st) == 0)
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			set_err(err, errlen, -EIO, "nbdfuse could not mount %s", o->dir);
			fuse_reason(p, err, errlen);
			return -EIO;
		}
		usleep(20000);
	}
	return set_err(err, errlen, -ETIMEDOUT, "nbdfuse did not mount %s in time", o->dir);
}

int cairn_mount(const struct cairn_mount_opts *o, char *err, size_t errlen)
{
	struct state_paths p;
	if (state_paths(o->state_dir, &p) < 0)
		return set_err(err, errlen, -ENAMETOOLONG, "%s: path too long", o->state_dir);
	if (mkdir(o->state_dir, 0700) < 0) {
		if (errno != EEXIST)
			return set_err(err, errlen, -errno, "cannot create %s: %s", o->state_dir,
				       strerror(errno));
		pid_t f = cairn_pidfile_read(p.fuse_pid);
		if (cairn_server_running(p.nbdkit_pid) || (f > 0 && alive(f)))
			return set_err(err, errlen, -EEXIST,
				       "%s is already mounted (cairn umount %s)", o->dir, o->dir);
	}
	struct cairn_server_opts so = o->server;
	so.socket = p.sock;
	so.pidfile = p.nbdkit_pid;
	so.foreground = false;
	_cleanup_(cairn_server_freep) struct cairn_server *srv = NULL;
	int rc = cairn_server_start(&so, &srv, err, errlen);
	if (rc < 0) {
		rmdir(o->state_dir);
		return rc;
	}
	unlink(p.fuse_pid);
	pid_t pid = fork();
	if (pid == 0)
		spawn_nbdfuse(o, &p);
	rc = pid < 0 ? set_err(err, errlen, -errno, "fork: %s", strerror(errno))
		     : wait_mounted(o, &p, pid, err, errlen);
	if (rc < 0) {
		if (pid > 0 && kill(pid, SIGTERM) == 0)
			waitpid(pid, NULL, 0);
		cairn_umount(o->dir, o->state_dir, NULL, 0);
	}
	return rc;
}

/* 0 unmounted (or was not mounted), else -errno. Root unmounts directly;
 * others need the setuid fusermount. */
static int unmount_fuse(const char *dir, char *err, size_t errlen)
{
	if (umount2(dir, 0) == 0 || errno == EINVAL || errno == ENOENT)
		return 0;
	if (errno == EBUSY)
		return set_err(err, errlen, -EBUSY,
			       "%s is busy: detach loop devices and close files under it first", dir);
	char *const fusermount[] = { "fusermount", "-u", (char *)dir, NULL };
	char msg[256] = "";
	if (run_command(fusermount, NULL, msg, sizeof(msg)) < 0)
		return set_err(err, errlen, -EIO, "cannot unmount %s: %s", dir, msg);
	return 0;
}

int cairn_umount(const char *dir, const char *state_dir, char *err, size_t errlen)
{
	struct state_paths p;
	if (state_paths(state_dir, &p) < 0)
		return set_err(err, errlen, -ENAMETOOLONG, "%s: path too long", state_dir);
	struct stat st;
	if (stat(state_dir, &st) < 0)
		return set_err(err, errlen, -ENOENT, "%s is not mounted by cairn", dir);
	int rc = unmount_fuse(dir, err, errlen);
	if (rc < 0)
		return rc;
	/* nbdfuse exits once unmounted */
	pid_t f = cairn_pidfile_read(p.fuse_pid);
	for (int i = 0; f > 0 && i < 100 && alive(f); i++)
		usleep(50000);
	if (f > 0 && alive(f))
		kill(f, SIGTERM);
	cairn_server_stop(p.nbdkit_pid, p.sock, NULL, 0);
	unlink(p.fuse_pid);
	unlink(p.fuse_log);
	unlink(p.nbdkit_pid);
	if (rmdir(state_dir) < 0 && errno != ENOENT)
		return set_err(err, errlen, -errno, "cannot remove %s: %s", state_dir,
			       strerror(errno));
	return 0;
}
