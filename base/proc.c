/* Running helper programs (qemu-img) without a shell. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/wait.h>

#include "proc.h"

int run_command(char *const argv[], struct buf *out, char *err, size_t errlen)
{
	int opipe[2], epipe[2];
	if (pipe2(opipe, O_CLOEXEC) < 0)
		return set_err(err, errlen, -errno, "pipe: %s", strerror(errno));
	if (pipe2(epipe, O_CLOEXEC) < 0) {
		close(opipe[0]);
		close(opipe[1]);
		return set_err(err, errlen, -errno, "pipe: %s", strerror(errno));
	}
	pid_t pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(opipe[0]); close(opipe[1]); close(epipe[0]); close(epipe[1]);
		return set_err(err, errlen, rc, "fork: %s", strerror(-rc));
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(opipe[1], 1);
		dup2(epipe[1], 2);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(opipe[1]);
	close(epipe[1]);
	struct buf errbuf = { 0 };
	struct pollfd fds[2] = { { opipe[0], POLLIN, 0 }, { epipe[0], POLLIN, 0 } };
	int open_fds = 2;
	while (open_fds) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !fds[i].revents)
				continue;
			char tmp[4096];
			ssize_t n = read(fds[i].fd, tmp, sizeof(tmp));
			if (n <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
				continue;
			}
			struct buf *b = i == 0 ? out : &errbuf;
			if (b)
				buf_append(b, tmp, (size_t)n);
		}
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	int rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
	if (rc < 0) {
		buf_append(&errbuf, "", 1);
		char *line = (char *)errbuf.p;
		if (line) {
			line[strcspn(line, "\n")] = '\0';
		}
		set_err(err, errlen, rc, "%s: %s", argv[0],
			line && *line ? line : "failed");
	}
	buf_free(&errbuf);
	return rc;
}
