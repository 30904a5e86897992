/* Unit tests of the S3 backend's parsers (src/repo/s3-util.c): repository
 * URLs, endpoint URLs, the shared credentials file, ListObjectsV2 pages
 * and error bodies (with hostile input), SigV4 URI encoding, backoff. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmback/repo.h"
#include "repo/s3-int.h"

/* --- s3:// URLs --------------------------------------------------------- */

static void
test_url_ok (void **state)
{
  struct s3_url u;
  struct vb_error e = { 0 };
  assert_int_equal (s3_url_parse ("s3://my-bucket/backups/vm1", &u, &e), 0);
  assert_string_equal (u.bucket, "my-bucket");
  assert_string_equal (u.prefix, "backups/vm1");
  assert_int_equal (s3_url_parse ("s3://my-bucket", &u, &e), 0);
  assert_string_equal (u.prefix, "");
  assert_int_equal (s3_url_parse ("s3://my-bucket/", &u, &e), 0);
  assert_string_equal (u.prefix, "");
  assert_int_equal (s3_url_parse ("s3://a.b-c/x/y///", &u, &e), 0);
  assert_string_equal (u.bucket, "a.b-c");
  assert_string_equal (u.prefix, "x/y");
  assert_true (repo_is_s3_url ("s3://x"));
  assert_false (repo_is_s3_url ("/srv/repo"));
  assert_false (repo_is_s3_url ("S3://x"));
}

static void
test_url_bad (void **state)
{
  struct s3_url u;
  const char *bad[] = {
    "http://bucket/x", "s3:/bucket", "s3://", "s3://ab", "s3://Bucket/x",
    "s3://bu_cket", "s3://-bucket", "s3://bucket-", "s3://b..ucket",
    "s3://bucket/a//b", "s3://bucket/a/./b", "s3://bucket/../b",
    "s3://bucket/.tmp-x/y", "s3://bucket/a b", "s3://bucket/a\\b",
    "s3://bucket/a\x01", "s3://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/x",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct vb_error e = { 0 };
    int rc = s3_url_parse (bad[i], &u, &e);
    if (rc != -EINVAL)
      fail_msg ("'%s' accepted", bad[i]);
    assert_int_equal (e.code, EINVAL);
    assert_null (strchr (e.msg, '\n'));
  }
  char longp[700];
  memset (longp, 'p', sizeof longp);
  memcpy (longp, "s3://bucket/", 12);
  longp[sizeof longp - 1] = '\0';
  struct vb_error e = { 0 };
  assert_int_equal (s3_url_parse (longp, &u, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "prefix longer"));
}

/* --- endpoints ------------------------------------------------------------ */

static void
test_endpoint (void **state)
{
  struct s3_endpoint ep;
  struct vb_error e = { 0 };
  assert_int_equal (s3_endpoint_parse ("http://127.0.0.1:7480", &ep, &e), 0);
  assert_false (ep.https);
  assert_string_equal (ep.host, "127.0.0.1:7480");
  assert_true (ep.host_is_ip);
  assert_int_equal (s3_endpoint_parse ("https://s3.example.com/", &ep, &e), 0);
  assert_true (ep.https);
  assert_string_equal (ep.host, "s3.example.com");
  assert_false (ep.host_is_ip);
  assert_int_equal (s3_endpoint_parse ("https://[::1]:9000", &ep, &e), 0);
  assert_true (ep.host_is_ip);
  assert_string_equal (ep.host, "[::1]:9000");
  assert_int_equal (s3_endpoint_parse ("http://localhost:9000", &ep, &e), 0);
  assert_true (ep.host_is_ip);
  assert_int_equal (s3_endpoint_parse ("http://10.0.0.1", &ep, &e), 0);
  assert_true (ep.host_is_ip);
  assert_int_equal (s3_endpoint_parse ("http://1.2.3.4.example.com", &ep, &e), 0);
  assert_false (ep.host_is_ip);
  const char *bad[] = {
    "ftp://host", "host:9000", "https://", "https://host/path", "https://host?x=1",
    "https://host:0", "https://host:65536", "https://host:12ab", "https://user@host",
    "https://[::1", "https://[::1]x", "https://ho st", NULL,
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct vb_error e2 = { 0 };
    if (s3_endpoint_parse (bad[i], &ep, &e2) != -EINVAL)
      fail_msg ("endpoint '%s' accepted", bad[i] ? bad[i] : "(null)");
  }
}

/* --- credentials file ------------------------------------------------------ */

static const char creds_text[] =
  "# a comment\n"
  "[default]\n"
  "aws_access_key_id = AKDEFAULT\n"
  "aws_secret_access_key=SKDEFAULT  \r\n"
  "\n"
  "; another comment\n"
  "[profile backup]\n"
  "  aws_access_key_id\t=  AKBACKUP\n"
  "aws_secret_access_key = SKBACKUP\n"
  "aws_session_token = TOKEN123\n"
  "region = eu-west-1\n"
  "[half]\n"
  "aws_access_key_id = ONLY\n";

static void
test_credentials (void **state)
{
  struct s3_creds c;
  struct vb_error e = { 0 };
  size_t n = strlen (creds_text);
  assert_int_equal (s3_credentials_parse (creds_text, n, "default", "creds", &c, &e), 0);
  assert_string_equal (c.access_key, "AKDEFAULT");
  assert_string_equal (c.secret_key, "SKDEFAULT");
  assert_string_equal (c.session_token, "");
  assert_int_equal (s3_credentials_parse (creds_text, n, "backup", "creds", &c, &e), 0);
  assert_string_equal (c.access_key, "AKBACKUP");
  assert_string_equal (c.secret_key, "SKBACKUP");
  assert_string_equal (c.session_token, "TOKEN123");
  /* a profile without both keys, a missing profile */
  assert_int_equal (s3_credentials_parse (creds_text, n, "half", "creds", &c, &e), -ENOENT);
  assert_null (strstr (e.msg, "ONLY"));          /* never a value in a message */
  vb_err_clear (&e);
  assert_int_equal (s3_credentials_parse (creds_text, n, "nope", "creds", &c, &e), -ENOENT);
  assert_non_null (strstr (e.msg, "no profile 'nope'"));
  /* malformed lines name the line, not the value */
  const char bad1[] = "[default]\naws_access_key_id AKX\n";
  vb_err_clear (&e);
  assert_int_equal (s3_credentials_parse (bad1, strlen (bad1), "default", "f", &c, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "line 2"));
  assert_null (strstr (e.msg, "AKX"));
  const char bad2[] = "[default\naws_access_key_id=a\n";
  vb_err_clear (&e);
  assert_int_equal (s3_credentials_parse (bad2, strlen (bad2), "default", "f", &c, &e), -EINVAL);
  /* an over-long value is refused, an over-long line too */
  char *big = malloc (20000);
  assert_non_null (big);
  int k = snprintf (big, 20000, "[default]\naws_access_key_id=");
  memset (big + k, 'A', 300);
  snprintf (big + k + 300, 20000 - (size_t) k - 300, "\naws_secret_access_key=s\n");
  vb_err_clear (&e);
  assert_int_equal (s3_credentials_parse (big, strlen (big), "default", "f", &c, &e), -EINVAL);
  memset (big, 'x', 19999);
  big[19999] = '\0';
  vb_err_clear (&e);
  assert_int_equal (s3_credentials_parse (big, strlen (big), "default", "f", &c, &e), -EINVAL);
  free (big);
  /* empty input, NUL bytes */
  vb_err_clear (&e);
  assert_int_equal (s3_credentials_parse ("", 0, "default", "f", &c, &e), -ENOENT);
  const char nul[] = "[default]\naws_access_key_id=a\0b\naws_secret_access_key=s\n";
  vb_err_clear (&e);
  assert_int_equal (s3_credentials_parse (nul, sizeof nul - 1, "default", "f", &c, &e), 0);
  assert_string_equal (c.access_key, "a");
}

/* --- ListObjectsV2 ---------------------------------------------------------- */

static int
parse (const char *xml, struct s3_list_page *pg, struct vb_error *e)
{
  return s3_list_parse ((const uint8_t *) xml, strlen (xml), pg, e);
}

static void
test_list_ok (void **state)
{
  const char *xml =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>b</Name><Prefix>r/</Prefix><MaxKeys>1000</MaxKeys>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>r/config</Key><LastModified>2026-11-25T22:48:21.071Z</LastModified>"
    "<ETag>&quot;b1946ac9&quot;</ETag><Size>178</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Size>18446744073709551615</Size><Key>r/a&amp;b</Key></Contents>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<KeyCount>2</KeyCount></ListBucketResult>";
  struct s3_list_page pg;
  struct vb_error e = { 0 };
  assert_int_equal (parse (xml, &pg, &e), 0);
  assert_int_equal (pg.n, 2);
  assert_string_equal (pg.v[0].key, "r/config");
  assert_int_equal (pg.v[0].size, 178);
  assert_string_equal (pg.v[1].key, "r/a&b");
  assert_true (pg.v[1].size == UINT64_MAX);
  assert_true (pg.truncated);
  assert_string_equal (pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  s3_list_page_free (&pg);
  /* the last page, and an empty listing */
  assert_int_equal (parse ("<ListBucketResult><IsTruncated>false</IsTruncated>"
                           "<Contents><Key>k</Key><Size>0</Size></Contents>"
                           "</ListBucketResult>", &pg, &e), 0);
  assert_int_equal (pg.n, 1);
  assert_false (pg.truncated);
  assert_null (pg.next_token);
  s3_list_page_free (&pg);
  assert_int_equal (parse ("<ListBucketResult/>", &pg, &e), 0);
  assert_int_equal (pg.n, 0);
  s3_list_page_free (&pg);
}

static void
test_list_bad (void **state)
{
  const char *bad[] = {
    "",
    "not xml at all",
    "<ListBucketResult><Contents><Key>k</Key>",                    /* cut short */
    "<Error><Code>AccessDenied</Code></Error>",                   /* wrong root */
    "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",   /* no Size */
    "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>", /* no Key */
    "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
    "<ListBucketResult><Contents><Key>k</Key><Size>1e3</Size></Contents></ListBucketResult>",
    ("<ListBucketResult><Contents><Key>k</Key><Size>18446744073709551616</Size></Contents>"
     "</ListBucketResult>"),
    "<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents></ListBucketResult>",
    "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", /* no token */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct s3_list_page pg;
    struct vb_error e = { 0 };
    if (parse (bad[i], &pg, &e) != -EBADMSG)
      fail_msg ("accepted listing %zu: %s", i, bad[i]);
    assert_non_null (strstr (e.msg, "ListObjectsV2"));
    assert_int_equal (pg.n, 0);
    assert_null (pg.v);
  }
}

static void
test_list_hostile (void **state)
{
  struct s3_list_page pg;
  struct vb_error e = { 0 };
  /* an external entity is never loaded, an internal one not expanded
   * into keys of another meaning */
  const char *xxe =
    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
    "<ListBucketResult><Contents><Key>a&x;</Key><Size>1</Size></Contents></ListBucketResult>";
  int rc = parse (xxe, &pg, &e);
  if (rc == 0) {
    assert_null (strstr (pg.v[0].key, "root:"));
    s3_list_page_free (&pg);
  }
  /* billion laughs: refused or bounded, never a memory blow-up */
  const char *lol =
    "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">"
    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
    "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
    "<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">"
    "<!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">]>"
    "<ListBucketResult><Contents><Key>&h;</Key><Size>1</Size></Contents></ListBucketResult>";
  vb_err_clear (&e);
  rc = parse (lol, &pg, &e);
  assert_true (rc == 0 || rc == -EBADMSG);
  if (rc == 0)
    s3_list_page_free (&pg);
  /* a very long key and a very long token are refused */
  size_t n = 20000;
  char *x = malloc (n + 200);
  assert_non_null (x);
  int k = sprintf (x, "<ListBucketResult><Contents><Key>");
  memset (x + k, 'k', n);
  sprintf (x + k + n, "</Key><Size>1</Size></Contents></ListBucketResult>");
  vb_err_clear (&e);
  assert_int_equal (parse (x, &pg, &e), -EBADMSG);
  k = sprintf (x, "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>");
  memset (x + k, 't', n);
  sprintf (x + k + n, "</NextContinuationToken></ListBucketResult>");
  vb_err_clear (&e);
  assert_int_equal (parse (x, &pg, &e), -EBADMSG);
  free (x);
  /* NUL bytes in the middle */
  const char nul[] = "<ListBucketResult>\0<Contents/></ListBucketResult>";
  vb_err_clear (&e);
  rc = s3_list_parse ((const uint8_t *) nul, sizeof nul - 1, &pg, &e);
  assert_int_equal (rc, -EBADMSG);
}

/* --- error bodies ----------------------------------------------------------- */

static void
test_error_parse (void **state)
{
  char code[64], msg[128];
  const char *x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>"
                  "<Message>The specified key\ndoes not exist.</Message>"
                  "<Key>a/b</Key><RequestId>tx1</RequestId></Error>";
  s3_error_parse ((const uint8_t *) x, strlen (x), code, sizeof code, msg, sizeof msg);
  assert_string_equal (code, "NoSuchKey");
  assert_string_equal (msg, "The specified key?does not exist.");
  s3_error_parse ((const uint8_t *) "<html>502</html>", 16, code, sizeof code, msg, sizeof msg);
  assert_string_equal (code, "");
  assert_string_equal (msg, "");
  s3_error_parse (NULL, 0, code, sizeof code, msg, sizeof msg);
  assert_string_equal (code, "");
  /* long values are cut to the buffer */
  char big[600];
  int k = sprintf (big, "<Error><Code>");
  memset (big + k, 'C', 400);
  sprintf (big + k + 400, "</Code></Error>");
  s3_error_parse ((const uint8_t *) big, strlen (big), code, sizeof code, msg, sizeof msg);
  assert_int_equal (strlen (code), sizeof code - 1);
}

/* --- encoding, backoff ------------------------------------------------------ */

static void
test_uri_encode (void **state)
{
  char *s = s3_uri_encode ("snapshots/web/20261125T200503Z/scsi0:0.index", true);
  assert_string_equal (s, "snapshots/web/20261125T200503Z/scsi0%3A0.index");
  free (s);
  s = s3_uri_encode ("a/b c+d=e~f_g-h.i", false);
  assert_string_equal (s, "a%2Fb%20c%2Bd%3De~f_g-h.i");
  free (s);
  s = s3_uri_encode ("\xff", false);
  assert_string_equal (s, "%FF");
  free (s);
}

static void
test_backoff (void **state)
{
  /* attempt a waits within [d/2, d], d = 200 ms * 2^(a-1) capped at 10 s */
  unsigned d = 200;
  for (unsigned a = 1; a <= 12; a++) {
    for (uint32_t rnd = 0; rnd < 5000; rnd += 7) {
      unsigned ms = s3_backoff_ms (a, rnd * 2654435761u);
      assert_true (ms >= d / 2 && ms <= d);
    }
    d = d * 2 > 10000 ? 10000 : d * 2;
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_url_ok),
    cmocka_unit_test (test_url_bad),
    cmocka_unit_test (test_endpoint),
    cmocka_unit_test (test_credentials),
    cmocka_unit_test (test_list_ok),
    cmocka_unit_test (test_list_bad),
    cmocka_unit_test (test_list_hostile),
    cmocka_unit_test (test_error_parse),
    cmocka_unit_test (test_uri_encode),
    cmocka_unit_test (test_backoff),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
