/* vmback CLI: errors, number parsing, JSON output and the progress bar. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* One-line error from a library call. */
int
cli_fail (const struct vb_error *e)
{
  fprintf (stderr, "vmback: %s\n", e->msg[0] ? e->msg : strerror (e->code));
  return 1;
}

/* One-line usage error.  The value of a quoted '--option=value' is
 * never echoed: it may be a secret typed as an option that does not
 * exist (e.g. a passphrase, which is only taken from the environment, a
 * key file or the prompt). */
int
cli_usage_error (const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  char *p = strstr (msg, "'--");
  char *q = p ? strrchr (p + 1, '\'') : NULL;   /* the value may hold quotes */
  char *eq = p ? strchr (p, '=') : NULL;
  if (q && eq && eq < q)
    memmove (eq + 1, q, strlen (q) + 1);        /* '--opt=' + rest */
  fprintf (stderr, "vmback: %s\n", msg);
  return 2;
}

/* Plain unsigned number (decimal, or hex with 0x). */
int
cli_parse_u64 (const char *s, uint64_t *out)
{
  char *end;
  if (!s || !*s || *s == '-')
    return -EINVAL;
  errno = 0;
  unsigned long long v = strtoull (s, &end, 0);
  if (errno || *end)
    return -EINVAL;
  *out = v;
  return 0;
}

/* Size with an optional K/M/G/T/P suffix (powers of 1024, "iB"/"B" allowed). */
int
cli_parse_size (const char *s, uint64_t *out)
{
  char *end;
  if (!s || !*s || *s == '-')
    return -EINVAL;
  errno = 0;
  double v = strtod (s, &end);
  if (errno || end == s || v < 0)
    return -EINVAL;
  uint64_t mul = 1;
  switch (toupper ((unsigned char) *end)) {
  case 'K': mul = 1ULL << 10; end++; break;
  case 'M': mul = 1ULL << 20; end++; break;
  case 'G': mul = 1ULL << 30; end++; break;
  case 'T': mul = 1ULL << 40; end++; break;
  case 'P': mul = 1ULL << 50; end++; break;
  case 'B': case '\0': break;
  default: return -EINVAL;
  }
  if (*end == 'i')
    end++;
  if (toupper ((unsigned char) *end) == 'B')
    end++;
  if (*end)
    return -EINVAL;
  double b = v * (double) mul;
  if (b > 18446744073709549568.0)
    return -ERANGE;
  *out = (uint64_t) b;
  return 0;
}

/* Pretty-print a JSON object on stdout and free it. */
void
cli_json_print (json_object *o)
{
  puts (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                                        | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
}

/* Monotonic nanoseconds. */
static uint64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Start a progress bar (shown only on a terminal, without -q/--json). */
void
cli_progress_init (struct cli_progress *p, const struct cli *c, const char *what)
{
  memset (p, 0, sizeof *p);
  p->c = c;
  p->what = what;
  p->start_ns = now_ns ();
}

/* Human-readable bytes. */
static void
human (char *buf, size_t len, double v)
{
  const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    i++;
  }
  snprintf (buf, len, "%.1f %s", v, u[i]);
}

/* Progress callback: bytes done of total, rate and ETA, at most 10/s. */
void
cli_progress_cb (void *opaque, uint64_t done, uint64_t total)
{
  struct cli_progress *p = opaque;
  if (p->c->quiet || p->c->json || !isatty (STDERR_FILENO))
    return;
  uint64_t t = now_ns ();
  if (done < total && t - p->last_ns < 100000000u)
    return;
  p->last_ns = t;
  double secs = (double) (t - p->start_ns) / 1e9;
  double rate = secs > 0 ? (double) done / secs : 0;
  double eta = rate > 0 ? (double) (total - done) / rate : 0;
  char d[32], tt[32], r[32];
  human (d, sizeof d, (double) done);
  human (tt, sizeof tt, (double) total);
  human (r, sizeof r, rate);
  int pct = total ? (int) (done * 100 / total) : 100;
  char bar[31];
  int fill = pct * 30 / 100;
  for (int i = 0; i < 30; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[30] = '\0';
  fprintf (stderr, "\r%s [%s] %3d%% %s / %s  %s/s  ETA %ds  ", p->what, bar, pct,
           d, tt, r, (int) eta);
  p->shown = true;
}

/* End the progress line. */
void
cli_progress_done (struct cli_progress *p)
{
  if (p->shown)
    fputc ('\n', stderr);
  p->shown = false;
}
