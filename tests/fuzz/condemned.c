/* gc's condemned lists and their wait objects (docs/design.md section
 * 17): the packs a gc run will delete, read by every writer so that it
 * never reuses them, and the locks gc waits for before deleting.
 * Input: the object's bytes, stored both as a list and as its wait
 * object. */
#include "fuzz_helpers.h"
#include "repo/gc_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_repo *r = fuzz_repo(false);
	fuzz_put(r, GC_DIR "/fuzz", data, size);
	fuzz_put(r, GC_DIR "/fuzz.wait", data, size);
	gc_load_condemned(r);
	bool over;
	gc_wait_over(r, "fuzz", &over);
	cairn_repo_close(r);
	return 0;
}
