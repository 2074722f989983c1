/* The domain XML rewrite of a restore (restore/domxml.c): the stored
 * definition comes from the manifest, so from the repository. Input: the
 * XML; the options are fixed (a new name, vda restored as a file, sdb as
 * a block device, one network renamed, new MACs, a console log). */
#include "fuzz_helpers.h"
#include "restore/domxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *xml = fuzz_strdup(data, size);
	static const struct cairn_domxml_disk disks[] = {
		{ .target = "vda", .path = "/var/lib/libvirt/images/r-vda.qcow2", .format = "qcow2" },
		{ .target = "sdb", .path = "/dev/vg/r-sdb", .format = "raw", .block = true },
	};
	static const struct cairn_domxml_map nets[] = { { "default", "isolated" } };
	struct cairn_domxml_opts o = { .name = "restored", .disks = disks, .ndisks = 2,
				       .net_map = nets, .nnet_map = 1, .new_macs = size & 1,
				       .console_log = size & 2 ? "/tmp/console.log" : NULL };
	struct cairn_domxml_result res = { 0 };
	char err[512];
	if (cairn_domxml_rewrite(xml, &o, &res, err, sizeof(err)) == 0)
		cairn_domxml_result_free(&res);
	free(xml);
	return 0;
}
