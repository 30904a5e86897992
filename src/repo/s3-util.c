/* vmback S3 backend helpers: URLs, credentials files, XML (s3-int.h).
 *
 * No network here: these functions parse what the user or the server
 * gives, bounded and strict, so they are unit-tested on hostile input. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "s3-int.h"

#define BACKOFF_BASE_MS 200u
#define BACKOFF_CAP_MS 10000u

/* --- URLs ---------------------------------------------------------------- */

/* True if name is a DNS-compatible bucket name: 3-63 of [a-z0-9.-],
 * starting and ending with a letter or digit, no "..". */
bool
s3_bucket_name_ok (const char *name)
{
  size_t n = strnlen (name, 64);
  if (n < 3 || n > 63)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
      return false;
    if (c == '.' && i > 0 && name[i - 1] == '.')
      return false;
  }
  return isalnum ((unsigned char) name[0]) && isalnum ((unsigned char) name[n - 1]);
}

/* Check one prefix component: printable ASCII without '\\', not "." or
 * "..", not a ".tmp-" name (the keys below it must be valid keys). */
static bool
component_ok (const char *p, size_t n)
{
  if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
    return false;
  if (n >= 5 && memcmp (p, ".tmp-", 5) == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char) p[i] <= 0x20 || (unsigned char) p[i] >= 0x7f || p[i] == '\\')
      return false;
  return true;
}

/* Parse "s3://BUCKET[/PREFIX[/]]". */
int
s3_url_parse (const char *url, struct s3_url *out, struct vb_error *err)
{
  memset (out, 0, sizeof *out);
  if (!url || strncmp (url, "s3://", 5) != 0)
    return vb_err (err, EINVAL, "'%.200s' is not an s3:// URL", url ? url : "");
  const char *b = url + 5;
  const char *slash = strchr (b, '/');
  size_t bl = slash ? (size_t) (slash - b) : strlen (b);
  if (bl >= sizeof out->bucket) {
    vb_err (err, EINVAL, "invalid repository URL '%.200s': bucket name longer "
            "than 63 characters", url);
    return -EINVAL;
  }
  memcpy (out->bucket, b, bl);
  out->bucket[bl] = '\0';
  if (!s3_bucket_name_ok (out->bucket))
    return vb_err (err, EINVAL, "invalid repository URL '%.200s': bucket name "
                   "'%s' is not 3-63 characters of a-z 0-9 . -", url, out->bucket);
  const char *p = slash ? slash + 1 : "";
  size_t pl = strlen (p);
  while (pl > 0 && p[pl - 1] == '/')
    pl--;
  if (pl >= sizeof out->prefix)
    return vb_err (err, EINVAL, "invalid repository URL '%.200s': prefix longer "
                   "than %zu bytes", url, sizeof out->prefix - 1);
  for (size_t i = 0; i < pl;) {
    const char *s = memchr (p + i, '/', pl - i);
    size_t n = s ? (size_t) (s - (p + i)) : pl - i;
    if (!component_ok (p + i, n))
      return vb_err (err, EINVAL, "invalid repository URL '%.200s': bad prefix "
                     "component '%.*s' (empty, '.', '..', '.tmp-...', or not "
                     "printable ASCII)", url, (int) (n > 100 ? 100 : n), p + i);
    i += n + 1;
  }
  memcpy (out->prefix, p, pl);
  out->prefix[pl] = '\0';
  return 0;
}

/* True if host (without port) is an IPv4 dotted quad. */
static bool
is_ipv4 (const char *h, size_t n)
{
  int dots = 0, digits = 0;
  for (size_t i = 0; i < n; i++) {
    if (h[i] == '.') {
      if (digits == 0)
        return false;
      dots++;
      digits = 0;
    } else if (h[i] >= '0' && h[i] <= '9') {
      if (++digits > 3)
        return false;
    } else
      return false;
  }
  return dots == 3 && digits > 0;
}

/* Parse an endpoint URL (see s3-int.h). */
int
s3_endpoint_parse (const char *url, struct s3_endpoint *out, struct vb_error *err)
{
  memset (out, 0, sizeof *out);
  const char *h;
  if (url && strncmp (url, "https://", 8) == 0) {
    out->https = true;
    h = url + 8;
  } else if (url && strncmp (url, "http://", 7) == 0)
    h = url + 7;
  else
    return vb_err (err, EINVAL, "invalid S3 endpoint '%.200s': it must start "
                   "with https:// or http://", url ? url : "");
  size_t n = strcspn (h, "/?#");
  if (h[n] == '?' || h[n] == '#' || (h[n] == '/' && h[n + 1] != '\0'))
    return vb_err (err, EINVAL, "invalid S3 endpoint '%.200s': only "
                   "scheme://host[:port] is understood (no path or query)", url);
  if (n == 0 || n >= sizeof out->host)
    return vb_err (err, EINVAL, "invalid S3 endpoint '%.200s': no host or host "
                   "too long", url);
  for (size_t i = 0; i < n; i++) {
    char c = h[i];
    if (!(isalnum ((unsigned char) c) || c == '.' || c == '-' || c == ':'
          || c == '[' || c == ']'))
      return vb_err (err, EINVAL, "invalid S3 endpoint '%.200s': bad character "
                     "in host", url);
  }
  memcpy (out->host, h, n);
  out->host[n] = '\0';
  /* host without port */
  size_t hn = n;
  if (out->host[0] == '[') {
    const char *e = strchr (out->host, ']');
    if (!e || (e[1] != '\0' && e[1] != ':'))
      return vb_err (err, EINVAL, "invalid S3 endpoint '%.200s': bad IPv6 "
                     "address", url);
    out->host_is_ip = true;
    hn = (size_t) (e - out->host) + 1;
  } else {
    const char *colon = strchr (out->host, ':');
    if (colon)
      hn = (size_t) (colon - out->host);
    out->host_is_ip = is_ipv4 (out->host, hn)
                      || (hn == 9 && strncasecmp (out->host, "localhost", 9) == 0);
  }
  const char *port = out->host + hn;
  if (*port == ':') {
    char *end;
    unsigned long v = strtoul (port + 1, &end, 10);
    if (port[1] == '\0' || *end != '\0' || v == 0 || v > 65535)
      return vb_err (err, EINVAL, "invalid S3 endpoint '%.200s': bad port", url);
  } else if (*port != '\0')
    return vb_err (err, EINVAL, "invalid S3 endpoint '%.200s'", url);
  if (hn == 0)
    return vb_err (err, EINVAL, "invalid S3 endpoint '%.200s': no host", url);
  return 0;
}

/* --- credentials file ---------------------------------------------------- */

/* Copy s[0..n) into out (cap bytes) trimmed of blanks; false if too long. */
static bool
copy_trimmed (const char *s, size_t n, char *out, size_t cap)
{
  while (n > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    n--;
  }
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
    n--;
  if (n >= cap)
    return false;
  memcpy (out, s, n);
  out[n] = '\0';
  return true;
}

/* Parse one profile of a credentials file (see s3-int.h). */
int
s3_credentials_parse (const char *text, size_t len, const char *profile,
                      const char *what, struct s3_creds *out, struct vb_error *err)
{
  memset (out, 0, sizeof *out);
  bool in = false, seen = false;
  size_t lineno = 0;
  for (size_t i = 0; i < len;) {
    const char *l = text + i;
    const char *nl = memchr (l, '\n', len - i);
    size_t n = nl ? (size_t) (nl - l) : len - i;
    i += n + 1;
    lineno++;
    char line[8192];
    if (!copy_trimmed (l, n, line, sizeof line))
      return vb_err (err, EINVAL, "%s: line %zu is too long", what, lineno);
    if (line[0] == '\0' || line[0] == '#' || line[0] == ';')
      continue;
    if (line[0] == '[') {
      char *e = strchr (line, ']');
      if (!e || e[1] != '\0')
        return vb_err (err, EINVAL, "%s: line %zu: bad section header", what, lineno);
      char name[256];
      if (!copy_trimmed (line + 1, (size_t) (e - line - 1), name, sizeof name))
        return vb_err (err, EINVAL, "%s: line %zu: section name too long", what,
                       lineno);
      /* "[profile NAME]" is the config file's spelling; accept it too */
      const char *nm = strncmp (name, "profile ", 8) == 0 ? name + 8 : name;
      in = strcmp (nm, profile) == 0;
      seen |= in;
      continue;
    }
    char *eq = strchr (line, '=');
    if (!eq)
      return vb_err (err, EINVAL, "%s: line %zu: expected 'key = value'", what,
                     lineno);
    if (!in)
      continue;
    char key[64];
    if (!copy_trimmed (line, (size_t) (eq - line), key, sizeof key))
      continue;                           /* a long unknown key: not ours */
    char *dst = NULL;
    size_t cap = 0;
    if (strcmp (key, "aws_access_key_id") == 0) {
      dst = out->access_key;
      cap = sizeof out->access_key;
    } else if (strcmp (key, "aws_secret_access_key") == 0) {
      dst = out->secret_key;
      cap = sizeof out->secret_key;
    } else if (strcmp (key, "aws_session_token") == 0) {
      dst = out->session_token;
      cap = sizeof out->session_token;
    }
    if (dst && !copy_trimmed (eq + 1, strlen (eq + 1), dst, cap))
      return vb_err (err, EINVAL, "%s: line %zu: value of '%s' is too long", what,
                     lineno, key);
  }
  if (!seen)
    return vb_err (err, ENOENT, "%s has no profile '%s'", what, profile);
  if (!out->access_key[0] || !out->secret_key[0])
    return vb_err (err, ENOENT, "%s: profile '%s' lacks aws_access_key_id or "
                   "aws_secret_access_key", what, profile);
  return 0;
}

/* --- XML ----------------------------------------------------------------- */

/* Parse an XML document from memory: no network, no entity substitution,
 * no DTD loading, no messages on stderr. */
static xmlDocPtr
read_xml (const uint8_t *xml, size_t len)
{
  if (len == 0 || len > INT32_MAX)
    return NULL;
  return xmlReadMemory ((const char *) xml, (int) len, "s3.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING
                        | XML_PARSE_NOCDATA);
}

/* True if node n is an element with local name `name`. */
static bool
is_elem (xmlNodePtr n, const char *name)
{
  return n && n->type == XML_ELEMENT_NODE && n->name
         && strcmp ((const char *) n->name, name) == 0;
}

/* Text content of element n (malloc'd by libxml2; xmlFree it). */
static char *
text_of (xmlNodePtr n)
{
  return (char *) xmlNodeGetContent (n);
}

/* Parse a decimal uint64 (digits only). */
static bool
parse_u64 (const char *s, uint64_t *out)
{
  if (!s || !*s)
    return false;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return false;
    uint64_t d = (uint64_t) (*s - '0');
    if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
      return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

/* One <Contents> element into an entry. */
static int
parse_contents (xmlNodePtr c, struct s3_list_entry *e, struct vb_error *err)
{
  char *key = NULL;
  bool have_size = false;
  for (xmlNodePtr k = c->children; k; k = k->next) {
    if (is_elem (k, "Key")) {
      xmlFree (key);
      key = text_of (k);
    } else if (is_elem (k, "Size")) {
      char *s = text_of (k);
      have_size = parse_u64 (s, &e->size);
      xmlFree (s);
      if (!have_size)
        break;
    }
  }
  if (!key || !*key || !have_size || strlen (key) > S3_KEY_MAX + 600) {
    xmlFree (key);
    return vb_err (err, EBADMSG, "malformed ListObjectsV2 response: an entry "
                   "without a valid Key or Size");
  }
  e->key = strdup (key);
  xmlFree (key);
  if (!e->key)
    return vb_errno (err, ENOMEM, "cannot parse a listing");
  return 0;
}

/* Parse a ListObjectsV2 page (see s3-int.h). */
int
s3_list_parse (const uint8_t *xml, size_t len, struct s3_list_page *page,
               struct vb_error *err)
{
  memset (page, 0, sizeof *page);
  xmlDocPtr doc = read_xml (xml, len);
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  if (!is_elem (root, "ListBucketResult")) {
    xmlFreeDoc (doc);
    return vb_err (err, EBADMSG, "malformed ListObjectsV2 response: %s",
                   doc ? "no ListBucketResult element" : "not well-formed XML");
  }
  int rc = 0;
  size_t cap = 0;
  for (xmlNodePtr n = root->children; n && rc == 0; n = n->next) {
    if (is_elem (n, "IsTruncated")) {
      char *s = text_of (n);
      page->truncated = s && strcmp (s, "true") == 0;
      xmlFree (s);
    } else if (is_elem (n, "NextContinuationToken")) {
      char *s = text_of (n);
      free (page->next_token);
      page->next_token = NULL;
      if (s && *s && strlen (s) <= 4096 && !(page->next_token = strdup (s)))
        rc = vb_errno (err, ENOMEM, "cannot parse a listing");
      else if (s && strlen (s) > 4096)
        rc = vb_err (err, EBADMSG, "malformed ListObjectsV2 response: "
                     "continuation token longer than 4096 bytes");
      xmlFree (s);
    } else if (is_elem (n, "Contents")) {
      if (page->n == cap) {
        if (cap >= S3_LIST_MAX_KEYS) {
          rc = vb_err (err, EBADMSG, "malformed ListObjectsV2 response: more "
                       "than %u keys in one page", S3_LIST_MAX_KEYS);
          break;
        }
        size_t nc = cap ? cap * 2 : 256;
        struct s3_list_entry *nv = realloc (page->v, nc * sizeof *nv);
        if (!nv) {
          rc = vb_errno (err, ENOMEM, "cannot parse a listing");
          break;
        }
        page->v = nv;
        cap = nc;
      }
      memset (&page->v[page->n], 0, sizeof page->v[0]);
      rc = parse_contents (n, &page->v[page->n], err);
      if (rc == 0)
        page->n++;
    }
  }
  xmlFreeDoc (doc);
  if (rc == 0 && page->truncated && !page->next_token)
    rc = vb_err (err, EBADMSG, "malformed ListObjectsV2 response: truncated "
                 "without NextContinuationToken");
  if (rc < 0)
    s3_list_page_free (page);
  return rc;
}

/* Free a page's entries and token. */
void
s3_list_page_free (struct s3_list_page *page)
{
  for (size_t i = 0; i < page->n; i++)
    free (page->v[i].key);
  free (page->v);
  free (page->next_token);
  memset (page, 0, sizeof *page);
}

/* Copy s into out (cap bytes), control characters as '?', cut to fit. */
static void
copy_oneline (const char *s, char *out, size_t cap)
{
  size_t j = 0;
  for (size_t i = 0; s && s[i] && j + 1 < cap; i++)
    out[j++] = ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  if (cap)
    out[j] = '\0';
}

/* Code and Message of an S3 <Error> document (see s3-int.h). */
void
s3_error_parse (const uint8_t *xml, size_t len, char *code, size_t code_cap,
                char *msg, size_t msg_cap)
{
  if (code_cap)
    code[0] = '\0';
  if (msg_cap)
    msg[0] = '\0';
  xmlDocPtr doc = read_xml (xml, len);
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  if (is_elem (root, "Error")) {
    for (xmlNodePtr n = root->children; n; n = n->next) {
      if (is_elem (n, "Code") || is_elem (n, "Message")) {
        char *s = text_of (n);
        if (is_elem (n, "Code"))
          copy_oneline (s, code, code_cap);
        else
          copy_oneline (s, msg, msg_cap);
        xmlFree (s);
      }
    }
  }
  xmlFreeDoc (doc);
}

/* --- encoding and backoff ------------------------------------------------ */

/* URI-encode for SigV4 (see s3-int.h). */
char *
s3_uri_encode (const char *s, bool keep_slash)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen (s);
  char *out = n < SIZE_MAX / 3 ? malloc (3 * n + 1) : NULL;
  if (!out)
    return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char) s[i];
    if (isalnum (c) || c == '-' || c == '_' || c == '.' || c == '~'
        || (keep_slash && c == '/'))
      out[j++] = (char) c;
    else {
      out[j++] = '%';
      out[j++] = hex[c >> 4];
      out[j++] = hex[c & 15];
    }
  }
  out[j] = '\0';
  return out;
}

/* Exponential backoff with jitter (see s3-int.h). */
unsigned
s3_backoff_ms (unsigned attempt, uint32_t rnd)
{
  unsigned d = BACKOFF_BASE_MS;
  for (unsigned i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
    d *= 2;
  if (d > BACKOFF_CAP_MS)
    d = BACKOFF_CAP_MS;
  return d / 2 + rnd % (d / 2 + 1);
}
