/* cairn: backup, snapshot and replication for KVM virtual machines. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "init", cmd_init, "create a repository" },
	{ "backup", cmd_backup, "back up disk images as a snapshot" },
	{ "snapshots", cmd_snapshots, "list snapshots" },
	{ "ls", cmd_ls, "show the disks of a snapshot" },
	{ "stats", cmd_stats, "repository size and deduplication" },
	{ "restore", cmd_restore, "restore a disk, or a whole VM, from a snapshot" },
	{ "check", cmd_check, "verify the repository" },
	{ "repair", cmd_repair, "repair index: rebuild the index from the packs" },
	{ "key", cmd_key, "list, add or remove passwords" },
	{ "forget", cmd_forget, "remove snapshots by retention rules" },
	{ "protect", cmd_protect, "keep a snapshot from being forgotten" },
	{ "unprotect", cmd_unprotect, "allow a protected snapshot to be forgotten" },
	{ "replicate", cmd_replicate, "copy the snapshots another repository lacks" },
	{ "agent", cmd_agent, "the scheduling daemon (cairn.conf(5))" },
	{ "status", cmd_status, "the agent's last run of every job and VM" },
	{ "gc", cmd_gc, "delete data no snapshot uses (safe beside running backups)" },
	{ "serve", cmd_serve, "serve a disk of a snapshot over NBD (read-only)" },
	{ "mount", cmd_mount, "a disk of a snapshot as a read-only file, for file-level restore" },
	{ "umount", cmd_umount, "undo cairn mount" },
	{ "instant-restore", cmd_instant, "run a VM from a snapshot at once, copy it in the background" },
	{ "verify-boot", cmd_verify, "boot a snapshot as a throwaway VM and record the result" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: cairn COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nSee cairn(1) or 'cairn COMMAND --help'.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("cairn 0.1 (repository format 1)\n");
		return EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	return cli_exit(cli_usage("unknown command '%s' (see 'cairn --help')", argv[1]));
}
