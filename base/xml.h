/* Reading XML that libvirt or a repository hands us (domain definitions,
 * checkpoint descriptions): parsed without network access and without
 * libxml2 printing to stderr, and asked with XPath. */
#ifndef CAIRN_XML_H
#define CAIRN_XML_H

#include <stdbool.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

/* The parsed document, or NULL when TEXT (NULL allowed) does not parse.
 * EXTRA_OPTIONS are more XML_PARSE_* flags (e.g. NOBLANKS for a rewrite). */
xmlDocPtr xml_parse(const char *text, int extra_options);

/* What a string(...) expression yields, as a new string; NULL when it is
 * empty or does not evaluate. */
char *xml_xpath_string(xmlXPathContextPtr ctx, const char *expr);

/* Whether a string(...) expression yields exactly VALUE. */
bool xml_xpath_is(xmlXPathContextPtr ctx, const char *expr, const char *value);

/* Whether a node-set expression over DOC selects at least one node. */
bool xml_xpath_any(xmlDocPtr doc, const char *expr);

#endif
