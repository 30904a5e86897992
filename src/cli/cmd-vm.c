/* vmback vm: a VMware-style VM directory (docs/vmx-vmsd.md): NAME.vmx,
 * NAME.vmsd, NAME.nvram and, per disk, a descriptor, its extent(s) and
 * optionally a -ctk.vmdk.  `vm create` makes one, `vm info` describes
 * one (settings, disks through the disk library, snapshot tree) and
 * warns when delta files are left over that nothing references. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "connectors/vmsd.h"
#include "connectors/vmx-config.h"
#include "connectors/vmx-vm.h"

/* Disks per VM `vm create` makes: 15 units (0-15 without 7, the
 * controller's own id) on each of scsi0..scsi3. */
#define VM_UNITS_PER_CTRL 15
#define VM_MAX_CTRL 4
#define VM_MAX_DISKS (VM_UNITS_PER_CTRL * VM_MAX_CTRL)
#define VM_DEFAULT_MEM_MB 1024
#define VM_HW_VERSION "14"

/* Is argv asking for help? */
static bool
wants_help (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "-h") == 0 || strcmp (argv[i], "--help") == 0)
      return true;
  return false;
}

/* Does s end with suffix (ASCII case-insensitive)? */
static bool
ends_with (const char *s, const char *suffix)
{
  size_t n = strlen (s), k = strlen (suffix);
  return n >= k && strcasecmp (s + n - k, suffix) == 0;
}

/* malloc'd "dir/name", or name itself (copied) when it is absolute. */
static char *
in_dir (const char *dir, const char *name)
{
  char *p;
  if (name[0] == '/')
    return strdup (name);
  if (asprintf (&p, "%s/%s", dir, name) < 0)
    return NULL;
  return p;
}

/* malloc'd directory part of path ("." when it has none). */
static char *
dir_of (const char *path)
{
  const char *s = strrchr (path, '/');
  if (!s)
    return strdup (".");
  if (s == path)
    return strdup ("/");
  return strndup (path, (size_t) (s - path));
}

/* Base name of path without a trailing ".vmx", malloc'd. */
static char *
vm_name_of (const char *path)
{
  const char *s = strrchr (path, '/');
  s = s ? s + 1 : path;
  size_t n = strlen (s);
  if (ends_with (s, ".vmx"))
    n -= 4;
  return strndup (s, n);
}

/* --- vm create ---------------------------------------------------------- */

/* One disk asked for on the command line. */
struct new_disk {
  uint64_t size;
  enum vdisk_type type;
  char *file;       /* "NAME.vmdk", "NAME_1.vmdk", ... as written in .vmx */
  char *path;       /* dir/file */
  char *ctk_path;   /* dir/NAME-ctk.vmdk when --ctk */
  bool created;
  unsigned ctrl, unit;
};

/* Everything `vm create` made so far, to undo on failure. */
struct undo {
  char *dirs[64];   /* directories we made, outermost first */
  int n_dirs;
  char *files[8];   /* plain files we made */
  int n_files;
};

/* Remember a file we created (a fixed few: nvram, vmsd, temp .vmx). */
static void
undo_file (struct undo *u, const char *path)
{
  if (u->n_files < (int) (sizeof u->files / sizeof *u->files))
    u->files[u->n_files++] = strdup (path);
}

/* Remove what was created, newest first; disks through the library so
 * every extent and tracker file goes. */
static void
undo_all (struct undo *u, struct new_disk *d, size_t nd)
{
  for (size_t i = nd; i-- > 0;)
    if (d[i].created) {
      struct vb_error e = { 0 };
      if (vdisk_unlink (d[i].path, &e) < 0)
        fprintf (stderr, "vmback: cleanup: %s\n", e.msg);
      if (d[i].ctk_path)
        unlink (d[i].ctk_path);
      d[i].created = false;
    }
  for (int i = u->n_files; i-- > 0;) {
    if (u->files[i] && unlink (u->files[i]) < 0 && errno != ENOENT)
      fprintf (stderr, "vmback: cleanup: cannot remove '%s': %s\n", u->files[i],
               strerror (errno));
    free (u->files[i]);
  }
  u->n_files = 0;
  for (int i = u->n_dirs; i-- > 0;) {
    if (rmdir (u->dirs[i]) < 0)
      fprintf (stderr, "vmback: cleanup: cannot remove directory '%s': %s\n",
               u->dirs[i], strerror (errno));
    free (u->dirs[i]);
  }
  u->n_dirs = 0;
}

/* Forget the undo list after success. */
static void
undo_forget (struct undo *u)
{
  for (int i = 0; i < u->n_files; i++)
    free (u->files[i]);
  for (int i = 0; i < u->n_dirs; i++)
    free (u->dirs[i]);
  u->n_files = u->n_dirs = 0;
}

/* mkdir -p dir (0755, the umask applies), recording each level made so a
 * failure can remove exactly those. */
static int
make_dirs (const char *dir, struct undo *u, struct vb_error *e)
{
  char *p = strdup (dir);
  if (!p)
    return vb_errno (e, ENOMEM, "cannot create directory '%s'", dir);
  int r = 0;
  size_t n = strlen (p);
  for (size_t i = 1; i <= n && r == 0; i++) {
    if (p[i] != '/' && p[i] != '\0')
      continue;
    char c = p[i];
    p[i] = '\0';
    struct stat st;
    if (stat (p, &st) == 0) {
      if (!S_ISDIR (st.st_mode))
        r = vb_err (e, ENOTDIR, "cannot create directory '%s': '%s' is not a directory",
                    dir, p);
    } else if (errno != ENOENT) {
      r = vb_errno (e, errno, "cannot create directory '%s'", p);
    } else if (mkdir (p, 0755) < 0) {
      r = vb_errno (e, errno, "cannot create directory '%s'", p);
    } else if (u->n_dirs < (int) (sizeof u->dirs / sizeof *u->dirs)) {
      u->dirs[u->n_dirs++] = strdup (p);
    } else {
      r = vb_err (e, ENAMETOOLONG, "cannot create directory '%s': too deep", dir);
      rmdir (p);
    }
    p[i] = c;
  }
  free (p);
  return r;
}

/* Refuse when path exists (or cannot be checked): we never overwrite. */
static int
must_not_exist (const char *path, struct vb_error *e)
{
  struct stat st;
  if (lstat (path, &st) == 0)
    return vb_err (e, EEXIST, "cannot create '%s': file exists", path);
  if (errno != ENOENT)
    return vb_errno (e, errno, "cannot create '%s'", path);
  return 0;
}

/* Extent split size of the twoGbMaxExtent types (2 GiB - 1 MiB, as in
 * src/vdisk/vdisk-ops.c); used only to predict extent names. */
#define VM_TWOGB_EXTENT_SECTORS 4192256u

/* Refuse when any file the disk library could create for d exists: the
 * descriptor, STEM-ctk.vmdk, STEM-flat.vmdk and STEM-sNNN / STEM-fNNN.
 * vdisk_create itself refuses an existing extent but then removes the
 * extent names of the disk it failed to make, the existing file
 * included, so the check has to happen here first.  At most
 * VDISK_MAX_SIZE / (VM_TWOGB_EXTENT_SECTORS * 512) = 32769 names. */
static int
disk_names_free (const struct new_disk *d, struct vb_error *e)
{
  int r = must_not_exist (d->path, e);
  if (r == 0 && d->ctk_path)
    r = must_not_exist (d->ctk_path, e);
  size_t stem = strlen (d->path) - 5;   /* without ".vmdk" */
  char *p = NULL;
  if (r == 0 && asprintf (&p, "%.*s-flat.vmdk", (int) stem, d->path) < 0)
    return vb_errno (e, ENOMEM, "cannot create '%s'", d->path);
  if (r == 0)
    r = must_not_exist (p, e);
  free (p);
  uint64_t sectors = (d->size + VDISK_SECTOR - 1) / VDISK_SECTOR;
  uint64_t n = (sectors + VM_TWOGB_EXTENT_SECTORS - 1) / VM_TWOGB_EXTENT_SECTORS;
  bool split = d->type == VDISK_TYPE_TWOGB_SPARSE || d->type == VDISK_TYPE_TWOGB_FLAT;
  for (uint64_t i = 1; split && i <= n && r == 0; i++) {
    char *q = NULL;
    if (asprintf (&p, "%.*s-s%03" PRIu64 ".vmdk", (int) stem, d->path, i) < 0)
      return vb_errno (e, ENOMEM, "cannot create '%s'", d->path);
    if (asprintf (&q, "%.*s-f%03" PRIu64 ".vmdk", (int) stem, d->path, i) < 0) {
      free (p);
      return vb_errno (e, ENOMEM, "cannot create '%s'", d->path);
    }
    if ((r = must_not_exist (p, e)) == 0)
      r = must_not_exist (q, e);
    free (p);
    free (q);
  }
  return r;
}

/* Publish tmp as path without ever replacing an existing file (link
 * fails with EEXIST), then drop the temp name. */
static int
publish (const char *tmp, const char *path, struct vb_error *e)
{
  if (link (tmp, path) < 0)
    return errno == EEXIST
      ? vb_err (e, EEXIST, "cannot create '%s': file exists", path)
      : vb_errno (e, errno, "cannot create '%s'", path);
  unlink (tmp);
  return 0;
}

/* The nvram placeholder: an empty file the hypervisor fills in on first
 * power-on (it rebuilds a missing or blank NVRAM from the defaults). */
static int
write_nvram (const char *path, struct undo *u, struct vb_error *e)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return errno == EEXIST
      ? vb_err (e, EEXIST, "cannot create '%s': file exists", path)
      : vb_errno (e, errno, "cannot create '%s'", path);
  undo_file (u, path);
  if (fsync (fd) < 0) {
    int er = errno;
    close (fd);
    return vb_errno (e, er, "cannot write '%s'", path);
  }
  if (close (fd) < 0)
    return vb_errno (e, errno, "cannot write '%s'", path);
  return 0;
}

/* Random BIOS uuid in VMware's spelling: "56 4d xx xx xx xx xx xx-xx xx
 * xx xx xx xx xx xx" (VMware's prefix 56 4d, 14 random bytes). */
static int
random_uuid_bios (char out[48], struct vb_error *e)
{
  uint8_t b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t k = getrandom (b + got, sizeof b - got, 0);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return vb_errno (e, errno, "cannot get random bytes for uuid.bios");
    }
    got += (size_t) k;
  }
  b[0] = 0x56;
  b[1] = 0x4d;
  char *p = out;
  for (int i = 0; i < 16; i++)
    p += sprintf (p, "%02x%s", b[i], i == 15 ? "" : i == 7 ? "-" : " ");
  return 0;
}

/* Types `vm create` accepts for a base disk a VM can run on. */
static bool
vm_disk_type_ok (enum vdisk_type t)
{
  return t == VDISK_TYPE_MONOLITHIC_SPARSE || t == VDISK_TYPE_MONOLITHIC_FLAT
    || t == VDISK_TYPE_VMFS || t == VDISK_TYPE_TWOGB_SPARSE
    || t == VDISK_TYPE_TWOGB_FLAT;
}

/* Parse "SIZE[:TYPE]" of --disk. */
static int
parse_disk_spec (const char *spec, bool esxi, struct new_disk *d)
{
  const char *colon = strchr (spec, ':');
  char *sz = colon ? strndup (spec, (size_t) (colon - spec)) : strdup (spec);
  if (!sz)
    return cli_usage_error ("vm create: out of memory");
  int r = cli_parse_size (sz, &d->size);
  free (sz);
  if (r < 0 || d->size == 0 || d->size > VDISK_MAX_SIZE)
    return cli_usage_error ("vm create: bad disk size in '--disk %s' (e.g. 10G, "
                            "at most 64T)", spec);
  d->type = esxi ? VDISK_TYPE_VMFS : VDISK_TYPE_MONOLITHIC_SPARSE;
  if (colon) {
    int t = vdisk_type_from_name (colon + 1);
    if (t < 0 || !vm_disk_type_ok ((enum vdisk_type) t))
      return cli_usage_error ("vm create: bad disk type in '--disk %s' (monolithicSparse, "
                              "monolithicFlat, vmfs, twoGbMaxExtentSparse, "
                              "twoGbMaxExtentFlat)", spec);
    d->type = (enum vdisk_type) t;
  }
  return 0;
}

/* A guest OS id is VMware's short token, e.g. "ubuntu-64", "windows9-64". */
static bool
guest_os_ok (const char *s)
{
  size_t n = strlen (s);
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
          || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
      return false;
  return true;
}

/* Build the .vmx text model for the new VM. */
static int
build_vmx (struct vmx_config *x, const char *name, uint64_t mem, uint64_t cpus,
           const char *guest, const char *uuid, bool ctk, bool esxi,
           const struct new_disk *d, size_t nd, struct vb_error *e)
{
  char num[32], key[64], nvram[4096];
  int r = 0;
#define SET(k, v) do { if (r == 0) r = vmx_set (x, (k), (v), e); } while (0)
  SET (".encoding", "UTF-8");
  SET ("config.version", "8");
  SET ("virtualHW.version", VM_HW_VERSION);
  if (!esxi)
    SET ("virtualHW.productCompatibility", "hosted");
  SET ("displayName", name);
  SET ("guestOS", guest);
  snprintf (num, sizeof num, "%" PRIu64, mem);
  SET ("memSize", num);
  snprintf (num, sizeof num, "%" PRIu64, cpus);
  SET ("numvcpus", num);
  SET ("uuid.bios", uuid);
  SET ("uuid.location", uuid);
  snprintf (nvram, sizeof nvram, "%s.nvram", name);
  SET ("nvram", nvram);
  SET ("pciBridge0.present", "TRUE");
  SET ("floppy0.present", "FALSE");
  if (ctk)
    SET ("ctkEnabled", "TRUE");
  for (unsigned c = 0; c < VM_MAX_CTRL && r == 0; c++) {
    bool used = false;
    for (size_t i = 0; i < nd; i++)
      used |= d[i].ctrl == c;
    if (!used)
      continue;
    snprintf (key, sizeof key, "scsi%u.present", c);
    SET (key, "TRUE");
    snprintf (key, sizeof key, "scsi%u.virtualDev", c);
    SET (key, "lsilogic");
  }
  for (size_t i = 0; i < nd && r == 0; i++) {
    snprintf (key, sizeof key, "scsi%u:%u.present", d[i].ctrl, d[i].unit);
    SET (key, "TRUE");
    snprintf (key, sizeof key, "scsi%u:%u.fileName", d[i].ctrl, d[i].unit);
    SET (key, d[i].file);
    snprintf (key, sizeof key, "scsi%u:%u.deviceType", d[i].ctrl, d[i].unit);
    SET (key, "scsi-hardDisk");
    if (ctk) {
      snprintf (key, sizeof key, "scsi%u:%u.ctkEnabled", d[i].ctrl, d[i].unit);
      SET (key, "TRUE");
    }
  }
#undef SET
  return r;
}

/* Options of vm create. */
struct create_opts {
  const char *vmx;
  const char *specs[VM_MAX_DISKS];
  size_t n_specs;
  uint64_t mem, cpus;
  const char *guest;
  bool ctk, esxi;
};

/* getopt_long over `vm create`; returns 0 or the usage exit status. */
static int
parse_create (int argc, char **argv, struct create_opts *o)
{
  static const struct option lo[] = {
    { "disk", required_argument, 0, 'd' }, { "memory", required_argument, 0, 'm' },
    { "cpus", required_argument, 0, 'c' }, { "guest-os", required_argument, 0, 'g' },
    { "ctk", no_argument, 0, 'C' }, { "esxi", no_argument, 0, 'E' },
    { 0, 0, 0, 0 },
  };
  memset (o, 0, sizeof *o);
  o->mem = VM_DEFAULT_MEM_MB;
  o->cpus = 1;
  o->guest = "other-64";
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long (argc, argv, "d:m:c:g:", lo, NULL)) != -1) {
    switch (ch) {
    case 'd':
      if (o->n_specs == VM_MAX_DISKS)
        return cli_usage_error ("vm create: at most %d disks", VM_MAX_DISKS);
      o->specs[o->n_specs++] = optarg;
      break;
    case 'm':
      if (cli_parse_u64 (optarg, &o->mem) < 0 || o->mem < 4 || o->mem > VMX_MAX_MEM_MB
          || o->mem % 4)
        return cli_usage_error ("vm create: --memory takes MiB, a multiple of 4 "
                                "from 4 to %llu", (unsigned long long) VMX_MAX_MEM_MB);
      break;
    case 'c':
      if (cli_parse_u64 (optarg, &o->cpus) < 0 || o->cpus < 1 || o->cpus > VMX_MAX_VCPUS)
        return cli_usage_error ("vm create: --cpus takes 1 to %d", VMX_MAX_VCPUS);
      break;
    case 'g':
      if (!guest_os_ok (optarg))
        return cli_usage_error ("vm create: bad --guest-os '%s' (letters, digits, "
                                "'-', '_'; e.g. ubuntu-64)", optarg);
      o->guest = optarg;
      break;
    case 'C': o->ctk = true; break;
    case 'E': o->esxi = true; break;
    default:
      return cli_usage_error ("vm create: unknown or incomplete option '%s'",
                              argv[optind - 1]);
    }
  }
  if (argc - optind != 1)
    return cli_usage_error ("vm create: expected one DIR/NAME.vmx argument, got %d",
                            argc - optind);
  o->vmx = argv[optind];
  if (!ends_with (o->vmx, ".vmx"))
    return cli_usage_error ("vm create: '%s' does not end in .vmx", o->vmx);
  return 0;
}

/* Create the files of the VM; on failure everything made is removed. */
static int
create_vm (const struct create_opts *o, const char *dir, const char *name,
           struct new_disk *d, size_t nd, struct vb_error *e)
{
  struct undo u = { 0 };
  char *vmsd = NULL, *nvram = NULL, *tmp_vmx = NULL, *tmp_vmsd = NULL;
  struct vmx_config *x = NULL;
  struct vmsd m;
  bool have_m = false;
  char uuid[48];
  int r = 0;

  if (asprintf (&vmsd, "%s/%s.vmsd", dir, name) < 0
      || asprintf (&nvram, "%s/%s.nvram", dir, name) < 0
      || asprintf (&tmp_vmx, "%s/.%s.vmx.%ld.tmp", dir, name, (long) getpid ()) < 0
      || asprintf (&tmp_vmsd, "%s/.%s.vmsd.%ld.tmp", dir, name, (long) getpid ()) < 0) {
    r = vb_errno (e, ENOMEM, "cannot create '%s'", o->vmx);
    goto out;
  }
  /* check every name we will take before touching anything */
  if ((r = must_not_exist (o->vmx, e)) < 0 || (r = must_not_exist (vmsd, e)) < 0
      || (r = must_not_exist (nvram, e)) < 0)
    goto out;
  for (size_t i = 0; i < nd && r == 0; i++)
    r = disk_names_free (&d[i], e);
  if (r < 0 || (r = random_uuid_bios (uuid, e)) < 0)
    goto out;
  if ((r = make_dirs (dir, &u, e)) < 0)
    goto fail;

  /* snapshot dictionary: an empty tree */
  if ((r = vmsd_init (&m)) < 0) {
    r = vb_errno (e, -r, "cannot create '%s'", vmsd);
    goto fail;
  }
  have_m = true;
  undo_file (&u, tmp_vmsd);
  if ((r = vmsd_save (&m, tmp_vmsd, e)) < 0 || (r = publish (tmp_vmsd, vmsd, e)) < 0)
    goto fail;
  undo_file (&u, vmsd);
  if ((r = write_nvram (nvram, &u, e)) < 0)
    goto fail;

  for (size_t i = 0; i < nd; i++) {
    struct vdisk_create_opts co = { .type = d[i].type, .size = d[i].size,
                                    .adapter_type = "lsilogic", .ctk = o->ctk };
    if ((r = vdisk_create (d[i].path, &co, e)) < 0)
      goto fail;   /* vdisk_create removes its own partial files */
    d[i].created = true;
  }

  /* the .vmx last: once it exists, the VM does */
  x = vmx_new (o->vmx);
  if (!x) {
    r = vb_errno (e, ENOMEM, "cannot create '%s'", o->vmx);
    goto fail;
  }
  if ((r = build_vmx (x, name, o->mem, o->cpus, o->guest, uuid, o->ctk, o->esxi,
                      d, nd, e)) < 0)
    goto fail;
  undo_file (&u, tmp_vmx);
  if ((r = vmx_save (x, tmp_vmx, e)) < 0 || (r = publish (tmp_vmx, o->vmx, e)) < 0)
    goto fail;
  undo_forget (&u);
  goto out;

fail:
  undo_all (&u, d, nd);
out:
  if (have_m)
    vmsd_free (&m);
  vmx_free (x);
  free (vmsd);
  free (nvram);
  free (tmp_vmx);
  free (tmp_vmsd);
  return r;
}

/* vm create DIR/NAME.vmx [--disk SIZE[:TYPE]]... [--memory MB] [--cpus N]
 *           [--guest-os ID] [--ctk] [--esxi] */
static int
vm_create (struct cli *c, int argc, char **argv)
{
  struct create_opts o;
  int rc = parse_create (argc, argv, &o);
  if (rc)
    return rc;
  struct new_disk d[VM_MAX_DISKS];
  memset (d, 0, sizeof d);
  size_t nd = o.n_specs;
  for (size_t i = 0; i < nd; i++)
    if ((rc = parse_disk_spec (o.specs[i], o.esxi, &d[i])) != 0)
      return rc;
  char *dir = dir_of (o.vmx), *name = vm_name_of (o.vmx);
  struct vb_error e = { 0 };
  int r = 0;
  if (!dir || !name)
    r = vb_errno (&e, ENOMEM, "cannot create '%s'", o.vmx);
  else if (!*name || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    r = vb_err (&e, EINVAL, "cannot create '%s': empty VM name", o.vmx);
  for (size_t i = 0; i < nd && r == 0; i++) {
    /* VMware's names: NAME.vmdk, NAME_1.vmdk, ...; units skip 7 */
    int k = i == 0 ? asprintf (&d[i].file, "%s.vmdk", name)
      : asprintf (&d[i].file, "%s_%zu.vmdk", name, i);
    if (k < 0 || !(d[i].path = in_dir (dir, d[i].file))) {
      r = vb_errno (&e, ENOMEM, "cannot create '%s'", o.vmx);
      break;
    }
    if (o.ctk && asprintf (&d[i].ctk_path, "%s/%.*s-ctk.vmdk", dir,
                           (int) (strlen (d[i].file) - 5), d[i].file) < 0) {
      d[i].ctk_path = NULL;
      r = vb_errno (&e, ENOMEM, "cannot create '%s'", o.vmx);
      break;
    }
    d[i].ctrl = (unsigned) (i / VM_UNITS_PER_CTRL);
    d[i].unit = (unsigned) (i % VM_UNITS_PER_CTRL);
    if (d[i].unit >= 7)
      d[i].unit++;
  }
  if (r == 0)
    r = create_vm (&o, dir, name, d, nd, &e);
  for (size_t i = 0; i < nd; i++) {
    free (d[i].file);
    free (d[i].path);
    free (d[i].ctk_path);
  }
  free (dir);
  free (name);
  if (r < 0)
    return cli_fail (&e);
  if (!c->quiet && !c->json)
    printf ("created %s (%zu disk%s)\n", o.vmx, nd, nd == 1 ? "" : "s");
  return 0;
}

/* --- vm info ------------------------------------------------------------ */

/* A set of files known by identity (device, inode). */
struct fileset {
  struct { dev_t dev; ino_t ino; } *v;
  size_t n, cap;
};

/* Add path's identity (ignored when it cannot be stat'ed). */
static void
fileset_add (struct fileset *s, const char *path)
{
  struct stat st;
  if (stat (path, &st) < 0)
    return;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    void *v = realloc (s->v, cap * sizeof *s->v);
    if (!v)
      return;   /* out of memory: at worst a spurious warning */
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n].dev = st.st_dev;
  s->v[s->n].ino = st.st_ino;
  s->n++;
}

/* Is path one of the set? */
static bool
fileset_has (const struct fileset *s, const char *path)
{
  struct stat st;
  if (stat (path, &st) < 0)
    return false;
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i].dev == st.st_dev && s->v[i].ino == st.st_ino)
      return true;
  return false;
}

/* Add the layers of a disk's chain (or the file alone when the chain
 * cannot be opened). */
static void
fileset_add_chain (struct fileset *s, const char *path)
{
  struct vdisk_info in;
  struct vb_error e = { 0 };
  fileset_add (s, path);
  if (vdisk_get_info (path, &in, &e) < 0)
    return;
  for (int i = 0; i < in.chain_len; i++)
    if (in.chain[i])
      fileset_add (s, in.chain[i]);
  vdisk_info_free (&in);
}

struct stray_scan {
  const struct fileset *used;
  json_object *out;
};

/* vmx_scan_deltas callback: note file when its descriptor is unused and
 * removable. */
static int
note_stray (void *opaque, const char *desc, const char *file)
{
  struct stray_scan *st = opaque;
  if (!fileset_has (st->used, desc) && vmx_delta_removable (desc))
    json_object_array_add (st->out, json_object_new_string (file));
  return 0;
}

/* Delta files in dir whose descriptor `X-NNNNNN.vmdk` is not in `used`:
 * left over by a failed snapshot delete (docs/snapshots.md).  Names
 * go into the json array `out`. */
static int
find_stray_deltas (const char *dir, const struct fileset *used, json_object *out,
                   struct vb_error *e)
{
  struct stray_scan st = { .used = used, .out = out };
  return vmx_scan_deltas (dir, note_stray, &st, e);
}

/* "2024-05-02 09:10:00 UTC" from microseconds since the epoch. */
static void
format_time (int64_t us, char *buf, size_t len)
{
  time_t t = (time_t) (us / 1000000);
  struct tm tm;
  if (!gmtime_r (&t, &tm) || !strftime (buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
    snprintf (buf, len, "%" PRId64 " us", us);
}

/* The snapshot tree as json, depth first (children by uid). */
static void
snapshots_json (const struct vmsd *m, uint32_t parent, json_object *arr, int depth)
{
  uint32_t kids[VMSD_MAX_SNAPSHOTS];
  size_t n = vmsd_children (m, parent, kids);
  for (size_t i = 0; i < n; i++) {
    const struct vmsd_snapshot *s = vmsd_find (m, kids[i]);
    if (!s)
      continue;
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "uid", json_object_new_int64 (s->uid));
    json_object_object_add (j, "name", s->display_name
                            ? json_object_new_string (s->display_name) : NULL);
    json_object_object_add (j, "parent", json_object_new_int64 (s->parent));
    json_object_object_add (j, "depth", json_object_new_int (depth));
    json_object_object_add (j, "current", json_object_new_boolean (m->current == s->uid));
    if (s->has_create_time) {
      char t[64];
      format_time (s->create_time_us, t, sizeof t);
      json_object_object_add (j, "created", json_object_new_string (t));
    }
    json_object_object_add (j, "disks", json_object_new_int ((int) s->n_disks));
    json_object_array_add (arr, j);
    if (depth < VMSD_MAX_SNAPSHOTS)   /* the tree is loop-free (validated) */
      snapshots_json (m, s->uid, arr, depth + 1);
  }
}

/* Print one disk of the json model as a text line. */
static void
print_disk_text (json_object *d)
{
  json_object *v, *ct;
  const char *dev = json_object_get_string (json_object_object_get (d, "device"));
  const char *file = json_object_get_string (json_object_object_get (d, "file"));
  printf ("  %-9s %s\n", dev, file);
  if (json_object_object_get_ex (d, "error", &v)) {
    printf ("            error: %s\n", json_object_get_string (v));
    return;
  }
  printf ("            %s, %" PRIu64 " bytes, chain of %d\n",
          json_object_get_string (json_object_object_get (d, "type")),
          json_object_get_uint64 (json_object_object_get (d, "virtual-size")),
          json_object_get_int (json_object_object_get (d, "chain-length")));
  if (json_object_object_get_ex (d, "change-tracking", &ct)) {
    json_object *id, *why;
    printf ("            change tracking: %s",
            json_object_get_string (json_object_object_get (ct, "state")));
    if (json_object_object_get_ex (ct, "change-id", &id))
      printf (" %s", json_object_get_string (id));
    if (json_object_object_get_ex (ct, "reason", &why))
      printf (": %s", json_object_get_string (why));
    printf ("%s\n", json_object_get_boolean (json_object_object_get (ct, "vmx-enabled"))
            ? "" : " (not enabled in the .vmx)");
  }
}

/* Describe one disk of the .vmx into a json object; false when the disk
 * cannot be opened (the error is in the object). */
static bool
disk_json (const struct vmx_disk *vd, const char *dir, struct fileset *used,
           json_object **out)
{
  json_object *j = json_object_new_object ();
  *out = j;
  json_object_object_add (j, "device", json_object_new_string (vd->device));
  json_object_object_add (j, "file", json_object_new_string (vd->file_name));
  if (vd->mode)
    json_object_object_add (j, "mode", json_object_new_string (vd->mode));
  char *path = in_dir (dir, vd->file_name);
  if (!path) {
    json_object_object_add (j, "error", json_object_new_string ("out of memory"));
    return false;
  }
  fileset_add (used, path);
  struct vdisk_info in;
  struct vb_error e = { 0 };
  if (vdisk_get_info (path, &in, &e) < 0) {
    json_object_object_add (j, "error", json_object_new_string (e.msg));
    free (path);
    return false;
  }
  free (path);
  json_object_object_add (j, "type", json_object_new_string (vdisk_type_name (in.type)));
  json_object_object_add (j, "virtual-size", json_object_new_uint64 (in.size));
  json_object_object_add (j, "chain-length", json_object_new_int (in.chain_len));
  json_object *ch = json_object_new_array ();
  for (int i = 0; i < in.chain_len; i++) {
    json_object_array_add (ch, json_object_new_string (in.chain[i] ? in.chain[i] : ""));
    if (in.chain[i])
      fileset_add (used, in.chain[i]);
  }
  json_object_object_add (j, "chain", ch);
  json_object *ct = json_object_new_object ();
  json_object_object_add (ct, "vmx-enabled", json_object_new_boolean (vd->ctk_enabled));
  json_object_object_add (ct, "state", json_object_new_string
                          (in.ctk_state == 1 ? "valid" : in.ctk_state < 0 ? "invalid" : "off"));
  if (in.change_id[0])
    json_object_object_add (ct, "change-id", json_object_new_string (in.change_id));
  if (in.ctk_reason[0])
    json_object_object_add (ct, "reason", json_object_new_string (in.ctk_reason));
  json_object_object_add (j, "change-tracking", ct);
  vdisk_info_free (&in);
  return true;
}

/* The .vmsd path of a .vmx: NAME.vmx -> NAME.vmsd. */
static char *
vmsd_path_of (const char *vmx)
{
  size_t n = strlen (vmx);
  if (ends_with (vmx, ".vmx"))
    n -= 4;
  char *p;
  if (asprintf (&p, "%.*s.vmsd", (int) n, vmx) < 0)
    return NULL;
  return p;
}

/* Text output of vm info from its json model. */
static void
print_info_text (json_object *j)
{
  json_object *v;
  printf ("vmx:          %s\n", json_object_get_string (json_object_object_get (j, "vmx")));
  static const struct { const char *key, *label; } f[] = {
    { "display-name", "displayName:  " }, { "guest-os", "guestOS:      " },
    { "memory-mb", "memSize:      " }, { "cpus", "numvcpus:     " },
    { "uuid-bios", "uuid.bios:    " },
  };
  for (size_t i = 0; i < sizeof f / sizeof *f; i++)
    if (json_object_object_get_ex (j, f[i].key, &v) && v)
      printf ("%s%s%s\n", f[i].label, json_object_get_string (v),
              strcmp (f[i].key, "memory-mb") == 0 ? " MiB" : "");
  printf ("CBT:          %s\n",
          json_object_get_boolean (json_object_object_get (j, "change-tracking"))
          ? "enabled" : "disabled");
  json_object *disks = json_object_object_get (j, "disks");
  size_t nd = json_object_array_length (disks);
  printf ("disks:%s\n", nd ? "" : "        none");
  for (size_t i = 0; i < nd; i++)
    print_disk_text (json_object_array_get_idx (disks, i));
  json_object *snaps = json_object_object_get (j, "snapshots");
  size_t ns = json_object_array_length (snaps);
  printf ("snapshots:%s\n", ns ? "" : "    none");
  for (size_t i = 0; i < ns; i++) {
    json_object *s = json_object_array_get_idx (snaps, i), *name, *cr;
    int depth = json_object_get_int (json_object_object_get (s, "depth"));
    printf ("  %*s%s uid %" PRId64, depth * 2, "",
            json_object_get_boolean (json_object_object_get (s, "current")) ? "*" : "-",
            json_object_get_int64 (json_object_object_get (s, "uid")));
    if (json_object_object_get_ex (s, "name", &name) && name)
      printf (" \"%s\"", json_object_get_string (name));
    printf (" parent %" PRId64,
            json_object_get_int64 (json_object_object_get (s, "parent")));
    if (json_object_object_get_ex (s, "created", &cr))
      printf (", %s", json_object_get_string (cr));
    printf ("%s\n", json_object_get_boolean (json_object_object_get (s, "current"))
            ? "  (current)" : "");
  }
  if (ns && json_object_get_int64 (json_object_object_get (j, "current-snapshot")) == 0)
    printf ("  (no current snapshot: the VM runs on its base disks)\n");
}

/* vm info VMX */
static int
vm_info (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = { { 0, 0, 0, 0 } };
  optind = 1;
  opterr = 0;
  if (getopt_long (argc, argv, "", lo, NULL) != -1)
    return cli_usage_error ("vm info: unknown option '%s'", argv[optind - 1]);
  if (argc - optind != 1)
    return cli_usage_error ("vm info: expected one .vmx argument, got %d", argc - optind);
  const char *vmx = argv[optind];

  struct vb_error e = { 0 };
  struct vmx_config *x = NULL;
  struct vmsd m;
  bool have_m = false;
  struct vmx_disk *vd = NULL;
  size_t nvd = 0;
  struct fileset used = { 0 };
  json_object *j = NULL;
  char *dir = dir_of (vmx), *vmsd = vmsd_path_of (vmx);
  int rc = 1;
  if (!dir || !vmsd) {
    vb_errno (&e, ENOMEM, "cannot read '%s'", vmx);
    goto fail;
  }
  if (vmx_load (vmx, &x, &e) < 0)
    goto fail;

  /* settings: absent keys are left out, malformed ones are errors */
  j = json_object_new_object ();
  json_object_object_add (j, "vmx", json_object_new_string (vmx));
  const char *s;
  if ((s = vmx_display_name (x)))
    json_object_object_add (j, "display-name", json_object_new_string (s));
  if ((s = vmx_guest_os (x)))
    json_object_object_add (j, "guest-os", json_object_new_string (s));
  uint64_t mem;
  int r = vmx_mem_size_mb (x, &mem, &e);
  if (r == 0)
    json_object_object_add (j, "memory-mb", json_object_new_uint64 (mem));
  else if (r != -ENOENT)
    goto fail;
  vb_err_clear (&e);
  unsigned cpus;
  if (vmx_num_vcpus (x, &cpus, &e) < 0)
    goto fail;
  json_object_object_add (j, "cpus", json_object_new_int64 (cpus));
  uint8_t uuid[16];
  r = vmx_uuid_bios (x, uuid, &e);
  if (r == 0) {
    char canon[37];
    vmx_uuid_string (uuid, canon);
    json_object_object_add (j, "uuid-bios", json_object_new_string (vmx_get (x, "uuid.bios")));
    json_object_object_add (j, "uuid", json_object_new_string (canon));
  } else if (r != -ENOENT) {
    goto fail;
  }
  vb_err_clear (&e);
  bool cbt;
  if (vmx_ctk_enabled (x, &cbt, &e) < 0)
    goto fail;
  json_object_object_add (j, "change-tracking", json_object_new_boolean (cbt));

  /* snapshot tree (no .vmsd = no snapshots) */
  struct stat st;
  if (stat (vmsd, &st) == 0) {
    if (vmsd_load (vmsd, &m, &e) < 0)
      goto fail;
  } else if (errno != ENOENT) {
    vb_errno (&e, errno, "cannot read '%s'", vmsd);
    goto fail;
  } else if ((r = vmsd_init (&m)) < 0) {
    vb_errno (&e, -r, "cannot read '%s'", vmsd);
    goto fail;
  }
  have_m = true;

  /* disks, each through the disk library */
  if (vmx_disks (x, &vd, &nvd, &e) < 0)
    goto fail;
  json_object *disks = json_object_new_array ();
  json_object_object_add (j, "disks", disks);
  int bad = 0;
  for (size_t i = 0; i < nvd; i++) {
    json_object *dj;
    if (!disk_json (&vd[i], dir, &used, &dj))
      bad++;
    json_object_array_add (disks, dj);
  }

  json_object *snaps = json_object_new_array ();
  snapshots_json (&m, 0, snaps, 0);
  json_object_object_add (j, "snapshots", snaps);
  json_object_object_add (j, "current-snapshot", json_object_new_int64 (m.current));

  /* layers the snapshots keep (branches off the current path too) */
  for (size_t i = 0; i < m.n; i++)
    for (size_t k = 0; k < m.snap[i].n_disks; k++) {
      char *p = in_dir (dir, m.snap[i].disks[k].file_name);
      if (p && !fileset_has (&used, p))
        fileset_add_chain (&used, p);
      free (p);
    }
  json_object *stray = json_object_new_array ();
  json_object_object_add (j, "unreferenced-files", stray);
  if (find_stray_deltas (dir, &used, stray, &e) < 0)
    goto fail;
  size_t nstray = json_object_array_length (stray);
  json_object_object_add (j, "consolidation-needed", json_object_new_boolean (nstray > 0));

  if (c->json)
    cli_json_print (json_object_get (j));
  else
    print_info_text (j);
  if (nstray) {
    fprintf (stderr, "vmback: warning: consolidation needed: %zu delta file%s in '%s' "
             "%s not used by any disk or snapshot:", nstray, nstray == 1 ? "" : "s",
             dir, nstray == 1 ? "is" : "are");
    for (size_t i = 0; i < nstray; i++)
      fprintf (stderr, " %s", json_object_get_string (json_object_array_get_idx (stray, i)));
    fputc ('\n', stderr);
  }
  if (bad)
    fprintf (stderr, "vmback: %d of %zu disk%s of '%s' cannot be opened\n", bad, nvd,
             nvd == 1 ? "" : "s", vmx);
  rc = bad ? 1 : 0;
  goto out;

fail:
  rc = cli_fail (&e);
out:
  json_object_put (j);
  vmx_disks_free (vd, nvd);
  if (have_m)
    vmsd_free (&m);
  vmx_free (x);
  free (used.v);
  free (dir);
  free (vmsd);
  return rc;
}

/* --- command table ------------------------------------------------------ */

struct vm_sub {
  const char *name;
  int (*fn) (struct cli *c, int argc, char **argv);
  const char *usage;
};

static const struct vm_sub subs[] = {
  { "info",   vm_info,   "VMX" },
  { "create", vm_create, "DIR/NAME.vmx [--disk SIZE[:TYPE]]... [--memory MB] [--cpus N] "
                         "[--guest-os ID] [--ctk] [--esxi]" },
  { "snapshot", cmd_vm_snapshot, "create|delete|delete-all|revert|list|consolidate VMX [NAME] "
                                 "(vmback vm snapshot --help)" },
};

/* Usage of the vm command. */
static int
vm_usage (FILE *f, int status)
{
  fprintf (f, "usage: vmback vm SUBCOMMAND ...\n");
  for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
    fprintf (f, "  vmback vm %-7s %s\n", subs[i].name, subs[i].usage);
  fprintf (f, "Disks are monolithicSparse (hosted), or vmfs with --esxi; TYPE may be\n"
           "monolithicSparse, monolithicFlat, vmfs, twoGbMaxExtentSparse or\n"
           "twoGbMaxExtentFlat.  SIZE takes K, M, G, T suffixes (powers of 1024).\n");
  return status;
}

/* vmback vm SUBCOMMAND ... */
int
cmd_vm (struct cli *c, int argc, char **argv)
{
  if (argc < 2)
    return vm_usage (stderr, 2);
  if (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0)
    return vm_usage (stdout, 0);
  for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
    if (strcmp (argv[1], subs[i].name) == 0) {
      if (subs[i].fn != cmd_vm_snapshot && wants_help (argc - 1, argv + 1)) {
        printf ("usage: vmback vm %s %s\n", subs[i].name, subs[i].usage);
        return 0;
      }
      return subs[i].fn (c, argc - 1, argv + 1);
    }
  cli_usage_error ("vm: unknown subcommand '%s'", argv[1]);
  return vm_usage (stderr, 2);
}
