/* vmback S3 backend: the pure helpers behind backend-s3.c (docs/S3.md).
 *
 * Everything here works on strings and buffers only (no network), so the
 * unit tests (tests/unit/test-s3.c) can feed it hostile input:
 *   s3_url_parse          "s3://BUCKET/PREFIX" -> bucket, prefix
 *   s3_endpoint_parse     "http[s]://HOST[:PORT][/]" -> scheme, host
 *   s3_credentials_parse  one profile of an ~/.aws/credentials file
 *   s3_list_parse         a ListObjectsV2 result page (XML)
 *   s3_error_parse        an S3 error body (XML) -> Code, Message
 *   s3_uri_encode         SigV4 URI encoding of a key or query value
 *   s3_backoff_ms         retry delay (exponential, with jitter)
 */
#ifndef VMBACK_S3_INT_H
#define VMBACK_S3_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

#define S3_KEY_MAX 1024          /* longest object key we send or accept */
#define S3_LIST_MAX_KEYS 100000  /* keys one ListObjectsV2 page may hold */

/* A repository URL: s3://BUCKET[/PREFIX].  prefix has no leading or
 * trailing '/', "" for the bucket's root. */
struct s3_url {
  char bucket[64];
  char prefix[512];
};
int s3_url_parse (const char *url, struct s3_url *out, struct vb_error *err);
/* True if name is a valid (DNS-compatible) bucket name. */
bool s3_bucket_name_ok (const char *name);

/* An endpoint URL: http://HOST[:PORT] or https://HOST[:PORT], an optional
 * trailing '/', nothing else. */
struct s3_endpoint {
  bool https;
  char host[256];              /* HOST[:PORT] as written ([v6]:port too) */
  bool host_is_ip;             /* IPv4/IPv6 literal or "localhost" */
};
int s3_endpoint_parse (const char *url, struct s3_endpoint *out,
                       struct vb_error *err);

/* Credentials of one profile. */
struct s3_creds {
  char access_key[256];
  char secret_key[256];
  char session_token[4096];    /* "" if none */
};
/* Parse an AWS shared credentials file (INI: [profile], key = value,
 * '#'/';' comments) for profile.  0 found (access and secret key both
 * set), -ENOENT profile or keys missing, -EINVAL malformed (the message
 * names `what` and the line, never a value). */
int s3_credentials_parse (const char *text, size_t len, const char *profile,
                          const char *what, struct s3_creds *out,
                          struct vb_error *err);

/* One object of a listing. */
struct s3_list_entry {
  char *key;
  uint64_t size;
};
/* One page of ListObjectsV2. */
struct s3_list_page {
  struct s3_list_entry *v;
  size_t n;
  bool truncated;
  char *next_token;            /* NULL if none */
};
int s3_list_parse (const uint8_t *xml, size_t len, struct s3_list_page *page,
                   struct vb_error *err);
void s3_list_page_free (struct s3_list_page *page);

/* Code and Message of an S3 error body; both "" when the body is not an
 * S3 error document.  Control characters are replaced (one-line). */
void s3_error_parse (const uint8_t *xml, size_t len, char *code,
                     size_t code_cap, char *msg, size_t msg_cap);

/* URI-encode s as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ as
 * %XX (upper-case hex); '/' kept when keep_slash.  malloc'd. */
char *s3_uri_encode (const char *s, bool keep_slash);

/* Delay before retry number attempt (1, 2, ...): base * 2^(attempt-1),
 * capped, then a random point in its upper half (rnd is any random
 * 32-bit value). */
unsigned s3_backoff_ms (unsigned attempt, uint32_t rnd);

#endif
