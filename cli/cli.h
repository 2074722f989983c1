/* cli: the only place that parses arguments, prompts, prints and exits. */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>

#include "repo/repo.h"

/* Exit codes (README "Exit codes"). Only the cmd_* entry points return
 * them, through cli_exit(); everything else in cli/ returns 0 (or a count)
 * or a negative errno with its message already printed: -EINVAL a usage
 * error, -EBADMSG damaged data, -EKEYREJECTED a wrong password, -EBUSY
 * locked, -EINTR interrupted, any other errno a plain error. */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_DAMAGED = 3,
	EXIT_PASSWORD = 4,
	EXIT_LOCKED = 5,
	EXIT_INTERRUPTED = 130,
};

struct cli {
	bool json;
	bool quiet;
	const char *password_file;
	const char *prog;
	struct cairn_backend_opts backend; /* --connections, --limit-*, --sftp-* */
};

/* Options every command accepts; commands append theirs (with other
 * letters than J, q, P, h). */
#define CLI_OPT_PASSWORD 256 /* refused: listed so it is no abbreviation */
/* how the repository's backend transfers (S3): struct cli's backend */
#define CLI_OPT_CONNECTIONS 257
#define CLI_OPT_LIMIT_UPLOAD 258
#define CLI_OPT_LIMIT_DOWNLOAD 259
#define CLI_OPT_SFTP_IDENTITY 260
#define CLI_OPT_SFTP_KNOWN_HOSTS 261
/* a host key file instead of the password (docs/design.md "Host keys") */
#define CLI_OPT_KEY_FILE 262
#define CLI_COMMON_OPTIONS                                                     \
	{ "json", no_argument, NULL, 'J' },                                    \
	{ "quiet", no_argument, NULL, 'q' },                                   \
	{ "password-file", required_argument, NULL, 'P' },                     \
	{ "password", required_argument, NULL, CLI_OPT_PASSWORD },             \
	{ "connections", required_argument, NULL, CLI_OPT_CONNECTIONS },       \
	{ "limit-upload", required_argument, NULL, CLI_OPT_LIMIT_UPLOAD },     \
	{ "limit-download", required_argument, NULL, CLI_OPT_LIMIT_DOWNLOAD }, \
	{ "sftp-identity", required_argument, NULL, CLI_OPT_SFTP_IDENTITY },   \
	{ "sftp-known-hosts", required_argument, NULL, CLI_OPT_SFTP_KNOWN_HOSTS }, \
	{ "key-file", required_argument, NULL, CLI_OPT_KEY_FILE },             \
	{ "help", no_argument, NULL, 'h' }
#define CLI_COMMON_SHORT "qh"

/* Handles a common option; false when c is not one. */
bool cli_common_option(struct cli *c, int opt, const char *arg);

/* Print one line; return -EIO (an error) and -EINVAL (a usage error). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints msg (or rc's text) as the one line of a failed library call and
 * returns the errno that carries its exit code (-EIO for any that has no
 * own code, so that a library's -EINVAL is no usage error). */
int cli_fail(int rc, const char *msg);
/* The one mapping of cli's return convention to exit codes: 0 or a count
 * is EXIT_OK, a negative errno its exit code (see above). */
int cli_exit(int rc);

/* Reads the password: --password-file, CAIRN_PASSWORD, or a TTY prompt.
 * Returns NULL (with a message printed) when none is available. */
char *cli_password(const struct cli *c, bool confirm);
char *cli_new_password(void);
/* Opens the repository, prompting for a password only when needed; with
 * a host key file (--key-file, or CAIRN_KEY_FILE when no password is given
 * by --password-file or CAIRN_PASSWORD) instead of a password. */
int cli_open_repo(const struct cli *c, const char *url, struct cairn_repo **out);
/* As cli_open_repo; also hands the password it used (or NULL) to *password,
 * for commands that pass it on to a child (serve's nbdkit plugin). */
int cli_open_repo_keep(const struct cli *c, const char *url, struct cairn_repo **out,
		       char **password);
/* The host key file cli_open_repo opens with, or NULL for a password. */
const char *cli_key_file(const struct cli *c);
/* 0 when a password opened r; the host-key refusal printed otherwise, for
 * commands that read disk data or remove anything (before they start). */
int cli_need_full(struct cairn_repo *r);
enum cli_lock { CLI_SHARED, CLI_EXCLUSIVE, CLI_GC };
/* cli_open_repo, then takes the repository lock. */
int cli_open_locked(const struct cli *c, const char *url, enum cli_lock lock,
		    struct cairn_repo **out);
/* Prints the repository's warnings on stderr (then forgets them). */
void cli_print_warnings(struct cairn_repo *r);
/* The warnings not yet printed, as a JSON array of lines (for --json). */
json_t *cli_warnings_json(const struct cairn_repo *r);
/* cairn_snapshot_find for a command: on failure the warnings and the one
 * line (a damaged manifest refusing "latest" among them) are printed and
 * the exit-code errno returned. On success the warnings stay for the
 * command to print (and put into its --json). */
int cli_find_snapshot(struct cairn_repo *r, const char *spec, const char *name,
		      struct cairn_snapshot **out);
/* The same, loading the index at the same time (cairn_snapshot_find_indexed). */
int cli_find_snapshot_indexed(struct cairn_repo *r, const char *spec, const char *name,
			      struct cairn_snapshot **out);

/* Progress on stderr when it is a TTY (and not --quiet/--json). */
struct progress {
	bool on;
	const char *what;
	int64_t start_ns, last_ns;
};
void progress_init(struct progress *p, const struct cli *c, const char *what);
void progress_update(void *opaque, uint64_t done, uint64_t total);
void progress_done(struct progress *p);

void json_print(json_t *j); /* prints and frees */

/* SIGINT/SIGTERM set the flag so long operations stop cleanly (lock
 * removed, temporary files deleted); a second signal kills. */
extern volatile int cli_interrupted;
void cli_catch_signals(void);
void id_hex(const cairn_id *id, char out[65]);

int cmd_init(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_protect(int argc, char **argv);
int cmd_unprotect(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_replicate(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_instant(int argc, char **argv);



/* Parses options with getopt_long (options may come before or after
 * positional arguments): common ones into c, the rest through own, which
 * returns 0 to go on or a negative errno to stop. Returns 0 when the
 * command should run, with the *nargs positional arguments moved to
 * argv[1..]; 1 when it is done (usage printed for --help); else a
 * negative errno. */
typedef int (*cli_option_fn)(void *ctx, int opt, const char *arg);
int cli_parse(struct cli *c, int argc, char **argv, const struct option *opts,
	      const char *shortopts, cli_option_fn own, void *ctx,
	      const char *usage, int *nargs);
#endif
