/* Waiting for a booted VM's success signal (see bootcheck.h). */
#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt-qemu.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bootcheck.h"

#define POLL_MS 500
#define SCRIPT_PAUSE_MS 2000
#define AGENT_WAIT_S 2

struct waiter {
	struct cairn_vm_host *h;
	const char *domain;
	const struct cairn_boot_check *c;
	virDomainPtr dom;
	regex_t re;
	bool have_re;
	bool agent_ok, console_ok, script_ok;
	int64_t start_ns, deadline_ns, next_script_ns;
	char *detail;
	size_t detail_len;
};

void cairn_boot_check_method(const struct cairn_boot_check *c, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s%s%s", c->agent ? "agent" : "",
		 c->agent && (c->console_regex || c->script) ? "+" : "",
		 c->console_regex ? "console" : "", c->console_regex && c->script ? "+" : "",
		 c->script ? "script" : "");
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static bool agent_answers(struct waiter *w)
{
	char *reply = virDomainQemuAgentCommand(w->dom, "{\"execute\":\"guest-ping\"}",
						AGENT_WAIT_S, 0);
	free(reply);
	return reply != NULL;
}

/* The console log is small (a boot's worth of text): reading it whole each
 * time is simpler than tracking partial lines and costs nothing. */
static bool console_matches(struct waiter *w)
{
	FILE *f = fopen(w->c->console_log, "r");
	if (!f)
		return false;
	char *line = NULL;
	size_t cap = 0;
	bool hit = false;
	while (!hit && getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (regexec(&w->re, line, 0, NULL, 0) == 0) {
			hit = true;
			snprintf(w->detail, w->detail_len, "console: %.200s", line);
		}
	}
	free(line);
	fclose(f);
	return hit;
}

static void script_child(const struct waiter *w, int out_fd)
{
	dup2(out_fd, STDOUT_FILENO);
	dup2(out_fd, STDERR_FILENO);
	int null = open("/dev/null", O_RDONLY);
	if (null >= 0)
		dup2(null, STDIN_FILENO);
	setenv("CAIRN_VERIFY_DOMAIN", w->domain, 1);
	if (w->c->console_log)
		setenv("CAIRN_VERIFY_CONSOLE", w->c->console_log, 1);
	execl("/bin/sh", "sh", "-c", w->c->script, (char *)NULL);
	_exit(127);
}

/* The last non-empty line the script printed, for the record. */
static void last_output_line(FILE *out, char *dst, size_t len)
{
	char line[256];
	rewind(out);
	while (fgets(line, sizeof(line), out)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (*line) {
			size_t n = strnlen(line, len - 1);
			memcpy(dst, line, n);
			dst[n] = '\0';
		}
	}
}

/* Runs the script once, killing it at the deadline; true when it exited 0. */
static bool script_passes(struct waiter *w)
{
	FILE *out = tmpfile();
	if (!out)
		return false;
	pid_t pid = fork();
	if (pid == 0)
		script_child(w, fileno(out));
	int status = -1;
	while (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
		if (mono_ns() >= w->deadline_ns || (w->c->cancel && *w->c->cancel)) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		sleep_ms(50);
	}
	char last[200] = "";
	last_output_line(out, last, sizeof(last));
	fclose(out);
	bool ok = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (ok || *last)
		snprintf(w->detail, w->detail_len, "script %s%s%s", ok ? "passed" : "failed",
			 *last ? ": " : "", last);
	return ok;
}

static bool domain_alive(struct waiter *w)
{
	int state, reason;
	return virDomainGetState(w->dom, &state, &reason, 0) == 0 &&
	       (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED ||
		state == VIR_DOMAIN_PAUSED);
}

static void poll_once(struct waiter *w)
{
	if (w->c->agent && !w->agent_ok)
		w->agent_ok = agent_answers(w);
	if (w->have_re && !w->console_ok)
		w->console_ok = console_matches(w);
	if (w->c->script && !w->script_ok && mono_ns() >= w->next_script_ns) {
		w->script_ok = script_passes(w);
		w->next_script_ns = mono_ns() + (int64_t)SCRIPT_PAUSE_MS * 1000000;
	}
}

static bool all_passed(const struct waiter *w)
{
	return (!w->c->agent || w->agent_ok) && (!w->have_re || w->console_ok) &&
	       (!w->c->script || w->script_ok);
}

/* What was still missing when time ran out. */
static void describe_timeout(struct waiter *w)
{
	char missing[128];
	snprintf(missing, sizeof(missing), "%s%s%s",
		 w->c->agent && !w->agent_ok ? " no answer from the guest agent;" : "",
		 w->have_re && !w->console_ok ? " the console never matched;" : "",
		 w->c->script && !w->script_ok ? " the script never passed;" : "");
	missing[strlen(missing) - 1] = '\0';
	char last[256];
	snprintf(last, sizeof(last), "%s", w->detail);
	snprintf(w->detail, w->detail_len, "no success within %us:%s%s%s", w->c->timeout_s,
		 missing, *last ? " (last: " : "", *last ? last : "");
	if (*last)
		strncat(w->detail, ")", w->detail_len - strlen(w->detail) - 1);
}

static int wait_loop(struct waiter *w, double *seconds)
{
	int rc = -ETIMEDOUT;
	while (mono_ns() < w->deadline_ns) {
		if (w->c->cancel && *w->c->cancel) {
			rc = -EINTR;
			snprintf(w->detail, w->detail_len, "interrupted");
			break;
		}
		if (!domain_alive(w)) {
			rc = -ESRCH;
			snprintf(w->detail, w->detail_len, "the VM stopped before it passed");
			break;
		}
		poll_once(w);
		if (all_passed(w)) {
			rc = 0;
			break;
		}
		sleep_ms(POLL_MS);
	}
	*seconds = (double)(mono_ns() - w->start_ns) / 1e9;
	if (rc == -ETIMEDOUT)
		describe_timeout(w);
	else if (rc == 0 && !w->c->script && !w->have_re)
		snprintf(w->detail, w->detail_len, "guest agent answered");
	return rc;
}

int cairn_boot_wait(struct cairn_vm_host *h, const char *domain,
		    const struct cairn_boot_check *c, double *seconds, char *detail,
		    size_t detail_len)
{
	struct waiter w = { .h = h, .domain = domain, .c = c, .detail = detail,
			    .detail_len = detail_len };
	detail[0] = '\0';
	*seconds = 0;
	if (!c->agent && !c->console_regex && !c->script)
		return set_err(detail, detail_len, -EINVAL, "no success signal to wait for");
	if (c->console_regex) {
		if (!c->console_log)
			return set_err(detail, detail_len, -EINVAL, "no console log to match");
		if (regcomp(&w.re, c->console_regex, REG_EXTENDED | REG_NOSUB) != 0)
			return set_err(detail, detail_len, -EINVAL,
				       "--expect-console %s: not a valid regular expression",
				       c->console_regex);
		w.have_re = true;
	}
	int rc;
	if (!(w.dom = virDomainLookupByName(cairn_vm_host_conn(h), domain)))
		rc = set_err(detail, detail_len, -ESRCH, "domain %s is gone", domain);
	else {
		w.start_ns = mono_ns();
		w.deadline_ns = w.start_ns + (int64_t)c->timeout_s * 1000000000;
		rc = wait_loop(&w, seconds);
		virDomainFree(w.dom);
	}
	if (w.have_re)
		regfree(&w.re);
	return rc;
}
