/* Unit tests for daemon/notify.c: a real libcurl against a small HTTP
 * server on loopback run by the test. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/notify.h"

struct server {
	int fd, port;
	const int *statuses; /* answer for each request; the last repeats */
	int nstatuses, requests;
	char body[4096];
	char auth_seen;
	pthread_t thread;
};

/* Reads one request (headers, then Content-Length bytes of body). */
static void read_request(int c, struct server *s)
{
	char buf[8192] = "";
	size_t n = 0;
	char *end = NULL;
	while (n < sizeof(buf) - 1 && !(end = strstr(buf, "\r\n\r\n"))) {
		ssize_t r = read(c, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			return;
		n += (size_t)r;
		buf[n] = '\0';
	}
	if (!end)
		return;
	s->auth_seen |= strstr(buf, "Authorization:") != NULL;
	const char *cl = strcasestr(buf, "Content-Length:");
	size_t want = cl ? (size_t)atoi(cl + 15) : 0, have = n - (size_t)(end + 4 - buf);
	if (have >= sizeof(s->body))
		have = sizeof(s->body) - 1;
	memcpy(s->body, end + 4, have);
	while (have < want && have < sizeof(s->body) - 1) {
		ssize_t r = read(c, s->body + have, want - have);
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	s->body[have] = '\0';
}

static void *serve(void *arg)
{
	struct server *s = arg;
	for (;;) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		read_request(c, s);
		int st = s->statuses[s->requests < s->nstatuses ? s->requests : s->nstatuses - 1];
		s->requests++;
		char reply[128];
		int len = snprintf(reply, sizeof(reply),
				   "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", st);
		if (write(c, reply, (size_t)len) < 0) {
			/* the client went away; nothing to do */
		}
		close(c);
	}
}

static void start(struct server *s, const int *statuses, int n)
{
	memset(s, 0, sizeof(*s));
	s->statuses = statuses;
	s->nstatuses = n;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 8), 0);
	socklen_t al = sizeof(a);
	getsockname(s->fd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void stop(struct server *s)
{
	shutdown(s->fd, SHUT_RDWR);
	close(s->fd);
	pthread_join(s->thread, NULL);
}

static const struct cairn_notify_opts fast = { .attempts = 3, .first_delay_ms = 10, .timeout_s = 5 };

static void test_retry_then_success(void **state)
{
	(void)state;
	static const int st[] = { 500, 200 };
	struct server s;
	start(&s, st, 2);
	char url[128], err[256] = "";
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", s.port);
	const char *json = "{\"job\":\"nightly\",\"vm\":\"web1\",\"ok\":false}";
	assert_int_equal(cairn_notify_webhook(url, json, &fast, err, sizeof(err)), 0);
	stop(&s);
	assert_int_equal(s.requests, 2);
	assert_string_equal(s.body, json);
}

static void test_gives_up_and_hides_credentials(void **state)
{
	(void)state;
	static const int st[] = { 503 };
	struct server s;
	start(&s, st, 1);
	char url[128], err[256] = "";
	snprintf(url, sizeof(url), "http://alice:s3cret@127.0.0.1:%d/hook", s.port);
	assert_int_equal(cairn_notify_webhook(url, "{}", &fast, err, sizeof(err)), -EIO);
	stop(&s);
	if (s.requests != 3)
		fail_msg("%d requests; error: %s", s.requests, err);
	assert_true(s.auth_seen); /* the credentials were used ... */
	assert_null(strstr(err, "s3cret")); /* ... and never printed */
	assert_null(strstr(err, "alice"));
	assert_non_null(strstr(err, "after retries"));
	assert_non_null(strstr(err, "HTTP 503"));
}

static void test_client_error_not_retried(void **state)
{
	(void)state;
	static const int st[] = { 404 };
	struct server s;
	start(&s, st, 1);
	char url[128], err[256] = "";
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/nope", s.port);
	assert_int_equal(cairn_notify_webhook(url, "{}", &fast, err, sizeof(err)), -EIO);
	stop(&s);
	assert_int_equal(s.requests, 1);
	assert_non_null(strstr(err, "HTTP 404"));
}

static void test_nobody_listening(void **state)
{
	(void)state;
	struct server s;
	static const int st[] = { 200 };
	start(&s, st, 1);
	int port = s.port;
	stop(&s); /* the port is closed now */
	char url[128], err[256] = "";
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
	assert_int_equal(cairn_notify_webhook(url, "{}", &fast, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "127.0.0.1"));
	assert_int_equal(cairn_notify_webhook("ftp://x/y", "{}", &fast, err, sizeof(err)), -EIO);
}

static void test_command(void **state)
{
	(void)state;
	char path[] = "/tmp/cairn-notify-XXXXXX", cmd[128], err[256] = "", got[64] = "";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "cat > %s", path);
	assert_int_equal(cairn_notify_command(cmd, "job nightly failed\n", err, sizeof(err)), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(got, sizeof(got), f));
	fclose(f);
	unlink(path);
	assert_string_equal(got, "job nightly failed\n");
	assert_int_equal(cairn_notify_command("exit 3", "x", err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "exit 3"));
	/* a command that never reads a long input */
	static char big[1 << 20];
	memset(big, 'x', sizeof(big) - 1);
	assert_int_equal(cairn_notify_command("true", big, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_then_success),
		cmocka_unit_test(test_gives_up_and_hides_credentials),
		cmocka_unit_test(test_client_error_not_retried),
		cmocka_unit_test(test_nobody_listening),
		cmocka_unit_test(test_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
