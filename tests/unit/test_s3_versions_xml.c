/* Unit tests for the S3 answers check's overwrite scan reads
 * (repo/transport/s3_xml.c): ListObjectVersions (versions and delete
 * markers with IsLatest, the markers of the next page) and a bucket's
 * versioning status; anything else is -EBADMSG. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "repo/transport/s3.h"

struct seen {
	char line[8][200];
	size_t n;
};

static int record(void *opaque, const struct s3_version *v)
{
	struct seen *s = opaque;
	if (s->n == 8)
		return -E2BIG;
	snprintf(s->line[s->n++], sizeof(s->line[0]), "%s %s %s%s", v->key, v->version_id,
		 v->latest ? "latest" : "older", v->marker ? " marker" : "");
	return 0;
}

static const char page1[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	"<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>b</Name><Prefix>r/data/</Prefix><IsTruncated>true</IsTruncated>"
	"<NextKeyMarker>r/data/ab/ab01</NextKeyMarker>"
	"<NextVersionIdMarker>v+2/x</NextVersionIdMarker>"
	"<Version><Key>r/data/aa/aa00</Key><VersionId>v3</VersionId><IsLatest>true</IsLatest></Version>"
	"<Version><Key>r/data/aa/aa00</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest></Version>"
	"<DeleteMarker><Key>r/data/ab/ab01</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest></DeleteMarker>"
	"</ListVersionsResult>";

static void test_versions_page(void **state)
{
	(void)state;
	struct seen s = { 0 };
	struct s3_version_page p;
	assert_int_equal(s3_xml_versions(page1, sizeof(page1) - 1, record, &s, &p), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.line[0], "r/data/aa/aa00 v3 latest");
	assert_string_equal(s.line[1], "r/data/aa/aa00 v1 older");
	assert_string_equal(s.line[2], "r/data/ab/ab01 m1 latest marker");
	assert_true(p.truncated);
	assert_string_equal(p.next_key, "r/data/ab/ab01");
	assert_string_equal(p.next_version, "v+2/x");
	s3_version_page_free(&p);
	assert_null(p.next_key);
}

static void test_versions_last_page(void **state)
{
	(void)state;
	static const char last[] = "<ListVersionsResult><IsTruncated>false</IsTruncated>"
				   "<NextKeyMarker>ignored</NextKeyMarker></ListVersionsResult>";
	struct seen s = { 0 };
	struct s3_version_page p;
	assert_int_equal(s3_xml_versions(last, sizeof(last) - 1, record, &s, &p), 0);
	assert_int_equal(s.n, 0);
	assert_false(p.truncated);
	assert_null(p.next_key);
}

static void test_versions_refused(void **state)
{
	(void)state;
	static const char other[] = "<ListBucketResult></ListBucketResult>";
	static const char nokey[] = "<ListVersionsResult><Version><VersionId>v</VersionId>"
				    "</Version></ListVersionsResult>";
	struct seen s = { 0 };
	struct s3_version_page p;
	assert_int_equal(s3_xml_versions(other, sizeof(other) - 1, record, &s, &p), -EBADMSG);
	assert_int_equal(s3_xml_versions(nokey, sizeof(nokey) - 1, record, &s, &p), -EBADMSG);
	assert_int_equal(s3_xml_versions("junk", 4, record, &s, &p), -EBADMSG);
	/* the callback's error stops the walk and is returned */
	s.n = 8;
	assert_int_equal(s3_xml_versions(page1, sizeof(page1) - 1, record, &s, &p), -E2BIG);
}

static void test_versioning_status(void **state)
{
	(void)state;
	static const char on[] = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/"
				 "2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>";
	static const char never[] = "<VersioningConfiguration/>";
	char st[32];
	assert_int_equal(s3_xml_versioning(on, sizeof(on) - 1, st, sizeof(st)), 0);
	assert_string_equal(st, "Enabled");
	assert_int_equal(s3_xml_versioning(never, sizeof(never) - 1, st, sizeof(st)), 0);
	assert_string_equal(st, "");
	assert_int_equal(s3_xml_versioning("<Error/>", 8, st, sizeof(st)), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_versions_page),
		cmocka_unit_test(test_versions_last_page),
		cmocka_unit_test(test_versions_refused),
		cmocka_unit_test(test_versioning_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
