#include <string.h>

#include "xml.h"

xmlDocPtr xml_parse(const char *text, int extra_options)
{
	if (!text)
		return NULL;
	return xmlReadMemory(text, (int)strlen(text), "input.xml", NULL,
			     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
				     extra_options);
}

char *xml_xpath_string(xmlXPathContextPtr ctx, const char *expr)
{
	xmlXPathObjectPtr res = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	char *out = NULL;
	if (res && res->type == XPATH_STRING && res->stringval && res->stringval[0])
		out = strdup((const char *)res->stringval);
	xmlXPathFreeObject(res);
	return out;
}

bool xml_xpath_is(xmlXPathContextPtr ctx, const char *expr, const char *value)
{
	char *v = xml_xpath_string(ctx, expr);
	bool is = v && !strcmp(v, value);
	free(v);
	return is;
}

bool xml_xpath_any(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
	xmlXPathObjectPtr res = ctx ? xmlXPathEvalExpression((const xmlChar *)expr, ctx) : NULL;
	bool any = res && res->nodesetval && res->nodesetval->nodeNr > 0;
	xmlXPathFreeObject(res);
	xmlXPathFreeContext(ctx);
	return any;
}
