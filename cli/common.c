/* Shared command-line plumbing: errors, passwords, opening, progress. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <termios.h>

#include "cli.h"

bool cli_common_option(struct cli *c, int opt, const char *arg)
{
	switch (opt) {
	case 'J': c->json = true; return true;
	case 'q': c->quiet = true; return true;
	case 'P': c->password_file = arg; return true;
	case CLI_OPT_SFTP_IDENTITY: c->backend.identity_file = arg; return true;
	case CLI_OPT_SFTP_KNOWN_HOSTS: c->backend.known_hosts_file = arg; return true;
	case CLI_OPT_KEY_FILE: c->backend.key_file = arg; return true;
	default: return false;
	}
}

/* --connections N, --limit-upload/--limit-download RATE (bytes/s, K/M/G
 * suffixes). */
static int transfer_option(struct cli *c, int opt, const char *arg)
{
	uint64_t v;
	if (opt == CLI_OPT_CONNECTIONS) {
		char *end;
		long n = strtol(arg, &end, 10);
		if (*end || end == arg || n < 1 || n > 64)
			return cli_usage("--connections %s: give 1..64", arg);
		c->backend.connections = (unsigned)n;
		return 0;
	}
	if (parse_size(arg, &v) < 0 || v == 0)
		return cli_usage("%s %s: give bytes per second, e.g. 10M",
				 opt == CLI_OPT_LIMIT_UPLOAD ? "--limit-upload" : "--limit-download", arg);
	if (opt == CLI_OPT_LIMIT_UPLOAD)
		c->backend.limit_upload = v;
	else
		c->backend.limit_download = v;
	return 0;
}

static void vprint(const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	one_line(line);
	fprintf(stderr, "cairn: %s%s\n", prefix, line);
}

int cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint("", fmt, ap);
	va_end(ap);
	return -EIO;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint("", fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint("warning: ", fmt, ap);
	va_end(ap);
}

int cli_fail(int rc, const char *msg)
{
	char line[1024];
	snprintf(line, sizeof(line), "%s", msg && *msg ? msg : strerror(-rc));
	one_line(line);
	fprintf(stderr, "cairn: %s\n", line);
	switch (-rc) {
	case EBADMSG:
	case EKEYREJECTED:
	case EBUSY:
	case EINTR: return rc;
	default: return -EIO; /* -EINVAL is the command line's */
	}
}

int cli_exit(int rc)
{
	switch (-rc) {
	case EINVAL: return EXIT_USAGE;
	case EBADMSG: return EXIT_DAMAGED;
	case EKEYREJECTED: return EXIT_PASSWORD;
	case EBUSY: return EXIT_LOCKED;
	case EINTR: return EXIT_INTERRUPTED;
	default: return rc < 0 ? EXIT_ERROR : EXIT_OK;
	}
}

static char *read_password_file(const char *path)
{
	char *pw = NULL, err[512];
	if (read_secret_file(path, &pw, err, sizeof(err)) < 0)
		cli_error("%s", err);
	return pw;
}

static char *prompt(const char *question)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	FILE *tty = fdopen(fd, "r+");
	if (!tty) {
		close(fd);
		return NULL;
	}
	struct termios old, quiet;
	bool echo_off = tcgetattr(fd, &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	fprintf(tty, "%s", question);
	fflush(tty);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, tty);
	if (echo_off)
		tcsetattr(fd, TCSAFLUSH, &old);
	fprintf(tty, "\n");
	fclose(tty);
	if (n < 0) {
		free(line);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	return line;
}

static char *prompt_confirmed(const char *question)
{
	char *a = prompt(question);
	if (!a)
		return NULL;
	char *b = prompt("Repeat the password: ");
	if (!b || strcmp(a, b)) {
		free(a);
		free(b);
		cli_error("the passwords do not match");
		return NULL;
	}
	free(b);
	return a;
}

char *cli_password(const struct cli *c, bool confirm)
{
	if (c->password_file)
		return read_password_file(c->password_file);
	const char *env = getenv("CAIRN_PASSWORD");
	if (env)
		return strdup(env);
	if (!isatty(0)) {
		cli_error("no password: set CAIRN_PASSWORD, use --password-file, or run on a terminal");
		return NULL;
	}
	char *p = confirm ? prompt_confirmed("New repository password: ")
			  : prompt("Repository password: ");
	if (!p && !confirm)
		cli_error("no password given");
	return p;
}

char *cli_new_password(void)
{
	const char *env = getenv("CAIRN_NEW_PASSWORD");
	if (env)
		return strdup(env);
	if (!isatty(0)) {
		cli_error("no new password: set CAIRN_NEW_PASSWORD, use --new-password-file, or run on a terminal");
		return NULL;
	}
	return prompt_confirmed("New password: ");
}

/* CAIRN_KEY_FILE yields to a password: the password can do everything a
 * host key can. */
const char *cli_key_file(const struct cli *c)
{
	if (c->backend.key_file)
		return c->backend.key_file;
	const char *env = getenv("CAIRN_KEY_FILE"), *pw = getenv("CAIRN_PASSWORD");
	if (!env || !*env || c->password_file || (pw && *pw))
		return NULL;
	return env;
}

int cli_open_repo_keep(const struct cli *c, const char *url, struct cairn_repo **out,
		       char **password)
{
	char err[512] = "";
	_cleanup_free_ char *pw = NULL;
	struct cairn_backend_opts bo = c->backend;
	bo.key_file = cli_key_file(c);
	if (password)
		*password = NULL;
	if (bo.key_file) {
		int rc = cairn_repo_open_with(url, NULL, &bo, out, err, sizeof(err));
		return rc < 0 ? cli_fail(rc, err) : 0;
	}
	if (c->password_file || getenv("CAIRN_PASSWORD")) {
		pw = cli_password(c, false);
		if (!pw)
			return -EIO;
	}
	int rc = cairn_repo_open_with(url, pw, &bo, out, err, sizeof(err));
	if (rc == -EKEYREJECTED && !pw && isatty(0)) {
		pw = cli_password(c, false);
		if (!pw)
			return -EIO;
		rc = cairn_repo_open_with(url, pw, &c->backend, out, err, sizeof(err));
	}
	if (rc < 0) {
		if (rc == -EKEYREJECTED && !pw)
			snprintf(err, sizeof(err),
				 "%s is encrypted: set CAIRN_PASSWORD, use --password-file, or run on a terminal",
				 url);
		return cli_fail(rc, err);
	}
	if (password)
		*password = TAKE_PTR(pw);
	return 0;
}

int cli_open_repo(const struct cli *c, const char *url, struct cairn_repo **out)
{
	return cli_open_repo_keep(c, url, out, NULL);
}

int cli_need_full(struct cairn_repo *r)
{
	int rc = cairn_repo_need_full(r);
	return rc < 0 ? cli_fail(rc, cairn_repo_error(r)) : 0;
}

int cli_open_locked(const struct cli *c, const char *url, enum cli_lock lock,
		    struct cairn_repo **out)
{
	int rc = cli_open_repo(c, url, out);
	if (rc < 0)
		return rc;
	rc = lock == CLI_GC ? cairn_repo_lock_gc(*out) : cairn_repo_lock(*out, lock == CLI_EXCLUSIVE);
	if (rc < 0) {
		rc = cli_fail(rc, cairn_repo_error(*out));
		cairn_repo_close(*out);
		*out = NULL;
		return rc;
	}
	return 0;
}

void cli_print_warnings(struct cairn_repo *r)
{
	for (size_t i = 0; i < cairn_repo_warning_count(r); i++)
		cli_warn("%s", cairn_repo_warning(r, i));
	cairn_repo_clear_warnings(r); /* each is said once */
}

json_t *cli_warnings_json(const struct cairn_repo *r)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < cairn_repo_warning_count(r); i++)
		json_array_append_new(a, json_string(cairn_repo_warning(r, i)));
	return a;
}

/* A resolution's failure: its warnings, then its one-line error. */
static int find_result(struct cairn_repo *r, int rc)
{
	if (rc < 0) {
		cli_print_warnings(r);
		return cli_fail(rc, cairn_repo_error(r));
	}
	return 0;
}

int cli_find_snapshot(struct cairn_repo *r, const char *spec, const char *name,
		      struct cairn_snapshot **out)
{
	return find_result(r, cairn_snapshot_find(r, spec, name, out));
}

int cli_find_snapshot_indexed(struct cairn_repo *r, const char *spec, const char *name,
			      struct cairn_snapshot **out)
{
	return find_result(r, cairn_snapshot_find_indexed(r, spec, name, out));
}

void progress_init(struct progress *p, const struct cli *c, const char *what)
{
	p->on = !c->quiet && !c->json && isatty(2);
	p->what = what;
	p->start_ns = p->last_ns = mono_ns();
}

void progress_update(void *opaque, uint64_t done, uint64_t total)
{
	struct progress *p = opaque;
	int64_t now = mono_ns();
	if (!p->on || (now - p->last_ns < 250000000 && done < total))
		return;
	p->last_ns = now;
	double secs = (double)(now - p->start_ns) / 1e9;
	double rate = secs > 0 ? (double)done / secs : 0;
	char d[32], t[32], r[32];
	format_bytes(done, d, sizeof(d));
	format_bytes(total, t, sizeof(t));
	format_bytes((uint64_t)rate, r, sizeof(r));
	long eta = rate > 0 ? (long)((double)(total - done) / rate) : 0;
	fprintf(stderr, "\r%s: %s / %s  %s/s  ETA %ld:%02ld   ", p->what, d, t, r,
		eta / 60, eta % 60);
}

void progress_done(struct progress *p)
{
	if (p->on)
		fprintf(stderr, "\r\033[K");
}

volatile int cli_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	cli_interrupted = 1;
}

void cli_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void json_print(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(j);
}

void id_hex(const cairn_id *id, char out[65])
{
	hex_encode(id->b, CAIRN_ID_LEN, out);
}

int cli_parse(struct cli *c, int argc, char **argv, const struct option *opts,
	      const char *shortopts, cli_option_fn own, void *ctx,
	      const char *usage, int *nargs)
{
	char spec[64];
	/* '-': positional arguments come back as option 1, in order */
	snprintf(spec, sizeof(spec), "-:%s%s", CLI_COMMON_SHORT, shortopts);
	opterr = 0;
	optind = 1;
	int opt;
	char **pos = calloc((size_t)argc + 1, sizeof(char *));
	int npos = 0;
	if (!pos)
		return cli_error("out of memory");
	while ((opt = getopt_long(argc, argv, spec, opts, NULL)) != -1) {
		int rc = 0;
		if (opt == 1)
			pos[npos++] = optarg;
		else if (opt == 'h') {
			printf("usage: cairn %s\n", usage);
			rc = 1;
		} else if (opt == '?')
			rc = cli_usage("%s: unknown option '%s' (usage: cairn %s)", argv[0],
				       argv[optind - 1], usage);
		else if (opt == CLI_OPT_PASSWORD)
			rc = cli_usage("passwords are never taken from the command line: use CAIRN_PASSWORD, --password-file or the prompt");
		else if (opt == ':')
			rc = cli_usage("%s: option '%s' needs a value", argv[0],
				       argv[optind - 1]);
		else if (opt >= CLI_OPT_CONNECTIONS && opt <= CLI_OPT_LIMIT_DOWNLOAD)
			rc = transfer_option(c, opt, optarg);
		else if (!cli_common_option(c, opt, optarg))
			rc = own ? own(ctx, opt, optarg) : 0;
		if (rc != 0) {
			free(pos);
			return rc;
		}
	}
	for (int i = optind; i < argc; i++)
		pos[npos++] = argv[i];
	/* positional arguments go back at argv[1..], after the command name */
	for (int i = 0; i < npos; i++)
		argv[1 + i] = pos[i];
	argv[1 + npos] = NULL;
	free(pos);
	*nargs = npos;
	c->prog = argv[0];
	return 0;
}
