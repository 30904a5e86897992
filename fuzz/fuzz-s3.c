/* Fuzz target: what the S3 backend parses (s3-util.c).  The first byte
 * picks the parser, the rest is its input:
 *   'L' a ListObjectsV2 page       (s3_list_parse)
 *   'E' an S3 error body           (s3_error_parse)
 *   'C' a shared credentials file  (s3_credentials_parse, profile "default")
 *   'U' a repository URL           (s3_url_parse)
 *   'H' an endpoint URL            (s3_endpoint_parse)
 * Checked: a parsed listing has non-empty keys and a token when
 * truncated; an error's code and message are one line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/s3-int.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Abort if s holds a control character (one-line output promised). */
static void
check_oneline (const char *s)
{
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || *s == 0x7f)
      abort ();
}

/* A listing page, checked. */
static void
fuzz_list (const uint8_t *p, size_t n)
{
  struct s3_list_page page;
  struct vb_error e = { 0 };
  if (s3_list_parse (p, n, &page, &e) < 0)
    return;
  if (page.n > S3_LIST_MAX_KEYS || (page.truncated && !page.next_token))
    abort ();
  for (size_t i = 0; i < page.n; i++)
    if (!page.v[i].key || !page.v[i].key[0])
      abort ();
  s3_list_page_free (&page);
}

/* An error body, checked. */
static void
fuzz_error (const uint8_t *p, size_t n)
{
  char code[64], msg[256];
  s3_error_parse (p, n, code, sizeof code, msg, sizeof msg);
  check_oneline (code);
  check_oneline (msg);
}

/* A NUL-terminated copy of the input, for the string parsers. */
static char *
cstr (const uint8_t *p, size_t n)
{
  char *s = malloc (n + 1);
  if (!s)
    abort ();
  memcpy (s, p, n);
  s[n] = '\0';
  return s;
}

/* Pick the parser by the first byte. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  struct vb_error e = { 0 };
  switch (data[0]) {
  case 'L':
    fuzz_list (p, n);
    break;
  case 'E':
    fuzz_error (p, n);
    break;
  case 'C': {
    struct s3_creds c;
    if (s3_credentials_parse ((const char *) p, n, "default", "credentials",
                              &c, &e) == 0
        && (!c.access_key[0] || !c.secret_key[0]))
      abort ();
    break;
  }
  case 'U': {
    char *s = cstr (p, n);
    struct s3_url u;
    if (s3_url_parse (s, &u, &e) == 0 && !s3_bucket_name_ok (u.bucket))
      abort ();
    free (s);
    break;
  }
  case 'H': {
    char *s = cstr (p, n);
    struct s3_endpoint ep;
    s3_endpoint_parse (s, &ep, &e);
    free (s);
    break;
  }
  default:
    break;
  }
  return 0;
}
