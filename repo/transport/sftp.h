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

#include <stddef.h>

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

#endif
