/* vmback disk: the virtual disk subcommands (VixDiskLib analogs). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

struct disk_sub {
  const char *name;
  int (*fn) (struct cli *c, int argc, char **argv);
  const char *usage;
};

static const struct disk_sub *find_sub (const char *name);

/* Usage line of one subcommand. */
static int
sub_usage (const char *name, FILE *f, int status)
{
  const struct disk_sub *s = find_sub (name);
  fprintf (f, "usage: vmback disk %s %s\n", name, s ? s->usage : "");
  return status;
}

/* Is argv asking for help? */
static bool
wants_help (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "-h") == 0 || strcmp (argv[i], "--help") == 0)
      return true;
  return false;
}

/* Parse options common to the subcommands into named slots. */
struct dopts {
  const char *type, *size, *offset, *length, *adapter, *parent, *grain;
  bool ctk, repair, zero;
  int nargs;
  char **args;
};

/* getopt_long over a subcommand's argv; unknown options are errors. */
static int
parse_opts (const char *sub, int argc, char **argv, struct dopts *o)
{
  static const struct option lo[] = {
    { "type", required_argument, 0, 't' }, { "size", required_argument, 0, 's' },
    { "offset", required_argument, 0, 'o' }, { "length", required_argument, 0, 'l' },
    { "adapter", required_argument, 0, 'a' }, { "parent", required_argument, 0, 'p' },
    { "grain", required_argument, 0, 'g' }, { "ctk", no_argument, 0, 'c' },
    { "repair", no_argument, 0, 'r' }, { "zero", no_argument, 0, 'z' },
    { 0, 0, 0, 0 },
  };
  memset (o, 0, sizeof *o);
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long (argc, argv, "t:s:o:l:a:p:g:crz", lo, NULL)) != -1) {
    switch (ch) {
    case 't': o->type = optarg; break;
    case 's': o->size = optarg; break;
    case 'o': o->offset = optarg; break;
    case 'l': o->length = optarg; break;
    case 'a': o->adapter = optarg; break;
    case 'p': o->parent = optarg; break;
    case 'g': o->grain = optarg; break;
    case 'c': o->ctk = true; break;
    case 'r': o->repair = true; break;
    case 'z': o->zero = true; break;
    default:
      cli_usage_error ("disk %s: unknown or incomplete option '%s'", sub, argv[optind - 1]);
      return -1;
    }
  }
  o->nargs = argc - optind;
  o->args = argv + optind;
  return 0;
}

/* Expect exactly n positional arguments. */
static int
need_args (const char *sub, const struct dopts *o, int n)
{
  if (o->nargs != n) {
    cli_usage_error ("disk %s: expected %d file argument%s, got %d", sub, n,
                     n == 1 ? "" : "s", o->nargs);
    sub_usage (sub, stderr, 2);
    return -1;
  }
  return 0;
}

/* Type from --type, else from the file name (.vmdk -> monolithicSparse). */
static int
pick_type (const char *opt, const char *path, enum vdisk_type *t)
{
  if (opt) {
    int v = vdisk_type_from_name (opt);
    if (v < 0) {
      cli_usage_error ("unknown disk type '%s' (raw, monolithicSparse, monolithicFlat, "
                       "vmfs, twoGbMaxExtentSparse, twoGbMaxExtentFlat, streamOptimized, "
                       "vmfsSparse)", opt);
      return -1;
    }
    *t = (enum vdisk_type) v;
    return 0;
  }
  size_t n = strlen (path);
  *t = n > 5 && strcasecmp (path + n - 5, ".vmdk") == 0
    ? VDISK_TYPE_MONOLITHIC_SPARSE : VDISK_TYPE_RAW;
  return 0;
}

/* disk info FILE */
static int
disk_info (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("info", argc, argv, &o) < 0 || need_args ("info", &o, 1) < 0)
    return 2;
  struct vdisk_info in;
  struct vb_error e = { 0 };
  if (vdisk_get_info (o.args[0], &in, &e) < 0)
    return cli_fail (&e);
  const char *ctks = in.ctk_state == 1 ? "valid" : in.ctk_state < 0 ? "invalid" : "off";
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "file", json_object_new_string (o.args[0]));
    json_object_object_add (j, "format", json_object_new_string (in.type == VDISK_TYPE_RAW ? "raw" : "vmdk"));
    json_object_object_add (j, "createType", json_object_new_string (vdisk_type_name (in.type)));
    json_object_object_add (j, "virtual-size", json_object_new_uint64 (in.size));
    json_object_object_add (j, "allocated-bytes", json_object_new_uint64 (in.allocated));
    json_object_object_add (j, "file-bytes", json_object_new_uint64 (in.file_bytes));
    char cid[16];
    if (in.type != VDISK_TYPE_RAW) {
      snprintf (cid, sizeof cid, "%08x", in.cid);
      json_object_object_add (j, "cid", json_object_new_string (cid));
      snprintf (cid, sizeof cid, "%08x", in.parent_cid);
      json_object_object_add (j, "parent-cid", json_object_new_string (cid));
      json_object_object_add (j, "uuid", json_object_new_string (in.uuid));
      json_object_object_add (j, "adapter-type", json_object_new_string (in.adapter));
    }
    json_object *ch = json_object_new_array ();
    for (int i = 0; i < in.chain_len; i++)
      json_object_array_add (ch, json_object_new_string (in.chain[i]));
    json_object_object_add (j, "chain", ch);
    json_object *ex = json_object_new_array ();
    for (int i = 0; i < in.n_extents; i++)
      json_object_array_add (ex, json_object_new_string (in.extents[i]));
    json_object_object_add (j, "extents", ex);
    json_object *ct = json_object_new_object ();
    json_object_object_add (ct, "state", json_object_new_string (ctks));
    if (in.ctk_path[0])
      json_object_object_add (ct, "path", json_object_new_string (in.ctk_path));
    if (in.change_id[0])
      json_object_object_add (ct, "change-id", json_object_new_string (in.change_id));
    if (in.ctk_reason[0])
      json_object_object_add (ct, "reason", json_object_new_string (in.ctk_reason));
    json_object_object_add (j, "change-tracking", ct);
    cli_json_print (j);
  } else {
    printf ("file:            %s\n", o.args[0]);
    printf ("createType:      %s\n", vdisk_type_name (in.type));
    printf ("virtual size:    %" PRIu64 " bytes\n", in.size);
    printf ("allocated:       %" PRIu64 " bytes\n", in.allocated);
    printf ("on host:         %" PRIu64 " bytes\n", in.file_bytes);
    if (in.type != VDISK_TYPE_RAW) {
      printf ("CID:             %08x\n", in.cid);
      printf ("parentCID:       %08x\n", in.parent_cid);
      if (in.uuid[0])
        printf ("uuid:            %s\n", in.uuid);
      if (in.adapter[0])
        printf ("adapter:         %s\n", in.adapter);
    }
    for (int i = 0; i < in.chain_len; i++)
      printf ("%s %s\n", i == 0 ? "chain:          " : "                ", in.chain[i]);
    for (int i = 0; i < in.n_extents; i++)
      printf ("%s %s\n", i == 0 ? "extents:        " : "                ", in.extents[i]);
    printf ("change tracking: %s%s%s%s%s\n", ctks, in.change_id[0] ? " " : "", in.change_id,
            in.ctk_reason[0] ? ": " : "", in.ctk_reason);
  }
  vdisk_info_free (&in);
  return 0;
}

/* disk create --type T --size S [--adapter A] [--grain N] [--ctk] [--parent P] FILE */
static int
disk_create (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("create", argc, argv, &o) < 0 || need_args ("create", &o, 1) < 0)
    return 2;
  struct vdisk_create_opts co = { .adapter_type = o.adapter, .ctk = o.ctk, .parent = o.parent };
  enum vdisk_type t;
  if (pick_type (o.type, o.args[0], &t) < 0)
    return 2;
  co.type = t;
  if (!o.parent && (!o.size || cli_parse_size (o.size, &co.size) < 0))
    return cli_usage_error ("disk create: --size SIZE is required (e.g. 10G)");
  uint64_t g;
  if (o.grain) {
    if (cli_parse_u64 (o.grain, &g) < 0 || g == 0 || g > 65536 || (g & (g - 1)))
      return cli_usage_error ("disk create: --grain takes a power of two number of sectors");
    co.grain_sectors = (uint32_t) g;
  }
  struct vb_error e = { 0 };
  if ((o.parent ? vdisk_create_child (o.parent, o.args[0], o.type ? t : VDISK_TYPE_RAW, &e)
       : vdisk_create (o.args[0], &co, &e)) < 0)
    return cli_fail (&e);
  if (o.parent && o.ctk && vdisk_ctk_enable (o.args[0], &e) < 0)
    return cli_fail (&e);
  return 0;
}

/* disk convert [--type T] [--ctk] SRC DST */
static int
disk_convert (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("convert", argc, argv, &o) < 0 || need_args ("convert", &o, 2) < 0)
    return 2;
  struct vdisk_create_opts co = { .adapter_type = o.adapter, .ctk = o.ctk };
  enum vdisk_type t;
  if (pick_type (o.type, o.args[1], &t) < 0)
    return 2;
  co.type = t;
  struct vb_error e = { 0 };
  struct cli_progress p;
  cli_progress_init (&p, c, "convert");
  int r = vdisk_clone (o.args[0], o.args[1], &co, cli_progress_cb, &p, &e);
  cli_progress_done (&p);
  return r < 0 ? cli_fail (&e) : 0;
}

/* disk read FILE --offset N --length N > out */
static int
disk_read (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("read", argc, argv, &o) < 0 || need_args ("read", &o, 1) < 0)
    return 2;
  uint64_t off = 0, len = UINT64_MAX;
  if ((o.offset && cli_parse_size (o.offset, &off) < 0)
      || (o.length && cli_parse_size (o.length, &len) < 0))
    return cli_usage_error ("disk read: bad --offset or --length");
  struct vdisk *d;
  struct vb_error e = { 0 };
  if (vdisk_open (o.args[0], VDISK_OPEN_RDONLY, &d, &e) < 0)
    return cli_fail (&e);
  if (len == UINT64_MAX)
    len = off < vdisk_size (d) ? vdisk_size (d) - off : 0;
  size_t bs = 1 << 20;
  char *buf = malloc (bs);
  int r = buf ? 0 : vb_errno (&e, ENOMEM, "read");
  while (r == 0 && len > 0) {
    size_t n = len < bs ? (size_t) len : bs;
    r = vdisk_pread (d, buf, n, off, &e);
    if (r == 0 && fwrite (buf, 1, n, stdout) != n)
      r = vb_errno (&e, errno, "cannot write to standard output");
    off += n;
    len -= n;
  }
  free (buf);
  vdisk_close (d, r ? NULL : &e);
  if (fflush (stdout) != 0 && r == 0)
    r = vb_errno (&e, errno, "cannot write to standard output");
  return r < 0 || e.code ? cli_fail (&e) : 0;
}

/* disk write FILE --offset N < in   (or --zero --length N) */
static int
disk_write (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("write", argc, argv, &o) < 0 || need_args ("write", &o, 1) < 0)
    return 2;
  uint64_t off = 0, len = 0;
  if ((o.offset && cli_parse_size (o.offset, &off) < 0)
      || (o.length && cli_parse_size (o.length, &len) < 0))
    return cli_usage_error ("disk write: bad --offset or --length");
  if (o.zero && !o.length)
    return cli_usage_error ("disk write: --zero needs --length");
  struct vdisk *d;
  struct vb_error e = { 0 };
  if (vdisk_open (o.args[0], VDISK_OPEN_RDWR, &d, &e) < 0)
    return cli_fail (&e);
  int r = 0;
  if (o.zero) {
    r = vdisk_zero (d, len, off, &e);
  } else {
    size_t bs = 1 << 20;
    char *buf = malloc (bs);
    if (!buf)
      r = vb_errno (&e, ENOMEM, "write");
    while (r == 0) {
      size_t n = fread (buf, 1, bs, stdin);
      if (n > 0)
        r = vdisk_pwrite (d, buf, n, off, &e);
      off += n;
      if (n < bs) {
        if (ferror (stdin))
          r = vb_errno (&e, errno ? errno : EIO, "cannot read standard input");
        break;
      }
    }
    free (buf);
  }
  int rc = vdisk_close (d, &e);
  return r < 0 || rc < 0 ? cli_fail (&e) : 0;
}

/* disk grow FILE --size S */
static int
disk_grow (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  uint64_t sz;
  if (parse_opts ("grow", argc, argv, &o) < 0 || need_args ("grow", &o, 1) < 0)
    return 2;
  if (!o.size || cli_parse_size (o.size, &sz) < 0)
    return cli_usage_error ("disk grow: --size SIZE is required");
  struct vb_error e = { 0 };
  return vdisk_grow (o.args[0], sz, &e) < 0 ? cli_fail (&e) : 0;
}

/* Subcommands taking exactly one file and calling one library function. */
static int
one_file (const char *sub, int argc, char **argv,
          int (*fn) (const char *, struct vb_error *))
{
  struct dopts o;
  if (parse_opts (sub, argc, argv, &o) < 0 || need_args (sub, &o, 1) < 0)
    return 2;
  struct vb_error e = { 0 };
  return fn (o.args[0], &e) < 0 ? cli_fail (&e) : 0;
}

static int disk_shrink (struct cli *c, int argc, char **argv)
{ return one_file ("shrink", argc, argv, vdisk_shrink); }
static int disk_defrag (struct cli *c, int argc, char **argv)
{ return one_file ("defrag", argc, argv, vdisk_defragment); }
static int disk_rm (struct cli *c, int argc, char **argv)
{ return one_file ("rm", argc, argv, vdisk_unlink); }
static int disk_merge (struct cli *c, int argc, char **argv)
{ return one_file ("merge", argc, argv, vdisk_merge); }

/* disk rename FROM TO */
static int
disk_rename (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("rename", argc, argv, &o) < 0 || need_args ("rename", &o, 2) < 0)
    return 2;
  struct vb_error e = { 0 };
  return vdisk_rename (o.args[0], o.args[1], &e) < 0 ? cli_fail (&e) : 0;
}

/* disk child PARENT CHILD [--type T] [--ctk] */
static int
disk_child (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("child", argc, argv, &o) < 0 || need_args ("child", &o, 2) < 0)
    return 2;
  enum vdisk_type t = VDISK_TYPE_RAW;
  if (o.type && pick_type (o.type, o.args[1], &t) < 0)
    return 2;
  struct vb_error e = { 0 };
  if (vdisk_create_child (o.args[0], o.args[1], t, &e) < 0)
    return cli_fail (&e);
  if (o.ctk && vdisk_ctk_enable (o.args[1], &e) < 0)
    return cli_fail (&e);
  return 0;
}

/* Print an extent list as "OFFSET LENGTH" lines or JSON. */
static void
print_extents (const struct cli *c, const struct vdisk_extent_list *l,
               const char *key)
{
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object *a = json_object_new_array ();
    uint64_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
      json_object *x = json_object_new_object ();
      json_object_object_add (x, "offset", json_object_new_uint64 (l->v[i].offset));
      json_object_object_add (x, "length", json_object_new_uint64 (l->v[i].length));
      json_object_array_add (a, x);
      total += l->v[i].length;
    }
    json_object_object_add (j, key, a);
    json_object_object_add (j, "total-bytes", json_object_new_uint64 (total));
    cli_json_print (j);
    return;
  }
  for (size_t i = 0; i < l->n; i++)
    printf ("%" PRIu64 " %" PRIu64 "\n", l->v[i].offset, l->v[i].length);
}

/* disk map FILE: allocated extents of the chain. */
static int
disk_map (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("map", argc, argv, &o) < 0 || need_args ("map", &o, 1) < 0)
    return 2;
  struct vdisk_extent_list l = { 0 };
  struct vb_error e = { 0 };
  if (vdisk_query_changed (o.args[0], "*", 0, &l, &e) < 0)
    return cli_fail (&e);
  print_extents (c, &l, "extents");
  vdisk_extent_list_free (&l);
  return 0;
}

/* Collect check reports. */
struct reports { json_object *arr; bool json; };

/* Print one problem found by check. */
static void
report_line (void *opaque, const char *msg)
{
  struct reports *r = opaque;
  if (r->json)
    json_object_array_add (r->arr, json_object_new_string (msg));
  else
    printf ("%s\n", msg);
}

/* disk check FILE [--repair] */
static int
disk_check (struct cli *c, int argc, char **argv)
{
  struct dopts o;
  if (parse_opts ("check", argc, argv, &o) < 0 || need_args ("check", &o, 1) < 0)
    return 2;
  struct reports rep = { .arr = json_object_new_array (), .json = c->json };
  struct vb_error e = { 0 };
  int n = vdisk_check (o.args[0], o.repair, report_line, &rep, &e);
  if (n < 0) {
    json_object_put (rep.arr);
    return cli_fail (&e);
  }
  /* after a repair, what is left decides the exit status */
  int left = n;
  if (o.repair && n > 0) {
    struct vb_error e2 = { 0 };
    left = vdisk_check (o.args[0], false, NULL, NULL, &e2);
    if (left < 0) {
      json_object_put (rep.arr);
      return cli_fail (&e2);
    }
  }
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "file", json_object_new_string (o.args[0]));
    json_object_object_add (j, "problems", json_object_new_int (n));
    json_object_object_add (j, "remaining", json_object_new_int (left));
    json_object_object_add (j, "messages", rep.arr);
    json_object_object_add (j, "repaired", json_object_new_boolean (o.repair));
    cli_json_print (j);
  } else {
    json_object_put (rep.arr);
    if (!c->quiet)
      printf ("%s: %d problem%s found%s\n", o.args[0], n, n == 1 ? "" : "s",
              o.repair && n ? (left ? ", some could not be repaired" : ", all repaired") : "");
  }
  return left > 0 ? 1 : 0;
}

static const struct disk_sub subs[] = {
  { "info",    disk_info,    "FILE" },
  { "create",  disk_create,  "--type TYPE --size SIZE [--adapter A] [--grain SECTORS] [--ctk] FILE" },
  { "convert", disk_convert, "[--type TYPE] [--ctk] SRC DST   (type from DST: .vmdk=monolithicSparse, else raw)" },
  { "read",    disk_read,    "FILE [--offset N] [--length N] > OUT" },
  { "write",   disk_write,   "FILE [--offset N] < IN  |  FILE --zero --offset N --length N" },
  { "grow",    disk_grow,    "FILE --size SIZE" },
  { "shrink",  disk_shrink,  "FILE" },
  { "defrag",  disk_defrag,  "FILE" },
  { "rename",  disk_rename,  "FROM TO" },
  { "rm",      disk_rm,      "FILE" },
  { "child",   disk_child,   "PARENT CHILD [--type monolithicSparse|vmfsSparse|twoGbMaxExtentSparse] [--ctk]" },
  { "merge",   disk_merge,   "CHILD" },
  { "map",     disk_map,     "FILE" },
  { "check",   disk_check,   "FILE [--repair]" },
};

/* Look up a subcommand by name. */
static const struct disk_sub *
find_sub (const char *name)
{
  for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
    if (strcmp (subs[i].name, name) == 0)
      return &subs[i];
  return NULL;
}

/* Usage of the whole disk command. */
static int
disk_usage (FILE *f, int status)
{
  fprintf (f, "usage: vmback disk SUBCOMMAND ...\n");
  for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
    fprintf (f, "  vmback disk %-8s %s\n", subs[i].name, subs[i].usage);
  fprintf (f, "SIZE and offsets take K, M, G, T suffixes (powers of 1024).\n");
  return status;
}

/* vmback disk SUBCOMMAND ... */
int
cmd_disk (struct cli *c, int argc, char **argv)
{
  if (argc < 2)
    return disk_usage (stderr, 2);
  if (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0)
    return disk_usage (stdout, 0);
  const struct disk_sub *s = find_sub (argv[1]);
  if (!s) {
    cli_usage_error ("disk: unknown subcommand '%s'", argv[1]);
    return disk_usage (stderr, 2);
  }
  if (wants_help (argc - 1, argv + 1))
    return sub_usage (s->name, stdout, 0);
  return s->fn (c, argc - 1, argv + 1);
}
