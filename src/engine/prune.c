/* vmback engine: prune restore points by a retention policy.
 *
 * The policy is the one borg and restic users know: keep the N newest
 * points, and the newest point of each of the N most recent hours, days,
 * ISO weeks, months and years that have points.  Each source (disk or VM)
 * is pruned on its own.  Removing a point deletes its manifest first, so
 * it disappears atomically; its chunks are freed by gc. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine-int.h"

/* Bucket string of a time for a rule ("%Y-%m-%d" etc.). */
static void
bucket (int64_t t, const char *fmt, char *buf, size_t len)
{
  time_t tt = (time_t) t;
  struct tm tm;
  gmtime_r (&tt, &tm);
  strftime (buf, len, fmt, &tm);
}

struct rule {
  const char *name;
  const char *fmt;     /* NULL = keep-last */
  int n;
};

/* Apply the rules to pts[lo..hi) (one source, oldest first). */
static void
apply_rules (const struct manifest *pts, size_t lo, size_t hi,
             const struct rule *rules, size_t nrules, char (*why)[96])
{
  for (size_t k = 0; k < nrules; k++) {
    int left = rules[k].n;
    char last[32] = "";
    for (size_t i = hi; i-- > lo && left > 0;) {     /* newest first */
      if (rules[k].fmt) {
        char b[32];
        bucket (pts[i].finished ? pts[i].finished : pts[i].started, rules[k].fmt, b, sizeof b);
        if (strcmp (b, last) == 0)
          continue;
        snprintf (last, sizeof last, "%s", b);
      }
      size_t l = strlen (why[i]);
      snprintf (why[i] + l, 96 - l, "%s%s", l ? "," : "", rules[k].name);
      left--;
    }
  }
}

/* Compare by source name, then keep list order (stable by index). */
static int
by_source (const void *a, const void *b)
{
  const struct manifest *x = a, *y = b;
  int c = strcmp (x->source_name, y->source_name);
  if (c)
    return c;
  if (x->finished != y->finished)
    return x->finished < y->finished ? -1 : 1;
  return strcmp (x->id, y->id);
}

/* Prune (see engine.h). */
int
engine_prune (struct repo *r, const struct engine_prune_opts *o,
              engine_report_fn report, void *opaque, uint64_t *kept,
              uint64_t *removed, struct vb_error *err)
{
  const struct rule rules[] = {
    { "last", NULL, o->keep_last }, { "hourly", "%Y-%m-%dT%H", o->keep_hourly },
    { "daily", "%Y-%m-%d", o->keep_daily }, { "weekly", "%G-W%V", o->keep_weekly },
    { "monthly", "%Y-%m", o->keep_monthly }, { "yearly", "%Y", o->keep_yearly },
  };
  int any = 0;
  for (size_t k = 0; k < sizeof rules / sizeof *rules; k++) {
    if (rules[k].n < 0)
      return vb_err (err, EINVAL, "--keep-%s must not be negative", rules[k].name);
    any |= rules[k].n > 0;
  }
  if (!any)
    return vb_err (err, EINVAL, "no retention rule given (e.g. --keep-last 7 --keep-daily 14); "
                   "refusing to remove every point");
  *kept = *removed = 0;
  int rc = repo_lock (r, !o->dry_run, "prune", err);
  if (rc < 0)
    return rc;
  struct manifest *pts;
  size_t np;
  if ((rc = repo_list_points (r, o->source, &pts, &np, err)) < 0)
    goto out;
  if (np > 1)
    qsort (pts, np, sizeof *pts, by_source);
  char (*why)[96] = calloc (np ? np : 1, sizeof *why);
  if (!why) {
    free (pts);
    rc = vb_errno (err, ENOMEM, "prune");
    goto out;
  }
  for (size_t lo = 0; lo < np;) {
    size_t hi = lo;
    while (hi < np && strcmp (pts[hi].source_name, pts[lo].source_name) == 0)
      hi++;
    apply_rules (pts, lo, hi, rules, sizeof rules / sizeof *rules, why);
    lo = hi;
  }
  for (size_t i = 0; i < np && rc == 0; i++) {
    char line[512];
    if (why[i][0]) {
      snprintf (line, sizeof line, "keep   %s (%s)", pts[i].id, why[i]);
      (*kept)++;
    } else {
      snprintf (line, sizeof line, "%s %s", o->dry_run ? "would remove" : "remove", pts[i].id);
      if (!o->dry_run)
        rc = repo_delete_point (r, pts[i].id, err);
      (*removed)++;
    }
    if (report)
      report (opaque, line);
  }
  free (why);
  free (pts);
out:
  repo_unlock (r);
  return rc;
}
