/* SFTP repositories: the URL (sftp_url.c) behind repo/transport/backend_sftp.c.
 * Internal to repo/; not part of the public contract.
 *
 * URLs follow restic's convention:
 *
 *   sftp:[USER@]HOST:/ABSOLUTE/PATH
 *   sftp:[USER@]HOST:RELATIVE/PATH          (to the login directory)
 *   sftp://[USER@]HOST[:PORT]//ABSOLUTE/PATH
 *   sftp://[USER@]HOST[:PORT]/RELATIVE/PATH
 *
 * HOST may be a bracketed IPv6 address. A password in the URL is refused:
 * cairn logs in with a key only. */
#ifndef CAIRN_SFTP_H
#define CAIRN_SFTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sftp_url {
	char *user; /* NULL: not given (the local login name is used) */
	char *host; /* without brackets */
	unsigned port; /* 22 unless given */
	/* "/a/b" (absolute), "a/b" (relative to the login directory) or "/"; no
	 * empty, '.' or '..' part, no trailing '/', and nothing an SFTP quote
	 * command would split (whitespace, quotes, backslashes) */
	char *path;
};

/* Parses url strictly. 0, -EINVAL with a one-line reason naming url and
 * the expected forms in err, or -ENOMEM. u is zeroed first and needs
 * sftp_url_free() only after success. */
int sftp_url_parse(const char *url, struct sftp_url *u, char *err, size_t errlen);
void sftp_url_free(struct sftp_url *u);

/* Listings (backend_sftp.c), the server's untrusted text. One line of
 * `ls -l` as OpenSSH's sftp-server writes it: MODE LINKS OWNER GROUP SIZE
 * MONTH DAY TIME|YEAR NAME; cuts line in place. *mtime (may be NULL) from
 * sftp_entry_time(). */
bool sftp_parse_entry(char *line, char *type, uint64_t *size, const char **name,
		      int64_t *mtime);
/* MONTH DAY TIME|YEAR as UTC Unix seconds (a TIME in the twelve months
 * before now); 0 when the fields do not parse. */
int64_t sftp_entry_time(const char *mon, const char *day, const char *t, int64_t now);

#endif
