/* The S3 responses cairn parses (repo/transport/s3_xml.c): errors,
 * ListObjectsV2, CreateMultipartUpload, GetObjectLockConfiguration,
 * ListObjectVersions, GetBucketVersioning and DeleteObjects results.
 * Every parser sees every input. */
#include <errno.h>
#include <stdlib.h>

#include "fuzz_helpers.h"
#include "repo/transport/s3.h"

static int on_key(void *opaque, const char *key, uint64_t size)
{
	(void)opaque;
	(void)size;
	return strlen(key) > 1000 ? -EBADMSG : 0;
}

static int on_version(void *opaque, const struct s3_version *v)
{
	(void)opaque;
	return strlen(v->key) + strlen(v->version_id) > 2000 ? -EBADMSG : 0;
}

static int on_delete_error(void *opaque, const char *key, const char *code, const char *msg)
{
	(void)opaque;
	return strlen(key) + strlen(code) + strlen(msg) > 3000 ? -EBADMSG : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char code[64], msg[256];
	s3_xml_error(data, size, code, sizeof(code), msg, sizeof(msg));
	char *token = NULL;
	size_t keys;
	if (s3_xml_list(data, size, on_key, NULL, &token, &keys) == 0)
		free(token);
	char *upload = NULL;
	if (s3_xml_upload_id(data, size, &upload) == 0)
		free(upload);
	bool enabled;
	s3_xml_object_lock(data, size, &enabled);
	struct s3_version_page page = { 0 };
	s3_xml_versions(data, size, on_version, NULL, &page);
	s3_version_page_free(&page);
	char status[32];
	s3_xml_versioning(data, size, status, sizeof(status));
	s3_xml_delete_errors(data, size, on_delete_error, NULL);
	return 0;
}
