/* Unit tests for restore/domxml.c: rewriting a stored domain definition. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "restore/domxml.h"

static const char *stored =
	"<domain type='kvm' id='7'>\n"
	"  <name>web1</name>\n"
	"  <uuid>6a5c3d2e-1111-2222-3333-444455556666</uuid>\n"
	"  <memory unit='KiB'>262144</memory>\n"
	"  <devices>\n"
	"    <disk type='file' device='disk'>\n"
	"      <driver name='qemu' type='qcow2' cache='none'/>\n"
	"      <source file='/var/lib/libvirt/images/web1.qcow2' index='2'/>\n"
	"      <backingStore type='file' index='3'><format type='qcow2'/>"
	"<source file='/var/lib/libvirt/images/base.qcow2'/></backingStore>\n"
	"      <target dev='vda' bus='virtio'/>\n"
	"    </disk>\n"
	"    <disk type='network' device='disk'>\n"
	"      <driver name='qemu' type='raw'/>\n"
	"      <source protocol='rbd' name='pool/web1-data'><host name='mon1' port='6789'/></source>\n"
	"      <auth username='admin'><secret type='ceph' usage='x'/></auth>\n"
	"      <target dev='vdb' bus='virtio'/>\n"
	"    </disk>\n"
	"    <disk type='file' device='disk'>\n"
	"      <driver name='qemu' type='raw'/>\n"
	"      <source file='/scratch/web1-tmp.raw'/>\n"
	"      <target dev='vdc' bus='virtio'/>\n"
	"    </disk>\n"
	"    <disk type='file' device='cdrom'>\n"
	"      <driver name='qemu' type='raw'/>\n"
	"      <source file='/iso/debian.iso'/>\n"
	"      <target dev='sda' bus='sata'/><readonly/>\n"
	"    </disk>\n"
	"    <interface type='network'>\n"
	"      <mac address='52:54:00:aa:bb:cc'/>\n"
	"      <source network='prod'/>\n"
	"      <target dev='vnet3'/>\n"
	"      <model type='virtio'/>\n"
	"    </interface>\n"
	"    <interface type='bridge'>\n"
	"      <mac address='52:54:00:aa:bb:dd'/>\n"
	"      <source bridge='br0'/>\n"
	"    </interface>\n"
	"    <interface type='network'><source network='prod'/></interface>\n"
	"  </devices>\n"
	"</domain>\n";

static const struct cairn_domxml_disk two_disks[] = {
	{ .target = "vda", .path = "/restore/web2-vda.qcow2", .format = "qcow2" },
	{ .target = "vdb", .path = "/dev/vg0/web2-data", .format = "raw", .block = true },
};

/* The string value of an XPath expression over xml ("" when nothing). */
static char *xpath(const char *xml, const char *expr)
{
	xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL, XML_PARSE_NONET);
	assert_non_null(doc);
	xmlXPathContext *ctx = xmlXPathNewContext(doc);
	xmlXPathObject *o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	assert_non_null(o);
	xmlChar *s = xmlXPathCastToString(o);
	char *out = strdup((const char *)s);
	xmlFree(s);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return out;
}

static void assert_xpath(const char *xml, const char *expr, const char *want)
{
	char *got = xpath(xml, expr);
	if (strcmp(got, want))
		fail_msg("%s: got '%s', want '%s'", expr, got, want);
	free(got);
}

static void test_rewrite_full(void **state)
{
	(void)state;
	struct cairn_domxml_map map[] = { { "prod", "isolated" }, { "br0", "br9" } };
	struct cairn_domxml_opts o = { .name = "web2", .disks = two_disks, .ndisks = 2,
				       .net_map = map, .nnet_map = 2, .new_macs = true };
	struct cairn_domxml_result x;
	char err[256] = "";
	assert_int_equal(cairn_domxml_rewrite(stored, &o, &x, err, sizeof(err)), 0);
	assert_string_equal(x.name, "web2");
	assert_xpath(x.xml, "string(/domain/name)", "web2");
	assert_xpath(x.xml, "count(/domain/uuid)", "0");
	assert_xpath(x.xml, "count(/domain/@id)", "0");
	assert_xpath(x.xml, "string(/domain/@type)", "kvm");
	/* vda: a qcow2 file, its old backing chain gone, other driver options kept */
	assert_xpath(x.xml, "string(//disk[target/@dev='vda']/@type)", "file");
	assert_xpath(x.xml, "string(//disk[target/@dev='vda']/source/@file)",
		     "/restore/web2-vda.qcow2");
	assert_xpath(x.xml, "count(//disk[target/@dev='vda']/source/@index)", "0");
	assert_xpath(x.xml, "count(//disk[target/@dev='vda']/backingStore)", "0");
	assert_xpath(x.xml, "string(//disk[target/@dev='vda']/driver/@type)", "qcow2");
	assert_xpath(x.xml, "string(//disk[target/@dev='vda']/driver/@cache)", "none");
	/* vdb: an RBD volume restored onto a block device */
	assert_xpath(x.xml, "string(//disk[target/@dev='vdb']/@type)", "block");
	assert_xpath(x.xml, "string(//disk[target/@dev='vdb']/source/@dev)",
		     "/dev/vg0/web2-data");
	assert_xpath(x.xml, "count(//disk[target/@dev='vdb']/source/*)", "0");
	assert_xpath(x.xml, "count(//disk[target/@dev='vdb']/source/@protocol)", "0");
	assert_xpath(x.xml, "count(//disk[target/@dev='vdb']/auth)", "0");
	/* vdc was not restored: left out and reported; the cdrom stays, empty */
	assert_xpath(x.xml, "count(//disk[target/@dev='vdc'])", "0");
	assert_int_equal(x.ndropped, 1);
	assert_string_equal(x.dropped[0], "vdc");
	assert_xpath(x.xml, "count(//disk[@device='cdrom'])", "1");
	assert_xpath(x.xml, "count(//disk[@device='cdrom']/source)", "0");
	/* interfaces: mapped, MACs and tap names dropped, model kept */
	assert_xpath(x.xml, "count(//interface[source/@network='isolated'])", "2");
	assert_xpath(x.xml, "string(//interface[@type='bridge']/source/@bridge)", "br9");
	assert_xpath(x.xml, "count(//interface/mac)", "0");
	assert_xpath(x.xml, "count(//interface/target)", "0");
	assert_xpath(x.xml, "string(//interface/model/@type)", "virtio");
	assert_int_equal(x.nnetworks, 1);
	assert_string_equal(x.networks[0], "isolated");
	assert_int_equal(x.nhost_ifaces, 1);
	assert_string_equal(x.host_ifaces[0], "br9");
	cairn_domxml_result_free(&x);
}

static void test_keep_name_and_macs(void **state)
{
	(void)state;
	struct cairn_domxml_opts o = { .disks = two_disks, .ndisks = 1 };
	struct cairn_domxml_result x;
	char err[256] = "";
	assert_int_equal(cairn_domxml_rewrite(stored, &o, &x, err, sizeof(err)), 0);
	assert_string_equal(x.name, "web1");
	assert_xpath(x.xml, "string(//interface[@type='bridge']/mac/@address)",
		     "52:54:00:aa:bb:dd");
	assert_xpath(x.xml, "string(//interface[@type='network']/source/@network)", "prod");
	assert_int_equal(x.ndropped, 2);
	assert_string_equal(x.networks[0], "prod");
	assert_string_equal(x.host_ifaces[0], "br0");
	cairn_domxml_result_free(&x);
}

/* A restored UEFI domain names its own NVRAM, this host's firmware and the
 * UUID its TPM state was written under, never the original's. */
static void test_firmware_files(void **state)
{
	(void)state;
	static const char *uefi =
		"<domain type='kvm'><name>vm1</name><uuid>6a5c3d2e-1111-2222-3333-444455556666</uuid>"
		"<os><type>hvm</type><loader readonly='yes' type='pflash'>/old/CODE.fd</loader>"
		"<nvram template='/old/VARS.fd'>/var/lib/libvirt/qemu/nvram/vm1_VARS.fd</nvram></os>"
		"<devices><tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"
		"</devices></domain>";
	struct cairn_domxml_opts o = { .name = "vm2", .uuid = "0f0e0d0c-0b0a-4908-8706-050403020100",
				       .nvram = "/var/lib/libvirt/qemu/nvram/vm2_VARS.fd",
				       .loader = "/usr/share/OVMF/CODE.fd",
				       .nvram_template = "/usr/share/OVMF/VARS.fd" };
	struct cairn_domxml_result x;
	char err[256] = "";
	assert_int_equal(cairn_domxml_rewrite(uefi, &o, &x, err, sizeof(err)), 0);
	assert_xpath(x.xml, "string(/domain/uuid)", "0f0e0d0c-0b0a-4908-8706-050403020100");
	assert_xpath(x.xml, "string(count(/domain/uuid))", "1");
	assert_xpath(x.xml, "string(/domain/os/nvram)", "/var/lib/libvirt/qemu/nvram/vm2_VARS.fd");
	assert_xpath(x.xml, "string(/domain/os/nvram/@template)", "/usr/share/OVMF/VARS.fd");
	assert_xpath(x.xml, "string(/domain/os/loader)", "/usr/share/OVMF/CODE.fd");
	assert_xpath(x.xml, "string(/domain/os/loader/@type)", "pflash");
	cairn_domxml_result_free(&x);
	/* without them: no UUID (libvirt makes one), the stored files kept */
	struct cairn_domxml_opts plain = { .name = "vm2" };
	assert_int_equal(cairn_domxml_rewrite(uefi, &plain, &x, err, sizeof(err)), 0);
	assert_xpath(x.xml, "string(count(/domain/uuid))", "0");
	assert_xpath(x.xml, "string(/domain/os/loader)", "/old/CODE.fd");
	cairn_domxml_result_free(&x);
}

static void expect_einval(const char *xml, const struct cairn_domxml_opts *o,
			  const char *msg_part)
{
	struct cairn_domxml_result x;
	char err[256] = "";
	assert_int_equal(cairn_domxml_rewrite(xml, o, &x, err, sizeof(err)), -EINVAL);
	if (!strstr(err, msg_part))
		fail_msg("error '%s' lacks '%s'", err, msg_part);
	assert_null(x.xml);
	assert_null(x.name);
}

static void test_unused_map_refused(void **state)
{
	(void)state;
	struct cairn_domxml_map map[] = { { "dmz", "isolated" } };
	struct cairn_domxml_opts o = { .disks = two_disks, .ndisks = 1, .net_map = map,
				       .nnet_map = 1 };
	expect_einval(stored, &o, "no interface on dmz");
}

static void test_unknown_disk_refused(void **state)
{
	(void)state;
	struct cairn_domxml_disk d = { .target = "vdz", .path = "/x", .format = "raw" };
	struct cairn_domxml_opts o = { .disks = &d, .ndisks = 1 };
	expect_einval(stored, &o, "no disk vdz");
}

static void test_bad_xml_refused(void **state)
{
	(void)state;
	struct cairn_domxml_opts o = { 0 };
	expect_einval("<domain><name>x</name", &o, "does not parse");
	expect_einval("<network><name>x</name></network>", &o, "no <domain>");
	expect_einval("<domain><devices/></domain>", &o, "no <name>");
	expect_einval(NULL, &o, "no domain XML");
}

static void test_disk_without_driver(void **state)
{
	(void)state;
	const char *xml = "<domain><name>a</name><devices><disk type='block' device='disk'>"
			  "<source dev='/dev/sdb'/><target dev='vda'/></disk></devices></domain>";
	struct cairn_domxml_disk d = { .target = "vda", .path = "/r/a.qcow2", .format = "qcow2" };
	struct cairn_domxml_opts o = { .disks = &d, .ndisks = 1 };
	struct cairn_domxml_result x;
	char err[256] = "";
	assert_int_equal(cairn_domxml_rewrite(xml, &o, &x, err, sizeof(err)), 0);
	assert_xpath(x.xml, "string(//disk/@type)", "file");
	assert_xpath(x.xml, "string(//disk/driver/@type)", "qcow2");
	assert_xpath(x.xml, "string(//disk/driver/@name)", "qemu");
	assert_xpath(x.xml, "string(//disk/source/@file)", "/r/a.qcow2");
	assert_xpath(x.xml, "count(//disk/source/@dev)", "0");
	cairn_domxml_result_free(&x);
}

static void test_isolated_boot(void **state)
{
	(void)state;
	const char *xml =
		"<domain><name>a</name><devices>"
		"<disk type='file' device='disk'><source file='/a.raw'/><target dev='vda'/></disk>"
		"<interface type='network'><source network='prod'/></interface>"
		"<interface type='bridge'><source bridge='br0'/></interface>"
		"<serial type='pty'><target port='0'/></serial>"
		"<console type='pty'><target type='serial' port='0'/></console>"
		"<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-1-a/org.qemu.guest_agent.0'/>"
		"<target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
		"<channel type='unix'><source mode='bind' path='/srv/app.sock'/>"
		"<target type='virtio' name='app.0'/></channel>"
		"</devices></domain>";
	struct cairn_domxml_disk d = { .target = "vda", .path = "/t/ov.qcow2", .format = "qcow2" };
	struct cairn_domxml_opts o = { .name = "verify-1", .disks = &d, .ndisks = 1,
				       .no_network = true, .console_log = "/t/console.log" };
	struct cairn_domxml_result x;
	char err[256] = "";
	assert_int_equal(cairn_domxml_rewrite(xml, &o, &x, err, sizeof(err)), 0);
	assert_xpath(x.xml, "count(//interface)", "0");
	assert_int_equal(x.nnetworks, 0);
	assert_int_equal(x.nhost_ifaces, 0);
	assert_xpath(x.xml, "count(//serial)", "1");
	assert_xpath(x.xml, "string(//serial/@type)", "file");
	assert_xpath(x.xml, "string(//serial/source/@path)", "/t/console.log");
	assert_xpath(x.xml, "string(//console/source/@path)", "/t/console.log");
	assert_xpath(x.xml, "string(//console/target/@type)", "serial");
	/* the agent socket of the old domain is dropped, an admin's path kept */
	assert_xpath(x.xml, "count(//channel[target/@name='org.qemu.guest_agent.0']/source/@path)",
		     "0");
	assert_xpath(x.xml, "string(//channel[target/@name='app.0']/source/@path)", "/srv/app.sock");
	cairn_domxml_result_free(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rewrite_full),
		cmocka_unit_test(test_keep_name_and_macs),
		cmocka_unit_test(test_firmware_files),
		cmocka_unit_test(test_unused_map_refused),
		cmocka_unit_test(test_unknown_disk_refused),
		cmocka_unit_test(test_bad_xml_refused),
		cmocka_unit_test(test_disk_without_driver),
		cmocka_unit_test(test_isolated_boot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
