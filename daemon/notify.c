/* Webhook and command notifications (see notify.h). */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "base/util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* libcurl wants one global initialisation per process, before threads use it */
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The URL without user:password@, for messages. */
static void redact(const char *url, char *out, size_t len)
{
	const char *scheme = strstr(url, "://");
	const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
	const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
	if (at && (!slash || at < slash))
		snprintf(out, len, "%.*s%s", (int)(scheme + 3 - url), url, at + 1);
	else
		snprintf(out, len, "%s", url);
}

static size_t discard(char *p, size_t size, size_t n, void *opaque)
{
	(void)p;
	(void)opaque;
	return size * n;
}

/* One POST: 0, or -EAGAIN when worth retrying, -EIO when not. */
static int post_once(const char *url, const char *json, unsigned timeout_s, char *why,
		     size_t whylen)
{
	CURL *c = curl_easy_init();
	if (!c)
		return snprintf(why, whylen, "libcurl failed to start"), -EIO;
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
		return rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ? -EIO : -EAGAIN;
	}
	if (status >= 200 && status < 300)
		return 0;
	snprintf(why, whylen, "HTTP %ld", status);
	return status >= 500 || status == 429 || status == 408 ? -EAGAIN : -EIO;
}

int cairn_notify_webhook(const char *url, const char *json, const struct cairn_notify_opts *o,
			 char *err, size_t errlen)
{
	pthread_once(&curl_once, curl_init_once);
	unsigned attempts = o && o->attempts ? o->attempts : 4;
	unsigned delay = o && o->first_delay_ms ? o->first_delay_ms : 1000;
	unsigned timeout = o && o->timeout_s ? o->timeout_s : 20;
	char why[256] = "", shown[512];
	redact(url, shown, sizeof(shown));
	int rc = -EIO;
	for (unsigned i = 0; i < attempts; i++) {
		if (i) {
			struct timespec ts = { delay / 1000, (long)(delay % 1000) * 1000000L };
			nanosleep(&ts, NULL);
			delay *= 2;
		}
		if ((rc = post_once(url, json, timeout, why, sizeof(why))) != -EAGAIN)
			break;
	}
	if (rc == 0)
		return 0;
	return set_err(err, errlen, -EIO, "webhook %s failed%s: %s", shown,
		       rc == -EAGAIN ? " after retries" : "", why);
}

int cairn_notify_command(const char *command, const char *text, char *err, size_t errlen)
{
	int fds[2];
	if (pipe(fds) < 0)
		return set_err(err, errlen, -errno, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return set_err(err, errlen, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		dup2(fds[0], STDIN_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	/* a command that does not read its input must not kill us */
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	size_t len = strlen(text);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fds[1], text + off, len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fds[1]);
	signal(SIGPIPE, old);
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return set_err(err, errlen, -errno, "waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return set_err(err, errlen, -EIO, "notification command failed (%s %d): %s",
			       WIFEXITED(status) ? "exit" : "signal",
			       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), command);
	return 0;
}
