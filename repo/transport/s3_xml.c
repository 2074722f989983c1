/* The S3 response bodies cairn reads: error documents, ListObjectsV2
 * pages and the id of a new multipart upload. Elements are matched by
 * local name: servers differ in whether they use the S3 namespace. */
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>

#include "s3.h"

static void xml_docp(xmlDoc **d)
{
	if (*d)
		xmlFreeDoc(*d);
}

static xmlDoc *parse(const void *body, size_t len)
{
	if (!body || !len || len > INT32_MAX)
		return NULL;
	return xmlReadMemory(body, (int)len, "s3.xml", NULL,
			     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static xmlNode *child(const xmlNode *n, const char *name)
{
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (is(c, name))
			return c;
	return NULL;
}

/* The text of element name under n, copied into out; "" when absent. */
static void text_of(const xmlNode *n, const char *name, char *out, size_t len)
{
	xmlNode *c = child(n, name);
	xmlChar *t = c ? xmlNodeGetContent(c) : NULL;
	snprintf(out, len, "%s", t ? (const char *)t : "");
	xmlFree(t);
}

int s3_xml_error(const void *body, size_t len, char *code, size_t codelen, char *msg,
		 size_t msglen)
{
	_cleanup_(xml_docp) xmlDoc *d = parse(body, len);
	xmlNode *root = d ? xmlDocGetRootElement(d) : NULL;
	if (!root || !is(root, "Error"))
		return -ENOENT;
	text_of(root, "Code", code, codelen);
	text_of(root, "Message", msg, msglen);
	/* one line, always */
	msg[strcspn(msg, "\r\n")] = '\0';
	return 0;
}

int s3_xml_list(const void *body, size_t len, s3_key_fn fn, void *opaque, char **token,
		size_t *keys)
{
	_cleanup_(xml_docp) xmlDoc *d = parse(body, len);
	xmlNode *root = d ? xmlDocGetRootElement(d) : NULL;
	*token = NULL;
	*keys = 0;
	if (!root || !is(root, "ListBucketResult"))
		return -EBADMSG;
	for (xmlNode *c = root->children; c; c = c->next) {
		if (!is(c, "Contents"))
			continue;
		xmlNode *k = child(c, "Key");
		xmlChar *key = k ? xmlNodeGetContent(k) : NULL;
		char size[32];
		text_of(c, "Size", size, sizeof(size));
		char *end;
		uint64_t n = strtoull(size, &end, 10);
		int rc = key && *size && !*end ? fn(opaque, (const char *)key, n) : -EBADMSG;
		xmlFree(key);
		if (rc)
			return rc;
		(*keys)++;
	}
	char truncated[8];
	text_of(root, "IsTruncated", truncated, sizeof(truncated));
	if (strcmp(truncated, "true"))
		return 0;
	xmlNode *t = child(root, "NextContinuationToken");
	xmlChar *tok = t ? xmlNodeGetContent(t) : NULL;
	if (!tok || !*tok) {
		xmlFree(tok);
		return -EBADMSG; /* truncated with no way on: never loop */
	}
	*token = strdup((const char *)tok);
	xmlFree(tok);
	return *token ? 0 : -ENOMEM;
}

int s3_xml_upload_id(const void *body, size_t len, char **id)
{
	_cleanup_(xml_docp) xmlDoc *d = parse(body, len);
	xmlNode *root = d ? xmlDocGetRootElement(d) : NULL;
	xmlNode *u = root && is(root, "InitiateMultipartUploadResult") ? child(root, "UploadId")
								       : NULL;
	xmlChar *t = u ? xmlNodeGetContent(u) : NULL;
	*id = t && *t ? strdup((const char *)t) : NULL;
	int rc = !t || !*t ? -EBADMSG : *id ? 0 : -ENOMEM;
	xmlFree(t);
	return rc;
}

int s3_xml_object_lock(const void *body, size_t len, bool *enabled)
{
	_cleanup_(xml_docp) xmlDoc *d = parse(body, len);
	xmlNode *root = d ? xmlDocGetRootElement(d) : NULL;
	*enabled = false;
	if (!root || !is(root, "ObjectLockConfiguration"))
		return -EBADMSG;
	char v[32];
	text_of(root, "ObjectLockEnabled", v, sizeof(v));
	*enabled = !strcmp(v, "Enabled");
	return 0;
}

/* A copy of element name's text under n (malloc'ed), or NULL when absent
 * or empty. */
static int dup_text(const xmlNode *n, const char *name, char **out)
{
	xmlNode *c = child(n, name);
	xmlChar *t = c ? xmlNodeGetContent(c) : NULL;
	*out = t && *t ? strdup((const char *)t) : NULL;
	int rc = t && *t && !*out ? -ENOMEM : 0;
	xmlFree(t);
	return rc;
}

int s3_xml_versions(const void *body, size_t len, s3_version_fn fn, void *opaque,
		    struct s3_version_page *page)
{
	_cleanup_(xml_docp) xmlDoc *d = parse(body, len);
	xmlNode *root = d ? xmlDocGetRootElement(d) : NULL;
	memset(page, 0, sizeof(*page));
	if (!root || !is(root, "ListVersionsResult"))
		return -EBADMSG;
	for (xmlNode *c = root->children; c; c = c->next) {
		if (!is(c, "Version") && !is(c, "DeleteMarker"))
			continue;
		char key[1100], vid[256], latest[8];
		text_of(c, "Key", key, sizeof(key));
		text_of(c, "VersionId", vid, sizeof(vid));
		text_of(c, "IsLatest", latest, sizeof(latest));
		if (!*key || !*vid)
			return -EBADMSG;
		struct s3_version v = { .key = key, .version_id = vid,
					.latest = !strcmp(latest, "true"),
					.marker = is(c, "DeleteMarker") };
		int rc = fn(opaque, &v);
		if (rc)
			return rc;
	}
	char t[8];
	text_of(root, "IsTruncated", t, sizeof(t));
	page->truncated = !strcmp(t, "true");
	if (!page->truncated)
		return 0;
	int rc = dup_text(root, "NextKeyMarker", &page->next_key);
	if (rc == 0)
		rc = dup_text(root, "NextVersionIdMarker", &page->next_version);
	if (rc < 0)
		s3_version_page_free(page);
	return rc;
}

void s3_version_page_free(struct s3_version_page *p)
{
	free(p->next_key);
	free(p->next_version);
	memset(p, 0, sizeof(*p));
}

int s3_xml_versioning(const void *body, size_t len, char *status, size_t statuslen)
{
	_cleanup_(xml_docp) xmlDoc *d = parse(body, len);
	xmlNode *root = d ? xmlDocGetRootElement(d) : NULL;
	if (!root || !is(root, "VersioningConfiguration"))
		return -EBADMSG;
	text_of(root, "Status", status, statuslen);
	return 0;
}

int s3_xml_delete_errors(const void *body, size_t len, s3_delete_error_fn fn, void *opaque)
{
	if (!len)
		return 0; /* some stores answer a quiet delete that went well with nothing */
	_cleanup_(xml_docp) xmlDoc *d = parse(body, len);
	xmlNode *root = d ? xmlDocGetRootElement(d) : NULL;
	if (!root || !is(root, "DeleteResult"))
		return -EBADMSG;
	for (xmlNode *c = root->children; c; c = c->next) {
		if (!is(c, "Error"))
			continue;
		char key[1100], code[64], msg[256];
		text_of(c, "Key", key, sizeof(key));
		text_of(c, "Code", code, sizeof(code));
		text_of(c, "Message", msg, sizeof(msg));
		msg[strcspn(msg, "\r\n")] = '\0';
		int rc = fn(opaque, key, code, msg);
		if (rc)
			return rc;
	}
	return 0;
}
