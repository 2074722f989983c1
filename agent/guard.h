/* Internal to agent/: the anomaly guard in a backup. Before the snapshot
 * is saved, every disk's measure (repo/anomaly.h) is judged against the
 * history of the same snapshot name in the repository; after it is saved,
 * a suspicious snapshot gets the newest earlier snapshot of that name that
 * was not suspicious protected (protected/<id>, docs/design.md section
 * 16), so neither forget nor the agent's retention can remove the last
 * clean copy. Problems of the guard itself (the history cannot be read,
 * the marker cannot be written) are notices, never a failed backup. */
#ifndef CAIRN_AGENT_GUARD_H
#define CAIRN_AGENT_GUARD_H

#include "agent.h"

/* Sets s->disks[i].anomaly's verdict (each disk already measured) and
 * remembers in res the snapshot to protect should s be suspicious. */
void guard_judge(struct cairn_repo *r, struct cairn_snapshot *s, const struct cairn_backup_opts *o,
		 struct cairn_backup_result *res);
/* After s is saved: when it is suspicious, protects the snapshot judge
 * found and fills res->suspicious, res->alarm, res->protected. */
void guard_act(struct cairn_repo *r, const struct cairn_snapshot *s,
	       const struct cairn_backup_opts *o, struct cairn_backup_result *res);

#endif
