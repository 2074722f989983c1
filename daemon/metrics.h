/* Prometheus metrics in node_exporter's textfile-collector format, written
 * atomically to DIR/cairn.prom after each run (node_exporter reads every
 * *.prom file of its --collector.textfile.directory). One series per job
 * and VM, from the run records (daemon/state.h):
 *
 *   cairn_backup_last_run_timestamp_seconds{job,vm}
 *   cairn_backup_last_success{job,vm}          1 or 0
 *   cairn_backup_last_success_timestamp_seconds{job,vm}  (only when it succeeded)
 *   cairn_backup_duration_seconds{job,vm}
 *   cairn_backup_bytes_read{job,vm}
 *   cairn_backup_bytes_stored{job,vm}
 *   cairn_backup_next_run_timestamp_seconds{job,vm}
 *   cairn_backup_anomaly{job,vm}               1 when the anomaly guard marked
 *                                              the last snapshot suspicious
 *
 * Returns 0 or a negative errno with a one-line reason in err. */
#ifndef CAIRN_DAEMON_METRICS_H
#define CAIRN_DAEMON_METRICS_H

#include <stddef.h>

#include "state.h"

/* The text, for tests and for writing; *out freed with free(). */
int cairn_metrics_render(const struct cairn_run_record *runs, size_t n, char **out);
int cairn_metrics_write(const char *dir, const struct cairn_run_record *runs, size_t n,
			char *err, size_t errlen);

#endif
