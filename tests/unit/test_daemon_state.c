/* Unit tests for daemon/state.c and daemon/metrics.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/metrics.h"
#include "daemon/state.h"
#include "helpers.h"

static int setup(void **state)
{
	char *dir = strdup("/tmp/cairn-test-state.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	rm_rf(*state);
	free(*state);
	return 0;
}

static struct cairn_run_record run(const char *job, const char *vm, bool ok, int64_t end_s)
{
	struct cairn_run_record r = { .start_ns = (end_s - 30) * 1000000000LL,
				      .end_ns = end_s * 1000000000LL, .ok = ok,
				      .bytes_read = 1000, .bytes_stored = 250 };
	snprintf(r.job, sizeof(r.job), "%s", job);
	snprintf(r.vm, sizeof(r.vm), "%s", vm);
	snprintf(r.message, sizeof(r.message), "%s", ok ? "ok" : "disk vda: cannot read");
	return r;
}

static void test_runs_round_trip(void **state)
{
	const char *dir = *state;
	char err[256] = "";
	/* names that are not safe file names must still be stored apart */
	struct cairn_run_record a = run("nightly", "web/01", true, 1700000000);
	struct cairn_run_record b = run("nightly", "..", false, 1700000100);
	struct cairn_run_record c = run("hourly", "db \"main\"", true, 1700000200);
	a.next_run_ns = 1700086400LL * 1000000000LL;
	snprintf(a.snapshot, sizeof(a.snapshot), "%064d", 7);
	assert_int_equal(cairn_state_record_run(dir, &a, err, sizeof(err)), 0);
	assert_int_equal(cairn_state_record_run(dir, &b, err, sizeof(err)), 0);
	assert_int_equal(cairn_state_record_run(dir, &c, err, sizeof(err)), 0);
	/* a newer run of the same job and VM replaces the record */
	a.bytes_stored = 999;
	a.anomaly = true;
	assert_int_equal(cairn_state_record_run(dir, &a, err, sizeof(err)), 0);
	struct cairn_run_record *v;
	size_t n;
	assert_int_equal(cairn_state_load_runs(dir, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].job, "hourly");
	assert_string_equal(v[0].vm, "db \"main\"");
	assert_string_equal(v[1].vm, "..");
	assert_false(v[1].ok);
	assert_string_equal(v[1].message, "disk vda: cannot read");
	assert_string_equal(v[2].vm, "web/01");
	assert_int_equal(v[2].bytes_stored, 999);
	assert_int_equal(v[2].next_run_ns, 1700086400LL * 1000000000LL);
	assert_string_equal(v[2].snapshot, a.snapshot);
	assert_true(v[2].anomaly);
	assert_false(v[0].anomaly);
	free(v);
}

static void test_empty_state(void **state)
{
	char err[256] = "";
	struct cairn_run_record *v = NULL;
	size_t n = 5;
	assert_int_equal(cairn_state_load_runs(*state, &v, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	free(v);
	int64_t last = 1;
	assert_int_equal(cairn_state_job_last(*state, "never-ran", &last, err, sizeof(err)), 0);
	assert_int_equal(last, 0);
}

static void test_job_last(void **state)
{
	char err[256] = "";
	int64_t last;
	assert_int_equal(cairn_state_mark_job(*state, "nightly", 1700000000123456789LL, err,
					      sizeof(err)), 0);
	assert_int_equal(cairn_state_mark_job(*state, "other job", 5, err, sizeof(err)), 0);
	assert_int_equal(cairn_state_job_last(*state, "nightly", &last, err, sizeof(err)), 0);
	assert_int_equal(last, 1700000000123456789LL);
	assert_int_equal(cairn_state_job_last(*state, "other job", &last, err, sizeof(err)), 0);
	assert_int_equal(last, 5);
	/* a damaged file is an error, not "never ran" (which would rerun it) */
	char path[512];
	snprintf(path, sizeof(path), "%s/jobs/nightly.json", (char *)*state);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{not json", f);
	fclose(f);
	assert_int_equal(cairn_state_job_last(*state, "nightly", &last, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "damaged"));
}

static void test_metrics(void **state)
{
	(void)state;
	struct cairn_run_record r[2] = { run("nightly", "web\"1", true, 1700000000),
					 run("nightly", "db", false, 1700000100) };
	r[0].next_run_ns = 1700086400LL * 1000000000LL;
	r[0].anomaly = true;
	char *text;
	assert_int_equal(cairn_metrics_render(r, 2, &text), 0);
	assert_non_null(strstr(text, "# TYPE cairn_backup_last_success gauge\n"));
	assert_non_null(strstr(text, "cairn_backup_last_success{job=\"nightly\",vm=\"web\\\"1\"} 1\n"));
	assert_non_null(strstr(text, "cairn_backup_last_success{job=\"nightly\",vm=\"db\"} 0\n"));
	assert_non_null(strstr(text, "cairn_backup_duration_seconds{job=\"nightly\",vm=\"db\"} 30\n"));
	assert_non_null(strstr(text, "cairn_backup_bytes_stored{job=\"nightly\",vm=\"db\"} 250\n"));
	assert_non_null(strstr(text, "cairn_backup_last_run_timestamp_seconds{job=\"nightly\",vm=\"db\"} 1700000100\n"));
	/* only runs with a known next run get that series */
	assert_non_null(strstr(text, "cairn_backup_next_run_timestamp_seconds{job=\"nightly\",vm=\"web\\\"1\"} 1700086400\n"));
	assert_null(strstr(text, "cairn_backup_next_run_timestamp_seconds{job=\"nightly\",vm=\"db\"}"));
	assert_non_null(strstr(text, "cairn_backup_anomaly{job=\"nightly\",vm=\"web\\\"1\"} 1\n"));
	assert_non_null(strstr(text, "cairn_backup_anomaly{job=\"nightly\",vm=\"db\"} 0\n"));
	free(text);
}

static void test_metrics_file(void **state)
{
	const char *dir = *state;
	char err[256] = "", path[512];
	struct cairn_run_record r = run("j", "v", true, 1700000000);
	assert_int_equal(cairn_metrics_write(dir, &r, 1, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/cairn.prom", dir);
	assert_int_equal(access(path, R_OK), 0);
	assert_int_equal(cairn_metrics_write("/nonexistent/dir", &r, 1, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/dir"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runs_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_last, setup, teardown),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test_setup_teardown(test_metrics_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
