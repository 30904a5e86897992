/* Tests of the .vmx dictionary layer (vmx-config.c): byte-identical round
 * trips (comments, unknown keys, CRLF, no final newline, unquoted values),
 * case-insensitive keys, set in place / append / remove, |XX escapes,
 * typed getters, the disk list of a realistic ESXi .vmx (SCSI, SATA, NVMe
 * disks; IDE and SATA CD-ROMs excluded), repointing a disk, atomic save,
 * and every rejection with its line number. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "connectors/vmx-config.h"

/* A realistic ESXi 7 .vmx: comments and unknown keys added by hand,
 * keys in VMware's mixed case, a display name with escapes. */
static const char esxi_vmx[] =
  ".encoding = \"UTF-8\"\n"
  "config.version = \"8\"\n"
  "virtualHW.version = \"19\"\n"
  "vmci0.present = \"TRUE\"\n"
  "floppy0.present = \"FALSE\"\n"
  "numvcpus = \"4\"\n"
  "memSize = \"8192\"\n"
  "bios.bootRetry.delay = \"10\"\n"
  "# added by the admin\n"
  "tools.upgrade.policy = \"manual\"\n"
  "sched.cpu.units = \"mhz\"\n"
  "scsi0.virtualDev = \"pvscsi\"\n"
  "scsi0.present = \"TRUE\"\n"
  "scsi1.virtualDev = \"lsisas1068\"\n"
  "scsi1.present = \"FALSE\"\n"
  "sata0.present = \"TRUE\"\n"
  "nvme0.present = \"TRUE\"\n"
  "scsi0:0.deviceType = \"scsi-hardDisk\"\n"
  "scsi0:0.fileName = \"web01.vmdk\"\n"
  "sched.scsi0:0.shares = \"normal\"\n"
  "scsi0:0.present = \"TRUE\"\n"
  "scsi0:0.ctkEnabled = \"TRUE\"\n"
  "scsi0:1.deviceType = \"scsi-hardDisk\"\n"
  "scsi0:1.fileName = \"web01_1-000002.vmdk\"\n"
  "scsi0:1.mode = \"independent-persistent\"\n"
  "scsi0:1.present = \"TRUE\"\n"
  "scsi0:1.ctkEnabled = \"FALSE\"\n"
  "scsi0:2.fileName = \"old.vmdk\"\n"
  "scsi0:2.present = \"FALSE\"\n"
  "scsi1:0.fileName = \"on-absent-controller.vmdk\"\n"
  "scsi1:0.present = \"TRUE\"\n"
  "sata0:0.fileName = \"/vmfs/volumes/datastore2/web01/web01_2.vmdk\"\n"
  "sata0:0.present = \"TRUE\"\n"
  "sata0:1.deviceType = \"cdrom-image\"\n"
  "sata0:1.fileName = \"/vmfs/volumes/iso/ubuntu-22.04.iso\"\n"
  "sata0:1.present = \"TRUE\"\n"
  "nvme0:0.fileName = \"web01_3.vmdk\"\n"
  "nvme0:0.present = \"TRUE\"\n"
  "ide1:0.deviceType = \"atapi-cdrom\"\n"
  "ide1:0.fileName = \"/vmfs/devices/cdrom/mpx.vmhba0:C0:T0:L0\"\n"
  "ide1:0.present = \"TRUE\"\n"
  "ide0:0.fileName = \"/vmfs/volumes/iso/tools.iso\"\n"
  "ide0:0.present = \"TRUE\"\n"
  "ethernet0.virtualDev = \"vmxnet3\"\n"
  "ethernet0.networkName = \"VM Network\"\n"
  "ethernet0.generatedAddress = \"00:50:56:9a:12:34\"\n"
  "ethernet0.present = \"TRUE\"\n"
  "displayName = \"web01 |22prod|22 |7C eu\"\n"
  "guestOS = \"ubuntu-64\"\n"
  "uuid.bios = \"42 1a 5c 3e 9d 7b 11 e0-a1 b2 c3 d4 e5 f6 07 18\"\n"
  "vc.uuid = \"50 1a 2b 3c 4d 5e 6f 70-81 92 a3 b4 c5 d6 e7 f8\"\n"
  "\n"
  "ctkEnabled = \"TRUE\"\n";

/* Parse text, asserting success. */
static struct vmx_config *
parse_ok (const char *text, size_t len)
{
  struct vmx_config *c;
  struct vb_error err = { 0 };
  int r = vmx_parse (text, len, "t.vmx", &c, &err);
  if (r < 0)
    print_message ("parse failed: %s\n", err.msg);
  assert_int_equal (r, 0);
  return c;
}

/* Format c and compare with want (len bytes). */
static void
assert_text (const struct vmx_config *c, const char *want, size_t len)
{
  size_t n;
  char *s = vmx_format (c, &n);
  assert_non_null (s);
  if (n != len || memcmp (s, want, len) != 0)
    print_message ("got:\n%s\nwant:\n%.*s\n", s, (int) len, want);
  assert_int_equal (n, len);
  assert_memory_equal (s, want, len);
  free (s);
}

/* Parsing must fail with -code and a one-line message holding frag and
 * the file name. */
static void
parse_bad (const char *text, size_t len, int code, const char *frag)
{
  struct vmx_config *c = (struct vmx_config *) 1;
  struct vb_error err = { 0 };
  int r = vmx_parse (text, len, "bad.vmx", &c, &err);
  if (r != -code || !strstr (err.msg, frag))
    print_message ("expected -%d '%s', got %d '%s'\n", code, frag, r, err.msg);
  assert_int_equal (r, -code);
  assert_null (c);
  assert_non_null (strstr (err.msg, frag));
  assert_non_null (strstr (err.msg, "bad.vmx"));
  assert_null (strchr (err.msg, '\n'));
}

static void
test_round_trip (void **state)
{
  static const char *const texts[] = {
    esxi_vmx,
    /* CRLF, no final newline, odd spacing, unquoted values, trailing
     * comments, tabs, leading blanks, empty quoted value */
    "# Workstation file\r\n.encoding = \"windows-1252\"\r\n"
    "memsize=1024\r\n  displayName\t=\t\"a  b\"   # the name\r\n\r\n"
    "empty = \"\"\r\nlast = \"x\"",
    "",
    "\n\n# only comments\n#\n",
    "k = \"|\"  \n",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    size_t len = strlen (texts[i]);
    struct vmx_config *c = parse_ok (texts[i], len);
    assert_text (c, texts[i], len);
    vmx_free (c);
  }
}

static void
test_get_case_and_order (void **state)
{
  struct vmx_config *c = parse_ok (esxi_vmx, strlen (esxi_vmx));
  assert_string_equal (vmx_get (c, "memsize"), "8192");
  assert_string_equal (vmx_get (c, "MEMSIZE"), "8192");
  assert_string_equal (vmx_get (c, "Scsi0:0.FILENAME"), "web01.vmdk");
  assert_null (vmx_get (c, "nosuch"));
  assert_null (vmx_get (c, "memSize2"));
  /* entries in file order, original spelling */
  const char *k, *v;
  assert_true (vmx_entry (c, 0, &k, &v));
  assert_string_equal (k, ".encoding");
  assert_true (vmx_entry (c, 6, &k, &v));
  assert_string_equal (k, "memSize");
  size_t n = vmx_n_entries (c);
  assert_int_equal (n, 51);   /* 54 lines: 1 comment, 1 blank */
  assert_false (vmx_entry (c, n, &k, &v));
  size_t cur = 0, seen = 0;
  while (vmx_entry_next (c, &cur, &k, &v))
    seen++;
  assert_int_equal (seen, n);
  vmx_free (c);

  /* duplicates: the last one wins; set keeps only one line */
  const char *dup = "a = \"1\"\nb = \"x\"\nA = \"2\"\n";
  c = parse_ok (dup, strlen (dup));
  assert_string_equal (vmx_get (c, "a"), "2");
  assert_int_equal (vmx_set (c, "a", "3", NULL), 0);
  assert_text (c, "b = \"x\"\nA = \"3\"\n", 16);
  vmx_free (c);
}

static void
test_set_remove (void **state)
{
  const char *t = "# c\nmemsize=1024\r\nname = \"old\"   # keep me\nlast = x";
  struct vmx_config *c = parse_ok (t, strlen (t));
  struct vb_error err = { 0 };
  /* in place: spacing, CRLF and comments of the line are kept */
  assert_int_equal (vmx_set (c, "MEMSIZE", "2048", &err), 0);
  assert_int_equal (vmx_set (c, "name", "new", &err), 0);
  /* unquoted value becomes quoted */
  assert_int_equal (vmx_set (c, "last", "y", &err), 0);
  const char *w1 = "# c\nmemsize=\"2048\"\r\nname = \"new\"   # keep me\n"
    "last = \"y\"";
  assert_text (c, w1, strlen (w1));
  assert_string_equal (vmx_get (c, "memSize"), "2048");
  /* append: the last line gets its missing newline first */
  assert_int_equal (vmx_set (c, "guestOS", "other-64", &err), 0);
  const char *w2 = "# c\nmemsize=\"2048\"\r\nname = \"new\"   # keep me\n"
    "last = \"y\"\nguestOS = \"other-64\"\n";
  assert_text (c, w2, strlen (w2));
  /* remove */
  assert_int_equal (vmx_remove (c, "NAME"), 1);
  assert_int_equal (vmx_remove (c, "name"), 0);
  assert_null (vmx_get (c, "name"));
  const char *w3 = "# c\nmemsize=\"2048\"\r\nlast = \"y\"\nguestOS = \"other-64\"\n";
  assert_text (c, w3, strlen (w3));
  /* invalid keys */
  assert_int_equal (vmx_set (c, "a b", "1", &err), -EINVAL);
  assert_int_equal (vmx_set (c, "", "1", NULL), -EINVAL);
  assert_int_equal (vmx_set (c, "a=b", "1", NULL), -EINVAL);
  assert_int_equal (vmx_set (c, "a\"", "1", NULL), -EINVAL);
  vmx_free (c);

  /* a CRLF file gets CRLF on appended lines */
  t = "a = \"1\"\r\n";
  c = parse_ok (t, strlen (t));
  assert_int_equal (vmx_set (c, "b", "2", NULL), 0);
  assert_text (c, "a = \"1\"\r\nb = \"2\"\r\n", 18);
  vmx_free (c);

  /* a new config */
  c = vmx_new ("n.vmx");
  assert_int_equal (vmx_set (c, "displayName", "x", NULL), 0);
  assert_text (c, "displayName = \"x\"\n", 18);
  vmx_free (c);
}

static void
test_escapes (void **state)
{
  const char *t = "a = \"q|22x|22 p|7Cp nl|0Aend\"\n"
    "b = \"50|25 |zz |7 |\"\n"
    "c = \"lower|7c\"\n"
    "d = \"#not a comment\"\n";
  struct vmx_config *c = parse_ok (t, strlen (t));
  assert_string_equal (vmx_get (c, "a"), "q\"x\" p|p nl\nend");
  assert_string_equal (vmx_get (c, "b"), "50% |zz |7 |");   /* bad escapes kept */
  assert_string_equal (vmx_get (c, "c"), "lower|");
  assert_string_equal (vmx_get (c, "d"), "#not a comment");
  assert_text (c, t, strlen (t));   /* untouched lines stay as they were */
  /* encode on write, decode again on read */
  assert_int_equal (vmx_set (c, "e", "say \"hi\" | #1\t\x01", NULL), 0);
  size_t n;
  char *s = vmx_format (c, &n);
  assert_non_null (strstr (s, "e = \"say |22hi|22 |7C |231|09|01\"\n"));
  struct vmx_config *c2 = parse_ok (s, n);
  assert_string_equal (vmx_get (c2, "e"), "say \"hi\" | #1\t\x01");
  assert_string_equal (vmx_get (c2, "a"), "q\"x\" p|p nl\nend");
  free (s);
  vmx_free (c2);
  /* UTF-8 passes through unescaped */
  assert_int_equal (vmx_set (c, "u", "caf\xc3\xa9", NULL), 0);
  s = vmx_format (c, &n);
  assert_non_null (strstr (s, "u = \"caf\xc3\xa9\"\n"));
  free (s);
  vmx_free (c);
  /* an escape naming NUL cannot be represented */
  parse_bad ("x = \"a|00b\"\n", 12, EINVAL, "line 1: escape |00");
}

static void
test_typed (void **state)
{
  struct vmx_config *c = parse_ok (esxi_vmx, strlen (esxi_vmx));
  struct vb_error err = { 0 };
  assert_string_equal (vmx_display_name (c), "web01 \"prod\" | eu");
  assert_string_equal (vmx_guest_os (c), "ubuntu-64");
  uint64_t mb;
  assert_int_equal (vmx_mem_size_mb (c, &mb, &err), 0);
  assert_int_equal (mb, 8192);
  unsigned n;
  assert_int_equal (vmx_num_vcpus (c, &n, &err), 0);
  assert_int_equal (n, 4);
  bool on = false;
  assert_int_equal (vmx_ctk_enabled (c, &on, &err), 0);
  assert_true (on);
  uint8_t u[16];
  char us[37];
  assert_int_equal (vmx_uuid_bios (c, u, &err), 0);
  vmx_uuid_string (u, us);
  assert_string_equal (us, "421a5c3e-9d7b-11e0-a1b2-c3d4e5f60718");
  uint8_t u2[16];
  assert_true (vmx_parse_uuid (us, u2));
  assert_memory_equal (u, u2, 16);
  assert_false (vmx_parse_uuid ("42 1a 5c", u2));
  assert_false (vmx_parse_uuid ("4 21a5c3e9d7b11e0a1b2c3d4e5f60718", u2));
  assert_false (vmx_parse_uuid ("421a5c3e9d7b11e0a1b2c3d4e5f60718aa", u2));
  assert_false (vmx_parse_uuid ("g21a5c3e9d7b11e0a1b2c3d4e5f60718", u2));
  vmx_free (c);

  /* defaults and errors */
  const char *t = "memSize = \"lots\"\nnumvcpus = \"0\"\nctkEnabled = \"maybe\"\n"
    "uuid.bios = \"42 1a\"\nflag = \"yes\"\noff = \"Off\"\n";
  c = parse_ok (t, strlen (t));
  err = (struct vb_error) { 0 };
  assert_int_equal (vmx_mem_size_mb (c, &mb, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "memSize"));
  assert_non_null (strstr (err.msg, "t.vmx"));
  err = (struct vb_error) { 0 };
  assert_int_equal (vmx_num_vcpus (c, &n, &err), -EINVAL);
  err = (struct vb_error) { 0 };
  assert_int_equal (vmx_ctk_enabled (c, &on, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "maybe"));
  assert_int_equal (vmx_uuid_bios (c, u, NULL), -EINVAL);
  assert_int_equal (vmx_get_bool (c, "flag", false, &on, NULL), 0);
  assert_true (on);
  assert_int_equal (vmx_get_bool (c, "off", true, &on, NULL), 0);
  assert_false (on);
  assert_int_equal (vmx_get_bool (c, "absent", true, &on, NULL), 0);
  assert_true (on);
  vmx_free (c);
  t = "memSize = \"99999999999999999999999\"\n";
  c = parse_ok (t, strlen (t));
  assert_int_equal (vmx_mem_size_mb (c, &mb, NULL), -EINVAL);
  assert_int_equal (vmx_num_vcpus (c, &n, NULL), 0);   /* absent: 1 */
  assert_int_equal (n, 1);
  assert_int_equal (vmx_ctk_enabled (c, &on, NULL), 0);
  assert_false (on);
  assert_int_equal (vmx_uuid_bios (c, u, NULL), -ENOENT);
  vmx_free (c);
  c = parse_ok ("x = \"1\"\n", 8);
  assert_int_equal (vmx_mem_size_mb (c, &mb, NULL), -ENOENT);
  vmx_free (c);
}

static void
test_disks (void **state)
{
  struct vmx_config *c = parse_ok (esxi_vmx, strlen (esxi_vmx));
  struct vmx_disk *d;
  size_t n;
  struct vb_error err = { 0 };
  assert_int_equal (vmx_disks (c, &d, &n, &err), 0);
  for (size_t i = 0; i < n; i++)
    print_message ("disk %s %s\n", d[i].device, d[i].file_name);
  /* scsi0:2 not present, scsi1:0 on a disabled controller, sata0:1 and
   * ide1:0 are CD-ROMs, ide0:0 an ISO without deviceType */
  assert_int_equal (n, 4);
  assert_string_equal (d[0].device, "scsi0:0");
  assert_int_equal (d[0].bus, VMX_BUS_SCSI);
  assert_string_equal (d[0].file_name, "web01.vmdk");
  assert_true (d[0].ctk_enabled);
  assert_null (d[0].mode);
  assert_string_equal (d[0].device_type, "scsi-hardDisk");
  assert_string_equal (d[1].device, "scsi0:1");
  assert_int_equal (d[1].unit, 1);
  assert_string_equal (d[1].file_name, "web01_1-000002.vmdk");
  assert_string_equal (d[1].mode, "independent-persistent");
  assert_false (d[1].ctk_enabled);
  assert_string_equal (d[2].device, "sata0:0");
  assert_int_equal (d[2].bus, VMX_BUS_SATA);
  assert_string_equal (d[2].file_name,
                       "/vmfs/volumes/datastore2/web01/web01_2.vmdk");
  assert_null (d[2].device_type);
  assert_false (d[2].ctk_enabled);
  assert_string_equal (d[3].device, "nvme0:0");
  assert_int_equal (d[3].bus, VMX_BUS_NVME);
  assert_int_equal (d[3].controller, 0);
  vmx_disks_free (d, n);

  /* repoint a disk at a new leaf, in place */
  assert_int_equal (vmx_disk_set_file_name (c, "scsi0:0", "web01-000001.vmdk",
                                            &err), 0);
  size_t len;
  char *s = vmx_format (c, &len);
  assert_int_equal (len, strlen (esxi_vmx) + 7);   /* 10 -> 17 bytes */
  assert_non_null (strstr (s, "\nscsi0:0.fileName = \"web01-000001.vmdk\"\n"
                           "sched.scsi0:0.shares"));
  free (s);
  assert_int_equal (vmx_disks (c, &d, &n, &err), 0);
  assert_string_equal (d[0].file_name, "web01-000001.vmdk");
  vmx_disks_free (d, n);
  err = (struct vb_error) { 0 };
  assert_int_equal (vmx_disk_set_file_name (c, "scsi3:0", "x.vmdk", &err),
                    -ENOENT);
  assert_non_null (strstr (err.msg, "no disk 'scsi3:0'"));
  assert_int_equal (vmx_disk_set_file_name (c, "scsi0", "x.vmdk", NULL),
                    -EINVAL);
  assert_int_equal (vmx_disk_set_file_name (c, "scsi00:0", "x.vmdk", NULL),
                    -EINVAL);
  vmx_free (c);

  /* IDE hard disk, upper-case bus, and a present disk without fileName */
  const char *t = "IDE0:0.present = \"TRUE\"\nide0:0.fileName = \"a.VMDK\"\n"
    "ide0:1.present = \"TRUE\"\nide0:1.deviceType = \"ata-hardDisk\"\n"
    "ide0:1.fileName = \"b.vmdk\"\n";
  c = parse_ok (t, strlen (t));
  assert_int_equal (vmx_disks (c, &d, &n, NULL), 0);
  assert_int_equal (n, 2);
  assert_string_equal (d[0].device, "ide0:0");
  assert_int_equal (d[0].bus, VMX_BUS_IDE);
  vmx_disks_free (d, n);
  vmx_free (c);
  t = "scsi0:0.present = \"TRUE\"\nscsi0:0.deviceType = \"scsi-hardDisk\"\n";
  c = parse_ok (t, strlen (t));
  err = (struct vb_error) { 0 };
  assert_int_equal (vmx_disks (c, &d, &n, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "'scsi0:0'"));
  vmx_free (c);
  c = parse_ok ("x = \"1\"\n", 8);
  assert_int_equal (vmx_disks (c, &d, &n, NULL), 0);
  assert_int_equal (n, 0);
  assert_null (d);
  vmx_free (c);
}

static void
test_save (void **state)
{
  char dir[] = "/tmp/vmx-test.XXXXXX";
  assert_non_null (mkdtemp (dir));
  char path[128];
  snprintf (path, sizeof path, "%s/web01.vmx", dir);
  struct vmx_config *c = parse_ok (esxi_vmx, strlen (esxi_vmx));
  struct vb_error err = { 0 };
  assert_int_equal (vmx_save (c, path, &err), 0);
  vmx_free (c);
  assert_int_equal (vmx_load (path, &c, &err), 0);
  assert_text (c, esxi_vmx, strlen (esxi_vmx));
  assert_string_equal (vmx_name (c), path);
  assert_int_equal (vmx_set (c, "memSize", "4096", &err), 0);
  assert_int_equal (vmx_save (c, path, &err), 0);
  vmx_free (c);
  assert_int_equal (vmx_load (path, &c, &err), 0);
  assert_string_equal (vmx_get (c, "memSize"), "4096");
  vmx_free (c);
  /* only the file itself is left: no temp files */
  DIR *d = opendir (dir);
  struct dirent *de;
  int files = 0;
  while ((de = readdir (d)))
    if (de->d_name[0] != '.')
      files++;
  closedir (d);
  assert_int_equal (files, 1);
  err = (struct vb_error) { 0 };
  snprintf (path, sizeof path, "%s/nosuch/x.vmx", dir);
  assert_int_equal (vmx_load (path, &c, &err), -ENOENT);
  assert_non_null (strstr (err.msg, "nosuch/x.vmx"));
  char cmd[200];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal (system (cmd), 0);
}

static void
test_errors (void **state)
{
  parse_bad ("a = \"1\"\nno equals here\n", 23, EINVAL,
             "line 2: missing '=' after key 'no'");
  parse_bad ("a = \"1\"\nb\n", 10, EINVAL, "line 2: missing '='");
  parse_bad ("= \"1\"\n", 6, EINVAL, "line 1: missing key");
  parse_bad ("a = \"1\n", 7, EINVAL, "line 1: unterminated quoted value");
  parse_bad ("a = \"1\" junk\n", 13, EINVAL, "line 1: unexpected text after");
  parse_bad ("a = \"1\"\"2\"\n", 11, EINVAL, "unexpected text after");
  parse_bad ("a =\n", 4, EINVAL, "line 1: missing value");
  parse_bad ("a = # c\n", 8, EINVAL, "missing value");
  parse_bad ("a = x\"y\"\n", 9, EINVAL, "stray '\"'");
  parse_bad ("\"a\" = \"1\"\n", 10, EINVAL, "quoted text where a key");
  parse_bad ("a\x01 = \"1\"\n", 10, EINVAL, "invalid byte 0x01 in key 'a'");
  parse_bad ("a\"b = \"1\"\n", 10, EINVAL, "unexpected '\"' in key 'a'");
  parse_bad ("x = \"1\"\n\ny = \"a\0b\"\n", 19, EINVAL, "line 3: NUL byte");

  /* line length: 64 KiB of content is fine, one more byte is not */
  size_t big = VMX_MAX_LINE;
  char *t = malloc (big + 2);
  memset (t, 'x', big);
  memcpy (t, "k = \"", 5);
  t[big - 1] = '"';
  t[big] = '\n';
  struct vmx_config *c = parse_ok (t, big + 1);
  assert_int_equal (strlen (vmx_get (c, "k")), big - 6);
  vmx_free (c);
  memmove (t + 1, t, big + 1);
  t[0] = ' ';
  parse_bad (t, big + 2, EINVAL, "line 1: line is longer than 65536 bytes");
  free (t);

  /* line count */
  size_t nl = VMX_MAX_LINES;
  t = malloc (nl + 2);
  memset (t, '\n', nl + 1);
  c = parse_ok (t, nl);
  vmx_free (c);
  parse_bad (t, nl + 1, EINVAL, "more than 10000 lines");
  free (t);

  /* file size */
  t = calloc (1, VMX_MAX_FILE + 1);
  memset (t, '#', VMX_MAX_FILE + 1);
  parse_bad (t, VMX_MAX_FILE + 1, EFBIG, "too large");
  free (t);

  /* set refuses to build an overlong line */
  c = parse_ok ("a = \"1\"\n", 8);
  char *v = malloc (VMX_MAX_LINE);
  memset (v, 'v', VMX_MAX_LINE - 1);
  v[VMX_MAX_LINE - 1] = '\0';
  struct vb_error err = { 0 };
  assert_int_equal (vmx_set (c, "a", v, &err), -E2BIG);
  assert_non_null (strstr (err.msg, "longer than"));
  assert_string_equal (vmx_get (c, "a"), "1");
  v[VMX_MAX_LINE - 10] = '\0';   /* a = "v..." fits exactly: 4+2+65526 <= 65536 */
  assert_int_equal (vmx_set (c, "a", v, NULL), 0);
  /* escapes triple the size */
  memset (v, '"', VMX_MAX_LINE / 2);
  v[VMX_MAX_LINE / 2] = '\0';
  assert_int_equal (vmx_set (c, "b", v, NULL), -E2BIG);
  assert_null (vmx_get (c, "b"));
  free (v);
  vmx_free (c);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_get_case_and_order),
    cmocka_unit_test (test_set_remove),
    cmocka_unit_test (test_escapes),
    cmocka_unit_test (test_typed),
    cmocka_unit_test (test_disks),
    cmocka_unit_test (test_save),
    cmocka_unit_test (test_errors),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
