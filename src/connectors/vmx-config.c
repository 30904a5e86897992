/* VMware configuration dictionaries (.vmx, .vmsd syntax): a line-keeping
 * parser and writer, typed getters and the disk list.  See vmx-config.h
 * and docs/vmx-vmsd.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connectors/vmx-config.h"
#include "vdisk/vdisk-int.h"

/* One line of the file.  `raw` is the exact text including its "\n" (the
 * last line may lack one).  Key/value lines also have the key as spelled,
 * the decoded value and the span [vstart, vend) of the value token in raw
 * (with its quotes), so vmx_set can replace just that span. */
struct vmx_line {
  char *raw;
  size_t len;
  char *key;       /* NULL for blank and comment lines */
  char *value;     /* decoded, NUL-terminated */
  size_t vstart, vend;
};

struct vmx_config {
  char *name;
  struct vmx_line *l;
  size_t n, cap;
  size_t total;    /* sum of line lengths = formatted size */
  bool crlf;       /* the file's first line ends in "\r\n" */
};

/* Whitespace inside a line ('\r' included: it precedes "\n" in CRLF
 * files and is kept as part of the raw line). */
static bool
is_ws (unsigned char ch)
{
  return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* A byte allowed in a key: printable ASCII or UTF-8 (>= 0x80), except
 * '=', '"', '#' which delimit keys, and whitespace. */
static bool
is_key_char (unsigned char ch)
{
  return (ch > 0x20 && ch < 0x7f && ch != '=' && ch != '"' && ch != '#')
    || ch >= 0x80;
}

/* Value of a hex digit, -1 if ch is none. */
static int
hexval (unsigned char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Copy s into dst (size n) for an error message: non-printable bytes
 * become '?', so a message stays on one line whatever the input holds. */
static const char *
safe_str (char *dst, size_t n, const char *s, size_t len)
{
  size_t j = 0;
  for (size_t i = 0; i < len && j + 1 < n; i++) {
    unsigned char ch = (unsigned char) s[i];
    dst[j++] = (ch >= 0x20 && ch != 0x7f) ? (char) ch : '?';
  }
  dst[j] = '\0';
  return dst;
}

/* Decode VMware's |XX escapes of a value (len bytes) into a malloc'd
 * string.  A '|' not followed by two hex digits is kept literally.
 * Returns NULL on ENOMEM; *nul set when an escape names a NUL byte
 * (which a C string cannot hold: rejected by the callers). */
static char *
decode_value (const char *s, size_t len, bool *nul)
{
  char *out = malloc (len + 1);   /* decoding never grows the text */
  if (!out)
    return NULL;
  size_t j = 0;
  *nul = false;
  for (size_t i = 0; i < len; i++) {
    /* an escape needs two more bytes: i + 2 <= len - 1 */
    if (s[i] == '|' && i + 2 < len
        && hexval ((unsigned char) s[i + 1]) >= 0
        && hexval ((unsigned char) s[i + 2]) >= 0) {
      int v = hexval ((unsigned char) s[i + 1]) * 16
        + hexval ((unsigned char) s[i + 2]);
      if (v == 0)
        *nul = true;
      out[j++] = (char) v;
      i += 2;
    } else {
      out[j++] = s[i];
    }
  }
  out[j] = '\0';
  return out;
}

/* True for bytes vmx_set writes as |XX: the quote, the escape character
 * itself, '#' (as VMware does) and control bytes. */
static bool
needs_escape (unsigned char ch)
{
  return ch == '"' || ch == '|' || ch == '#' || ch < 0x20 || ch == 0x7f;
}

/* Encode a value for writing (without the quotes); malloc'd, NULL on
 * ENOMEM.  At most 3 bytes per input byte: 3 * strlen + 1. */
static char *
encode_value (const char *v, size_t *outlen)
{
  size_t len = strlen (v);
  if (len > (SIZE_MAX - 1) / 3)
    return NULL;
  char *out = malloc (3 * len + 1);
  if (!out)
    return NULL;
  size_t j = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char) v[i];
    if (needs_escape (ch)) {
      snprintf (out + j, 4, "|%02X", ch);
      j += 3;
    } else {
      out[j++] = (char) ch;
    }
  }
  out[j] = '\0';
  *outlen = j;
  return out;
}

/* Public wrapper of encode_value for writers of whole files. */
char *
vmx_encode_value (const char *value)
{
  size_t n;
  return encode_value (value, &n);
}

/* Free a line's strings and zero it. */
static void
line_clear (struct vmx_line *ln)
{
  free (ln->raw);
  free (ln->key);
  free (ln->value);
  memset (ln, 0, sizeof *ln);
}

/* Split one line's content p[0..len) (without its "\n") into key and
 * value.  On a syntax error writes the reason to why and returns -EINVAL;
 * -ENOMEM on allocation failure.  Blank and comment lines get key NULL. */
static int
parse_line (const char *p, size_t len, struct vmx_line *ln, char *why,
            size_t whylen)
{
  char kbuf[80];
  size_t i = 0;
  while (i < len && is_ws ((unsigned char) p[i]))
    i++;
  if (i == len || p[i] == '#')
    return 0;
  size_t ks = i;
  while (i < len && is_key_char ((unsigned char) p[i]))
    i++;
  size_t klen = i - ks;
  if (klen == 0) {
    if (p[i] == '=')
      snprintf (why, whylen, "missing key before '='");
    else if (p[i] == '"')
      snprintf (why, whylen, "quoted text where a key was expected");
    else
      snprintf (why, whylen, "invalid byte 0x%02x in key",
                (unsigned char) p[i]);
    return -EINVAL;
  }
  safe_str (kbuf, sizeof kbuf, p + ks, klen < 64 ? klen : 64);
  if (klen > VMX_MAX_KEY) {
    snprintf (why, whylen, "key '%s...' is longer than %d bytes", kbuf,
              VMX_MAX_KEY);
    return -EINVAL;
  }
  if (i < len && !is_ws ((unsigned char) p[i]) && p[i] != '=') {
    if (p[i] == '"' || p[i] == '#')
      snprintf (why, whylen, "unexpected '%c' in key '%s'", p[i], kbuf);
    else
      snprintf (why, whylen, "invalid byte 0x%02x in key '%s'",
                (unsigned char) p[i], kbuf);
    return -EINVAL;
  }
  while (i < len && is_ws ((unsigned char) p[i]))
    i++;
  if (i == len || p[i] != '=') {
    snprintf (why, whylen, "missing '=' after key '%s'", kbuf);
    return -EINVAL;
  }
  i++;
  while (i < len && is_ws ((unsigned char) p[i]))
    i++;
  if (i == len || p[i] == '#') {
    snprintf (why, whylen, "missing value for key '%s'", kbuf);
    return -EINVAL;
  }
  size_t vs = i, ve, is, ie;   /* token span, inner (unquoted) span */
  if (p[i] == '"') {
    const char *q = memchr (p + i + 1, '"', len - i - 1);
    if (!q) {
      snprintf (why, whylen, "unterminated quoted value for key '%s'", kbuf);
      return -EINVAL;
    }
    is = i + 1;
    ie = (size_t) (q - p);
    ve = ie + 1;
  } else {
    while (i < len && !is_ws ((unsigned char) p[i]) && p[i] != '#'
           && p[i] != '"')
      i++;
    if (i < len && p[i] == '"') {
      snprintf (why, whylen, "stray '\"' in value of key '%s'", kbuf);
      return -EINVAL;
    }
    is = vs;
    ie = ve = i;
  }
  i = ve;
  while (i < len && is_ws ((unsigned char) p[i]))
    i++;
  if (i < len && p[i] != '#') {
    snprintf (why, whylen, "unexpected text after the value of key '%s'",
              kbuf);
    return -EINVAL;
  }
  bool nul;
  ln->key = strndup (p + ks, klen);
  ln->value = decode_value (p + is, ie - is, &nul);
  if (!ln->key || !ln->value) {
    free (ln->key);
    free (ln->value);
    ln->key = ln->value = NULL;
    return -ENOMEM;
  }
  if (nul) {
    free (ln->key);
    free (ln->value);
    ln->key = ln->value = NULL;
    snprintf (why, whylen, "escape |00 (a NUL byte) in the value of key '%s'",
              kbuf);
    return -EINVAL;
  }
  ln->vstart = vs;
  ln->vend = ve;
  return 0;
}

/* Make room for one more line. */
static int
grow (struct vmx_config *c)
{
  if (c->n < c->cap)
    return 0;
  size_t nc = c->cap ? c->cap * 2 : 64;
  if (nc > VMX_MAX_LINES + 1)
    nc = VMX_MAX_LINES + 1;
  if (nc <= c->n)
    return -E2BIG;
  struct vmx_line *l = realloc (c->l, nc * sizeof *l);  /* <= 10001 x 48 B */
  if (!l)
    return -ENOMEM;
  c->l = l;
  c->cap = nc;
  return 0;
}

/* An empty config: no lines, LF endings. */
struct vmx_config *
vmx_new (const char *name)
{
  struct vmx_config *c = calloc (1, sizeof *c);
  if (!c)
    return NULL;
  c->name = strdup (name ? name : "(config)");
  if (!c->name) {
    free (c);
    return NULL;
  }
  return c;
}

/* Free a config and all its lines (NULL is fine). */
void
vmx_free (struct vmx_config *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++)
    line_clear (&c->l[i]);
  free (c->l);
  free (c->name);
  free (c);
}

/* The file name used in messages. */
const char *
vmx_name (const struct vmx_config *c)
{
  return c->name;
}

/* Parse text line by line, keeping each raw line.  Bounds are checked
 * before anything is allocated from them: file size, then per line its
 * length and the running line count. */
int
vmx_parse (const char *text, size_t len, const char *name,
           struct vmx_config **out, struct vb_error *err)
{
  *out = NULL;
  if (!name)
    name = "(config)";
  if (len > VMX_MAX_FILE)
    return vb_err (err, EFBIG, "'%s' is too large (%zu bytes, at most %d)",
                   name, len, VMX_MAX_FILE);
  struct vmx_config *c = vmx_new (name);
  if (!c)
    return vb_errno (err, ENOMEM, "cannot parse '%s'", name);
  size_t pos = 0, lineno = 0;
  int r = 0;
  char why[200];
  while (pos < len) {
    lineno++;
    const char *p = text + pos;
    const char *nl = memchr (p, '\n', len - pos);
    size_t clen = nl ? (size_t) (nl - p) : len - pos;  /* content */
    size_t rlen = nl ? clen + 1 : clen;                 /* with "\n" */
    if (lineno > VMX_MAX_LINES) {
      r = vb_err (err, EINVAL, "cannot parse '%s': more than %d lines",
                  name, VMX_MAX_LINES);
      goto fail;
    }
    if (clen > VMX_MAX_LINE) {
      r = vb_err (err, EINVAL, "cannot parse '%s' line %zu: line is longer "
                  "than %d bytes", name, lineno, VMX_MAX_LINE);
      goto fail;
    }
    if (memchr (p, '\0', clen)) {
      r = vb_err (err, EINVAL, "cannot parse '%s' line %zu: NUL byte in text",
                  name, lineno);
      goto fail;
    }
    if (lineno == 1 && nl && clen > 0 && p[clen - 1] == '\r')
      c->crlf = true;
    if ((r = grow (c)) < 0) {
      r = vb_errno (err, -r, "cannot parse '%s'", name);
      goto fail;
    }
    struct vmx_line *ln = &c->l[c->n];
    memset (ln, 0, sizeof *ln);
    r = parse_line (p, clen, ln, why, sizeof why);
    if (r == -EINVAL) {
      r = vb_err (err, EINVAL, "cannot parse '%s' line %zu: %s", name,
                  lineno, why);
      goto fail;
    }
    if (r == 0) {
      ln->raw = malloc (rlen + 1);
      if (ln->raw) {
        memcpy (ln->raw, p, rlen);
        ln->raw[rlen] = '\0';
      } else {
        line_clear (ln);
        r = -ENOMEM;
      }
    }
    if (r < 0) {
      r = vb_errno (err, -r, "cannot parse '%s'", name);
      goto fail;
    }
    ln->len = rlen;
    c->n++;
    c->total += rlen;
    pos += rlen;
  }
  *out = c;
  return 0;
fail:
  vmx_free (c);
  return r;
}

/* Read a whole .vmx (bounded by VMX_MAX_FILE) and parse it. */
int
vmx_load (const char *path, struct vmx_config **out, struct vb_error *err)
{
  char *buf;
  size_t len;
  *out = NULL;
  int r = vio_read_file (path, VMX_MAX_FILE, &buf, &len, err);
  if (r < 0)
    return r;
  r = vmx_parse (buf, len, path, out, err);
  free (buf);
  return r;
}

/* Concatenate the raw lines: the file as it would be written. */
char *
vmx_format (const struct vmx_config *c, size_t *len)
{
  char *s = malloc (c->total + 1);
  if (!s)
    return NULL;
  size_t j = 0;
  for (size_t i = 0; i < c->n; i++) {
    memcpy (s + j, c->l[i].raw, c->l[i].len);
    j += c->l[i].len;
  }
  s[j] = '\0';
  if (len)
    *len = j;
  return s;
}

/* Write the config atomically, refusing text over the read bounds. */
int
vmx_save (const struct vmx_config *c, const char *path, struct vb_error *err)
{
  if (c->total > VMX_MAX_FILE || c->n > VMX_MAX_LINES)
    return vb_err (err, EFBIG, "cannot write '%s': %zu bytes in %zu lines is "
                   "over the limit (%d bytes, %d lines)", path, c->total, c->n,
                   VMX_MAX_FILE, VMX_MAX_LINES);
  size_t len;
  char *s = vmx_format (c, &len);
  if (!s)
    return vb_errno (err, ENOMEM, "cannot write '%s'", path);
  int r = vio_write_file_atomic (path, s, len, err);
  free (s);
  return r;
}

/* Index of the last line holding key, or -1. */
static ssize_t
find_last (const struct vmx_config *c, const char *key)
{
  for (size_t i = c->n; i-- > 0;)
    if (c->l[i].key && strcasecmp (c->l[i].key, key) == 0)
      return (ssize_t) i;
  return -1;
}

/* Decoded value of the last line holding key (case-insensitive). */
const char *
vmx_get (const struct vmx_config *c, const char *key)
{
  ssize_t i = find_last (c, key);
  return i < 0 ? NULL : c->l[i].value;
}

/* Number of key/value lines. */
size_t
vmx_n_entries (const struct vmx_config *c)
{
  size_t n = 0;
  for (size_t i = 0; i < c->n; i++)
    n += c->l[i].key != NULL;
  return n;
}

/* The idx-th key/value line.  Linear in the number of lines, so a full
 * walk is quadratic; fine for <= 10000 lines (vmsd.c walks lines once via
 * a cursor instead, see vmx_entry_next). */
bool
vmx_entry (const struct vmx_config *c, size_t idx, const char **key,
           const char **value)
{
  for (size_t i = 0; i < c->n; i++) {
    if (!c->l[i].key)
      continue;
    if (idx-- == 0) {
      *key = c->l[i].key;
      *value = c->l[i].value;
      return true;
    }
  }
  return false;
}

/* Cursor walk over key/value lines; *cursor is a line index, so after
 * a call it equals the 1-based line number of the entry returned. */
bool
vmx_entry_next (const struct vmx_config *c, size_t *cursor, const char **key,
                const char **value)
{
  for (; *cursor < c->n; (*cursor)++) {
    if (c->l[*cursor].key) {
      *key = c->l[*cursor].key;
      *value = c->l[*cursor].value;
      (*cursor)++;
      return true;
    }
  }
  return false;
}

/* Delete line i. */
static void
delete_line (struct vmx_config *c, size_t i)
{
  c->total -= c->l[i].len;
  line_clear (&c->l[i]);
  memmove (&c->l[i], &c->l[i + 1], (c->n - i - 1) * sizeof c->l[0]);
  c->n--;
}

/* Delete every line holding key (case-insensitive); count removed. */
int
vmx_remove (struct vmx_config *c, const char *key)
{
  int removed = 0;
  for (size_t i = c->n; i-- > 0;)
    if (c->l[i].key && strcasecmp (c->l[i].key, key) == 0) {
      delete_line (c, i);
      removed++;
    }
  return removed;
}

/* True if key is a valid key: 1..VMX_MAX_KEY key bytes. */
static bool
valid_key (const char *key)
{
  size_t n = strlen (key);
  if (n == 0 || n > VMX_MAX_KEY)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!is_key_char ((unsigned char) key[i]))
      return false;
  return true;
}

/* Set key: rewrite the value token of its last line in place (keeping
 * spelling, spacing, trailing comment and line ending) or append a new
 * line; the result stays within the parser's bounds. */
int
vmx_set (struct vmx_config *c, const char *key, const char *value,
         struct vb_error *err)
{
  char kbuf[80];
  if (!key || !valid_key (key))
    return vb_err (err, EINVAL, "cannot set key '%s' in '%s': invalid key",
                   key ? safe_str (kbuf, sizeof kbuf, key, strlen (key)) : "",
                   c->name);
  if (!value)
    return vb_err (err, EINVAL, "cannot set key '%s' in '%s': no value", key,
                   c->name);
  size_t elen;
  char *enc = encode_value (value, &elen);
  char *dec = strdup (value);
  char *raw = NULL;
  int r;
  if (!enc || !dec) {
    r = vb_errno (err, ENOMEM, "cannot set key '%s' in '%s'", key, c->name);
    goto out;
  }
  ssize_t at = find_last (c, key);
  const char *eol = c->crlf ? "\r\n" : "\n";
  size_t rlen, fix = 0;   /* fix: bytes added to a last line lacking "\n" */
  if (at >= 0) {
    struct vmx_line *ln = &c->l[at];
    rlen = ln->vstart + elen + 2 + (ln->len - ln->vend);
  } else {
    rlen = strlen (key) + 5 + elen + strlen (eol);   /* key = "enc"\n */
    if (c->n > 0 && c->l[c->n - 1].raw[c->l[c->n - 1].len - 1] != '\n')
      fix = strlen (eol);
  }
  /* content length (without "\n") is bounded like a parsed line */
  size_t clen = rlen;
  if (at < 0 || (c->l[at].len > 0 && c->l[at].raw[c->l[at].len - 1] == '\n'))
    clen--;
  if (clen > VMX_MAX_LINE) {
    r = vb_err (err, E2BIG, "cannot set key '%s' in '%s': line would be "
                "longer than %d bytes", key, c->name, VMX_MAX_LINE);
    goto out;
  }
  size_t old = at >= 0 ? c->l[at].len : 0;
  if (c->total - old + rlen + fix > VMX_MAX_FILE
      || (at < 0 && c->n + 1 > VMX_MAX_LINES)) {
    r = vb_err (err, E2BIG, "cannot set key '%s' in '%s': file would exceed "
                "%d bytes or %d lines", key, c->name, VMX_MAX_FILE,
                VMX_MAX_LINES);
    goto out;
  }
  raw = malloc (rlen + 1);
  if (!raw) {
    r = vb_errno (err, ENOMEM, "cannot set key '%s' in '%s'", key, c->name);
    goto out;
  }
  if (at >= 0) {
    struct vmx_line *ln = &c->l[at];
    size_t j = ln->vstart;
    memcpy (raw, ln->raw, j);
    raw[j++] = '"';
    memcpy (raw + j, enc, elen);
    j += elen;
    raw[j++] = '"';
    memcpy (raw + j, ln->raw + ln->vend, ln->len - ln->vend);
    raw[rlen] = '\0';
    c->total = c->total - ln->len + rlen;
    free (ln->raw);
    free (ln->value);
    ln->raw = raw;
    ln->len = rlen;
    ln->value = dec;
    ln->vend = ln->vstart + elen + 2;
    raw = dec = NULL;
    /* drop earlier duplicates so the file holds one value */
    for (size_t i = (size_t) at; i-- > 0;)
      if (c->l[i].key && strcasecmp (c->l[i].key, key) == 0)
        delete_line (c, i);
    r = 0;
    goto out;
  }
  if ((r = grow (c)) < 0) {
    r = vb_errno (err, -r, "cannot set key '%s' in '%s'", key, c->name);
    goto out;
  }
  if (fix) {
    struct vmx_line *last = &c->l[c->n - 1];
    char *nr = realloc (last->raw, last->len + fix + 1);
    if (!nr) {
      r = vb_errno (err, ENOMEM, "cannot set key '%s' in '%s'", key, c->name);
      goto out;
    }
    memcpy (nr + last->len, eol, fix + 1);
    last->raw = nr;
    last->len += fix;
    c->total += fix;
  }
  char *k = strdup (key);
  if (!k) {
    r = vb_errno (err, ENOMEM, "cannot set key '%s' in '%s'", key, c->name);
    goto out;
  }
  snprintf (raw, rlen + 1, "%s = \"%s\"%s", key, enc, eol);
  struct vmx_line *ln = &c->l[c->n++];
  ln->raw = raw;
  ln->len = rlen;
  ln->key = k;
  ln->value = dec;
  ln->vstart = strlen (key) + 3;
  ln->vend = ln->vstart + elen + 2;
  c->total += rlen;
  raw = dec = NULL;
  r = 0;
out:
  free (enc);
  free (dec);
  free (raw);
  return r;
}

/* VMware-style boolean: true/false, yes/no, 1/0, on/off in any case. */
bool
vmx_parse_bool (const char *s, bool *out)
{
  static const char *const yes[] = { "true", "yes", "1", "on" };
  static const char *const no[] = { "false", "no", "0", "off" };
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp (s, yes[i]) == 0) {
      *out = true;
      return true;
    }
    if (strcasecmp (s, no[i]) == 0) {
      *out = false;
      return true;
    }
  }
  return false;
}

/* Boolean value of key, dflt when absent; -EINVAL when not a boolean. */
int
vmx_get_bool (const struct vmx_config *c, const char *key, bool dflt,
              bool *out, struct vb_error *err)
{
  const char *v = vmx_get (c, key);
  *out = dflt;
  if (!v)
    return 0;
  if (!vmx_parse_bool (v, out)) {
    char vb[40];
    *out = dflt;
    return vb_err (err, EINVAL, "invalid boolean '%s' for key '%s' in '%s'",
                   safe_str (vb, sizeof vb, v, strlen (v)), key, c->name);
  }
  return 0;
}

/* Parse a plain decimal (digits only, no sign or spaces) up to max. */
static bool
parse_u64 (const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v = 0;
  if (!*s)
    return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return false;
    unsigned d = (unsigned) (*s - '0');
    if (v > (max - d) / 10)
      return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

/* Decimal value of key in 0..max; -ENOENT when absent. */
int
vmx_get_u64 (const struct vmx_config *c, const char *key, uint64_t max,
             uint64_t *out, struct vb_error *err)
{
  const char *v = vmx_get (c, key);
  if (!v)
    return vb_err (err, ENOENT, "no key '%s' in '%s'", key, c->name);
  if (!parse_u64 (v, max, out)) {
    char vb[40];
    return vb_err (err, EINVAL, "invalid number '%s' for key '%s' in '%s' "
                   "(expected 0..%llu)", safe_str (vb, sizeof vb, v, strlen (v)),
                   key, c->name, (unsigned long long) max);
  }
  return 0;
}

/* The VM's displayName, NULL if absent. */
const char *
vmx_display_name (const struct vmx_config *c)
{
  return vmx_get (c, "displayName");
}

/* The VM's guestOS identifier, NULL if absent. */
const char *
vmx_guest_os (const struct vmx_config *c)
{
  return vmx_get (c, "guestOS");
}

/* memSize in MiB, 1..VMX_MAX_MEM_MB. */
int
vmx_mem_size_mb (const struct vmx_config *c, uint64_t *mb,
                 struct vb_error *err)
{
  int r = vmx_get_u64 (c, "memSize", VMX_MAX_MEM_MB, mb, err);
  if (r == 0 && *mb == 0)
    r = vb_err (err, EINVAL, "invalid memSize 0 in '%s'", c->name);
  return r;
}

/* numvcpus, 1..VMX_MAX_VCPUS; 1 when absent (VMware's default). */
int
vmx_num_vcpus (const struct vmx_config *c, unsigned *n, struct vb_error *err)
{
  uint64_t v = 1;
  *n = 1;
  if (!vmx_get (c, "numvcpus"))
    return 0;
  int r = vmx_get_u64 (c, "numvcpus", VMX_MAX_VCPUS, &v, err);
  if (r == 0 && v == 0)
    r = vb_err (err, EINVAL, "invalid numvcpus 0 in '%s'", c->name);
  if (r == 0)
    *n = (unsigned) v;
  return r;
}

/* The VM-wide ctkEnabled switch, false when absent. */
int
vmx_ctk_enabled (const struct vmx_config *c, bool *on, struct vb_error *err)
{
  return vmx_get_bool (c, "ctkEnabled", false, on, err);
}

/* Parse 32 hex digits in pairs, separated by spaces or '-' between
 * pairs only (VMware's and the canonical spelling). */
bool
vmx_parse_uuid (const char *s, uint8_t uuid[16])
{
  size_t nd = 0;   /* hex digits seen */
  for (; *s; s++) {
    if (*s == ' ' || *s == '-') {
      if (nd % 2 || nd == 0)   /* separators only between whole bytes */
        return false;
      continue;
    }
    int v = hexval ((unsigned char) *s);
    if (v < 0 || nd >= 32)
      return false;
    if (nd % 2 == 0)
      uuid[nd / 2] = (uint8_t) (v << 4);
    else
      uuid[nd / 2] |= (uint8_t) v;
    nd++;
  }
  return nd == 32;
}

/* Canonical lowercase 8-4-4-4-12 spelling of a 16-byte uuid. */
void
vmx_uuid_string (const uint8_t u[16], char out[37])
{
  snprintf (out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
            u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* uuid.bios as 16 bytes; -ENOENT when absent, -EINVAL when malformed. */
int
vmx_uuid_bios (const struct vmx_config *c, uint8_t uuid[16],
               struct vb_error *err)
{
  const char *v = vmx_get (c, "uuid.bios");
  if (!v)
    return vb_err (err, ENOENT, "no key 'uuid.bios' in '%s'", c->name);
  if (!vmx_parse_uuid (v, uuid)) {
    char vb[64];
    return vb_err (err, EINVAL, "invalid uuid.bios '%s' in '%s'",
                   safe_str (vb, sizeof vb, v, strlen (v)), c->name);
  }
  return 0;
}

/* ---- disks ---- */

static const char *const bus_names[] = { "scsi", "sata", "nvme", "ide" };

/* Parse a small decimal without leading zeros (0..999) at *p. */
static bool
parse_small (const char **p, unsigned *out)
{
  const char *s = *p;
  unsigned v = 0;
  size_t n = 0;
  while (s[n] >= '0' && s[n] <= '9') {
    if (n == 3)
      return false;
    v = v * 10 + (unsigned) (s[n] - '0');
    n++;
  }
  if (n == 0 || (n > 1 && s[0] == '0'))
    return false;
  *out = v;
  *p = s + n;
  return true;
}

/* Parse "busX" (and, when unit is non-NULL, ":Y") at the start of s; on
 * success *rest points after it. */
static bool
parse_dev_prefix (const char *s, enum vmx_bus *bus, unsigned *ctrl,
                  unsigned *unit, const char **rest)
{
  for (int b = 0; b < 4; b++) {
    size_t bl = strlen (bus_names[b]);
    if (strncasecmp (s, bus_names[b], bl) != 0)
      continue;
    const char *p = s + bl;
    if (!parse_small (&p, ctrl))
      return false;
    if (unit) {
      if (*p != ':')
        return false;
      p++;
      if (!parse_small (&p, unit))
        return false;
    }
    *bus = (enum vmx_bus) b;
    *rest = p;
    return true;
  }
  return false;
}

/* True when s is exactly a device key such as "scsi0:0". */
bool
vmx_parse_device (const char *s, enum vmx_bus *bus, unsigned *controller,
                  unsigned *unit)
{
  const char *rest;
  return parse_dev_prefix (s, bus, controller, unit, &rest) && *rest == '\0';
}

/* Attributes of one device seen while scanning (pointers into values). */
enum { A_PRESENT, A_TYPE, A_FILE, A_CTK, A_MODE, A_N };
static const char *const attr_names[A_N] = {
  "present", "deviceType", "fileName", "ctkEnabled", "mode"
};
struct dev_scan {
  enum vmx_bus bus;
  unsigned ctrl, unit;
  const char *a[A_N];
};

/* Order disks by bus, controller, unit. */
static int
cmp_disk (const void *a, const void *b)
{
  const struct vmx_disk *x = a, *y = b;
  if (x->bus != y->bus)
    return x->bus < y->bus ? -1 : 1;
  if (x->controller != y->controller)
    return x->controller < y->controller ? -1 : 1;
  return x->unit < y->unit ? -1 : x->unit > y->unit;
}

/* Free a disk list from vmx_disks. */
void
vmx_disks_free (struct vmx_disk *d, size_t n)
{
  if (!d)
    return;
  for (size_t i = 0; i < n; i++) {
    free (d[i].file_name);
    free (d[i].device_type);
    free (d[i].mode);
  }
  free (d);
}

/* True when a path ends in ".vmdk" (any case). */
static bool
is_vmdk_name (const char *f)
{
  size_t n = strlen (f);
  return n >= 5 && strcasecmp (f + n - 5, ".vmdk") == 0;
}

/* One pass over the lines collects the attributes of every busX:Y device
 * (last value wins, as in vmx_get), then each device is judged.  The
 * device table is capped at VMX_MAX_DEVICES entries (x 64 B = 64 KiB). */
int
vmx_disks (const struct vmx_config *c, struct vmx_disk **out, size_t *n,
           struct vb_error *err)
{
  *out = NULL;
  *n = 0;
  struct dev_scan *dev = NULL;
  struct vmx_disk *disks = NULL;
  size_t nd = 0, nk = 0;
  int r = 0;
  char kb[32];
  for (size_t i = 0; i < c->n; i++) {
    const struct vmx_line *ln = &c->l[i];
    enum vmx_bus bus;
    unsigned ctrl, unit;
    const char *attr;
    if (!ln->key || !parse_dev_prefix (ln->key, &bus, &ctrl, &unit, &attr)
        || *attr != '.')
      continue;
    attr++;
    int a;
    for (a = 0; a < A_N; a++)
      if (strcasecmp (attr, attr_names[a]) == 0)
        break;
    if (a == A_N)
      continue;
    size_t d;
    for (d = 0; d < nd; d++)
      if (dev[d].bus == bus && dev[d].ctrl == ctrl && dev[d].unit == unit)
        break;
    if (d == nd) {
      if (nd == VMX_MAX_DEVICES) {
        r = vb_err (err, E2BIG, "cannot list disks of '%s': more than %d "
                    "devices", c->name, VMX_MAX_DEVICES);
        goto out;
      }
      if (nd == 0) {
        dev = malloc (VMX_MAX_DEVICES * sizeof *dev);
        if (!dev) {
          r = vb_errno (err, ENOMEM, "cannot list disks of '%s'", c->name);
          goto out;
        }
      }
      memset (&dev[nd], 0, sizeof dev[nd]);
      dev[nd].bus = bus;
      dev[nd].ctrl = ctrl;
      dev[nd].unit = unit;
      nd++;
    }
    dev[d].a[a] = ln->value;
  }
  if (nd)
    disks = calloc (nd, sizeof *disks);   /* <= 1024 x 64 B */
  if (nd && !disks) {
    r = vb_errno (err, ENOMEM, "cannot list disks of '%s'", c->name);
    goto out;
  }
  for (size_t d = 0; d < nd; d++) {
    struct dev_scan *s = &dev[d];
    const char *s_present = s->a[A_PRESENT], *s_type = s->a[A_TYPE];
    const char *s_file = s->a[A_FILE], *s_ctk = s->a[A_CTK];
    const char *s_mode = s->a[A_MODE];
    snprintf (kb, sizeof kb, "%s%u:%u", bus_names[s->bus], s->ctrl, s->unit);
    bool present = false, ctk = false;
    if (s_present && !vmx_parse_bool (s_present, &present)) {
      r = vb_err (err, EINVAL, "invalid boolean for '%s.present' in '%s'", kb,
                  c->name);
      goto out;
    }
    if (!present)
      continue;
    if (s->bus != VMX_BUS_IDE) {
      char ck[32];
      bool cp = true;
      snprintf (ck, sizeof ck, "%s%u.present", bus_names[s->bus], s->ctrl);
      const char *cv = vmx_get (c, ck);
      if (cv && !vmx_parse_bool (cv, &cp)) {
        r = vb_err (err, EINVAL, "invalid boolean for '%s' in '%s'", ck,
                    c->name);
        goto out;
      }
      if (!cp)
        continue;
    }
    if (s_type) {
      if (strcasecmp (s_type, "scsi-hardDisk") != 0
          && strcasecmp (s_type, "disk") != 0
          && strcasecmp (s_type, "ata-hardDisk") != 0)
        continue;
    } else if (!s_file || !is_vmdk_name (s_file)) {
      continue;
    }
    if (!s_file || !*s_file) {
      r = vb_err (err, EINVAL, "disk '%s' in '%s' has no fileName", kb,
                  c->name);
      goto out;
    }
    if (s_ctk && !vmx_parse_bool (s_ctk, &ctk)) {
      r = vb_err (err, EINVAL, "invalid boolean for '%s.ctkEnabled' in '%s'",
                  kb, c->name);
      goto out;
    }
    struct vmx_disk *k = &disks[nk++];
    snprintf (k->device, sizeof k->device, "%s", kb);
    k->bus = s->bus;
    k->controller = s->ctrl;
    k->unit = s->unit;
    k->ctk_enabled = ctk;
    k->file_name = strdup (s_file);
    k->device_type = s_type ? strdup (s_type) : NULL;
    k->mode = s_mode ? strdup (s_mode) : NULL;
    if (!k->file_name || (s_type && !k->device_type)
        || (s_mode && !k->mode)) {
      r = vb_errno (err, ENOMEM, "cannot list disks of '%s'", c->name);
      goto out;
    }
  }
  if (nk > 1)                   /* qsort (NULL, 0, ...) is undefined */
    qsort (disks, nk, sizeof *disks, cmp_disk);
  if (nk == 0) {
    free (disks);
    disks = NULL;
  }
  *out = disks;
  *n = nk;
  disks = NULL;
out:
  if (disks)
    vmx_disks_free (disks, nk);
  free (dev);
  return r;
}

/* Repoint an existing disk at another file (a snapshot's new leaf). */
int
vmx_disk_set_file_name (struct vmx_config *c, const char *device,
                        const char *file_name, struct vb_error *err)
{
  enum vmx_bus bus;
  unsigned ctrl, unit;
  char key[48], db[40];
  if (!vmx_parse_device (device, &bus, &ctrl, &unit))
    return vb_err (err, EINVAL, "invalid device key '%s' for '%s'",
                   safe_str (db, sizeof db, device, strlen (device)), c->name);
  snprintf (key, sizeof key, "%s%u:%u.fileName", bus_names[bus], ctrl, unit);
  if (!vmx_get (c, key))
    return vb_err (err, ENOENT, "no disk '%s' in '%s'", device, c->name);
  return vmx_set (c, key, file_name, err);
}
