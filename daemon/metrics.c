/* Prometheus textfile metrics (see metrics.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "base/util.h"

struct metric {
	const char *name, *help;
};

static const struct metric metrics[] = {
	{ "cairn_backup_last_run_timestamp_seconds", "When the last run of this job for this VM ended." },
	{ "cairn_backup_last_success", "1 when the last run succeeded, else 0." },
	{ "cairn_backup_duration_seconds", "How long the last run took." },
	{ "cairn_backup_bytes_read", "Bytes the last run read from the VM's disks." },
	{ "cairn_backup_bytes_stored", "Bytes the last run added to the repository." },
	{ "cairn_backup_next_run_timestamp_seconds", "When the job runs next." },
	{ "cairn_backup_anomaly", "1 when the anomaly guard marked the last snapshot suspicious." },
};

/* Label values escaped as the exposition format wants: \\, \" and \n. */
static void label(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = in; *p && o + 3 < len; p++) {
		if (*p == '\\' || *p == '"')
			out[o++] = '\\';
		if (*p == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
			continue;
		}
		out[o++] = *p;
	}
	out[o] = '\0';
}

static double value_of(const struct cairn_run_record *r, size_t metric)
{
	switch (metric) {
	case 0: return (double)r->end_ns / 1e9;
	case 1: return r->ok ? 1 : 0;
	case 2: return (double)(r->end_ns - r->start_ns) / 1e9;
	case 3: return (double)r->bytes_read;
	case 4: return (double)r->bytes_stored;
	case 5: return (double)r->next_run_ns / 1e9;
	default: return r->anomaly ? 1 : 0;
	}
}

int cairn_metrics_render(const struct cairn_run_record *runs, size_t n, char **out)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", metrics[m].name, metrics[m].help,
			metrics[m].name);
		for (size_t i = 0; i < n; i++) {
			if (m == 5 && !runs[i].next_run_ns)
				continue;
			char job[300], vm[600];
			label(runs[i].job, job, sizeof(job));
			label(runs[i].vm, vm, sizeof(vm));
			fprintf(f, "%s{job=\"%s\",vm=\"%s\"} %.17g\n", metrics[m].name, job, vm,
				value_of(&runs[i], m));
		}
	}
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	*out = text;
	return 0;
}

int cairn_metrics_write(const char *dir, const struct cairn_run_record *runs, size_t n,
			char *err, size_t errlen)
{
	_cleanup_free_ char *text = NULL;
	if (cairn_metrics_render(runs, n, &text) < 0)
		return set_err(err, errlen, -ENOMEM, "out of memory");
	/* node_exporter ignores files not ending in .prom: the temporary name
	 * is never read half-written */
	return cairn_write_file_atomic(dir, "cairn.prom", text, err, errlen);
}
