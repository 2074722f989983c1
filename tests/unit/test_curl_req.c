/* Unit tests for the pure parts of repo/transport/curl_req.c, the request
 * core S3 and SFTP share: what curl's codes and HTTP statuses mean as
 * errno, which failures are retried, the verdict on one attempt (a short
 * ranged read fails, it is never retried), the retry loop's count, the
 * thread's last failure (the first one kept, only for its owner) and
 * percent-encoding. No network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "repo/transport/curl_req.h"

static void test_curl_errno(void **state)
{
	(void)state;
	assert_int_equal(curl_req_errno(CURLE_OK), 0);
	assert_int_equal(curl_req_errno(CURLE_REMOTE_FILE_NOT_FOUND), -ENOENT);
	assert_int_equal(curl_req_errno(CURLE_REMOTE_ACCESS_DENIED), -EACCES);
	assert_int_equal(curl_req_errno(CURLE_LOGIN_DENIED), -EACCES);
	assert_int_equal(curl_req_errno(CURLE_REMOTE_DISK_FULL), -ENOSPC);
	assert_int_equal(curl_req_errno(CURLE_COULDNT_CONNECT), -ECONNREFUSED);
	assert_int_equal(curl_req_errno(CURLE_COULDNT_RESOLVE_HOST), -EHOSTUNREACH);
	assert_int_equal(curl_req_errno(CURLE_OPERATION_TIMEDOUT), -ETIMEDOUT);
	assert_int_equal(curl_req_errno(CURLE_OUT_OF_MEMORY), -ENOMEM);
	assert_int_equal(curl_req_errno(CURLE_RECV_ERROR), -ECONNRESET);
	assert_int_equal(curl_req_errno(CURLE_SEND_ERROR), -ECONNRESET);
	assert_int_equal(curl_req_errno(CURLE_GOT_NOTHING), -ECONNRESET);
	assert_int_equal(curl_req_errno(CURLE_PARTIAL_FILE), -ECONNRESET);
	assert_int_equal(curl_req_errno(CURLE_SSL_CONNECT_ERROR), -EPROTO);
	assert_int_equal(curl_req_errno(CURLE_PEER_FAILED_VERIFICATION), -EPROTO);
	/* an SFTP range that starts past the end: a short object */
	assert_int_equal(curl_req_errno(CURLE_BAD_DOWNLOAD_RESUME), -EIO);
	/* -EIO means a short object and nothing else */
	assert_int_equal(curl_req_errno(CURLE_SSH), -EREMOTEIO);
	assert_int_equal(curl_req_errno(CURLE_QUOTE_ERROR), -EREMOTEIO);
	assert_int_equal(curl_req_errno(CURLE_WRITE_ERROR), -EREMOTEIO);
}

static void test_status_errno(void **state)
{
	(void)state;
	assert_int_equal(curl_req_status_errno(401), -EACCES);
	assert_int_equal(curl_req_status_errno(403), -EACCES);
	assert_int_equal(curl_req_status_errno(404), -ENOENT);
	assert_int_equal(curl_req_status_errno(416), -EIO);
	assert_int_equal(curl_req_status_errno(400), -EINVAL);
	assert_int_equal(curl_req_status_errno(500), -EREMOTEIO);
	assert_int_equal(curl_req_status_errno(503), -EREMOTEIO);
	assert_int_equal(curl_req_status_errno(429), -EREMOTEIO);
	assert_int_equal(curl_req_status_errno(409), -EREMOTEIO);
}

static void test_transient(void **state)
{
	(void)state;
	static const CURLcode again[] = { CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST,
					  CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR,
					  CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE,
					  CURLE_SSL_CONNECT_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM,
					  CURLE_SSH, CURLE_AGAIN };
	static const CURLcode final[] = { CURLE_OK, CURLE_REMOTE_FILE_NOT_FOUND,
					  CURLE_LOGIN_DENIED, CURLE_PEER_FAILED_VERIFICATION,
					  CURLE_REMOTE_ACCESS_DENIED, CURLE_QUOTE_ERROR,
					  CURLE_BAD_DOWNLOAD_RESUME, CURLE_WRITE_ERROR,
					  CURLE_OUT_OF_MEMORY };
	for (size_t i = 0; i < sizeof(again) / sizeof(again[0]); i++)
		assert_true(curl_req_transient(again[i]));
	for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
		assert_false(curl_req_transient(final[i]));
	assert_true(curl_req_transient_status(500));
	assert_true(curl_req_transient_status(502));
	assert_true(curl_req_transient_status(503));
	assert_true(curl_req_transient_status(429));
	assert_false(curl_req_transient_status(404));
	assert_false(curl_req_transient_status(403));
	assert_false(curl_req_transient_status(416));
	assert_false(curl_req_transient_status(200));
}

static void test_verdict(void **state)
{
	(void)state;
	char out[100];
	struct curl_io range = { .has_range = true, .range_off = 4096, .range_len = sizeof(out),
				 .out = out, .out_cap = sizeof(out) };
	struct curl_req http = { .protocols = "http,https", .http = true, .io = &range };
	struct curl_req sftp = { .protocols = "sftp", .io = &range };
	struct curl_xfer x = { .rq = &http, .status = 206, .received = sizeof(out) };
	assert_int_equal(curl_xfer_verdict(&x), CURL_DONE);
	x.received = 60; /* the object ends inside the range */
	assert_int_equal(curl_xfer_verdict(&x), CURL_FAIL);
	x.status = 503;
	assert_int_equal(curl_xfer_verdict(&x), CURL_RETRY);
	x.status = 404;
	assert_int_equal(curl_xfer_verdict(&x), CURL_FAIL);
	x = (struct curl_xfer){ .rq = &http, .e = CURLE_RECV_ERROR, .received = 60 };
	assert_int_equal(curl_xfer_verdict(&x), CURL_RETRY);
	x = (struct curl_xfer){ .rq = &http, .status = 206, .overflow = true };
	assert_int_equal(curl_xfer_verdict(&x), CURL_FAIL);
	/* SFTP has no status: only curl's code and the bytes count */
	x = (struct curl_xfer){ .rq = &sftp, .received = sizeof(out) };
	assert_int_equal(curl_xfer_verdict(&x), CURL_DONE);
	x.received = 0;
	assert_int_equal(curl_xfer_verdict(&x), CURL_FAIL);
	x.e = CURLE_SSH;
	assert_int_equal(curl_xfer_verdict(&x), CURL_RETRY);
	x.e = CURLE_REMOTE_FILE_NOT_FOUND;
	assert_int_equal(curl_xfer_verdict(&x), CURL_FAIL);
	/* without a range, any number of bytes is the answer */
	struct buf sink = { 0 };
	struct curl_io whole = { .out_buf = &sink };
	struct curl_req get = { .protocols = "sftp", .io = &whole };
	x = (struct curl_xfer){ .rq = &get, .received = 7 };
	assert_int_equal(curl_xfer_verdict(&x), CURL_DONE);
}

struct script {
	const int *verdicts;
	unsigned calls;
};

static int scripted(void *opaque)
{
	struct script *s = opaque;
	return s->verdicts[s->calls++];
}

static void test_retry(void **state)
{
	(void)state;
	static const int owner;
	const struct curl_retry p = { .retries = 2, .first_ms = 1, .max_ms = 2 };
	unsigned tries;
	static const int ok_third[] = { CURL_RETRY, CURL_RETRY, CURL_DONE };
	struct script s = { ok_third, 0 };
	assert_int_equal(curl_req_retry(&owner, "GET x", &p, scripted, &s, &tries), CURL_DONE);
	assert_int_equal(tries, 3);
	static const int always[] = { CURL_RETRY, CURL_RETRY, CURL_RETRY, CURL_DONE };
	s = (struct script){ always, 0 };
	assert_int_equal(curl_req_retry(&owner, "GET x", &p, scripted, &s, &tries), CURL_RETRY);
	assert_int_equal(tries, 3); /* the first and two retries */
	static const int fails[] = { CURL_RETRY, CURL_FAIL, CURL_DONE };
	s = (struct script){ fails, 0 };
	assert_int_equal(curl_req_retry(&owner, "GET x", &p, scripted, &s, &tries), CURL_FAIL);
	assert_int_equal(tries, 2);
	static const int setup[] = { -ENOMEM, CURL_DONE };
	s = (struct script){ setup, 0 };
	curl_req_clear_error();
	assert_int_equal(curl_req_retry(&owner, "GET x", &p, scripted, &s, &tries), -ENOMEM);
	assert_int_equal(tries, 1);
	assert_string_equal(curl_req_error(&owner, -ENOMEM), "GET x: cannot set up the request");
}

static void test_last_error(void **state)
{
	(void)state;
	static const int a, b;
	curl_req_clear_error();
	assert_null(curl_req_error(&a, -EIO));
	assert_int_equal(curl_req_fail(&a, -EIO, "GET %s: short read\r\nmore", "k"), -EIO);
	assert_string_equal(curl_req_error(&a, -EIO), "GET k: short read");
	assert_null(curl_req_error(&a, -ENOENT)); /* another rc */
	assert_null(curl_req_error(&b, -EIO)); /* another backend */
	/* the first failure of an operation is its cause */
	assert_int_equal(curl_req_fail(&b, -EACCES, "later"), -EACCES);
	assert_string_equal(curl_req_error(&a, -EIO), "GET k: short read");
	assert_null(curl_req_error(&b, -EACCES));
	curl_req_clear_error();
	assert_null(curl_req_error(&a, -EIO));
	curl_req_fail(&b, -EACCES, "denied");
	assert_string_equal(curl_req_error(&b, -EACCES), "denied");
}

static void test_url_encode(void **state)
{
	(void)state;
	struct buf b = { 0 };
	assert_int_equal(curl_req_url_encode("data/ab/x y+z~._-", true, &b), 0);
	assert_int_equal(buf_append(&b, "", 1), 0);
	assert_string_equal((char *)b.p, "data/ab/x%20y%2Bz~._-");
	b.len = 0;
	assert_int_equal(curl_req_url_encode("a/b=c&d", false, &b), 0);
	assert_int_equal(buf_append(&b, "", 1), 0);
	assert_string_equal((char *)b.p, "a%2Fb%3Dc%26d");
	buf_free(&b);
	char *s = curl_req_printf("%s:%u", "host", 22u);
	assert_string_equal(s, "host:22");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_curl_errno),
		cmocka_unit_test(test_status_errno),
		cmocka_unit_test(test_transient),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_last_error),
		cmocka_unit_test(test_url_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
