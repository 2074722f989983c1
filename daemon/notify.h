/* Telling the admin: a JSON summary POSTed to a webhook (libcurl), retried
 * with backoff on connection errors, timeouts and 5xx/429 answers, and an
 * email (or any) command that gets the summary on its standard input.
 * Returns 0 or a negative errno with a one-line reason in err (the URL is
 * named, never credentials in it: userinfo is cut from messages). */
#ifndef CAIRN_DAEMON_NOTIFY_H
#define CAIRN_DAEMON_NOTIFY_H

#include <stddef.h>

struct cairn_notify_opts {
	unsigned attempts; /* 0: 4 */
	unsigned first_delay_ms; /* doubled after each failed attempt; 0: 1000 */
	unsigned timeout_s; /* per attempt; 0: 20 */
};

int cairn_notify_webhook(const char *url, const char *json, const struct cairn_notify_opts *o,
			 char *err, size_t errlen);
/* Runs `sh -c command` with the text on its stdin; 0 when it exits 0. */
int cairn_notify_command(const char *command, const char *text, char *err, size_t errlen);

#endif
