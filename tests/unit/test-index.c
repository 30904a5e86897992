/* Unit tests of the index layer (src/repo/index.c,
 * docs/FORMAT-index-manifest.md).
 *
 * The trailing MAC is checked with OpenSSL's HMAC() directly, not through
 * crypto_mac, so the documented layout is proven by code we did not
 * write.  Hostile indexes are made by patching a good one and re-MACing
 * it, so each check behind the MAC is reached on its own; the absurd
 * sizes run in a child with a small address-space limit, so a large
 * allocation before the checks would show up as a failure. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "vmback/vdisk.h"
#include "common/le.h"
#include "repo/repo-int.h"

#define HDR 32u
#define MAC 32u
#define MiB (UINT64_C (1) << 20)

static struct repo_keys keys;

/* HMAC-SHA-256 with OpenSSL directly (independent of crypto.c).  No
 * cmocka assertion here: it also runs in a forked child. */
static void
ref_mac (const uint8_t key[32], const void *data, size_t len, uint8_t out[32])
{
  unsigned int ol = 32;
  if (HMAC (EVP_sha256 (), key, 32, data, len, out, &ol) == NULL || ol != 32)
    abort ();
}

/* Recompute the trailing MAC of an encoded index of len bytes. */
static void
remac (uint8_t *b, size_t len)
{
  ref_mac (keys.mac_key, b, len - MAC, b + len - MAC);
}

/* A fixed MAC key for every test. */
static int
group_setup (void **state)
{
  memset (&keys, 0, sizeof keys);
  for (int i = 0; i < REPO_KEY_LEN; i++)
    keys.mac_key[i] = (uint8_t) (0x40 + i);
  return 0;
}

/* A sample index: 10 MiB + 1 byte at 1 MiB chunks = 11 chunks, every
 * third one zero, the others with a recognizable id. */
static void
make_sample (struct repo_index *ix)
{
  struct vb_error e = { 0 };
  assert_int_equal (index_alloc (ix, 10 * MiB + 1, 1u << 20, &e), 0);
  assert_int_equal (ix->n, 11);
  for (uint64_t i = 0; i < ix->n; i++)
    if (i % 3 != 0)
      for (int j = 0; j < REPO_ID_LEN; j++)
        ix->ids[i][j] = (uint8_t) (i * 31 + (uint64_t) j + 1);
}

/* --- round trips and layout -------------------------------------------- */

/* Encode then decode gives the same index. */
static void
test_round_trip (void **state)
{
  struct repo_index ix, back;
  struct vb_error e = { 0 };
  make_sample (&ix);
  uint8_t *buf;
  size_t len;
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), 0);
  assert_int_equal (len, HDR + 11 * 32 + MAC);
  assert_int_equal (index_decode (&keys, buf, len, "r", &back, &e), 0);
  assert_int_equal (back.disk_size, 10 * MiB + 1);
  assert_int_equal (back.chunk_size, 1u << 20);
  assert_int_equal (back.n, 11);
  assert_memory_equal (back.ids, ix.ids, 11 * 32);
  for (uint64_t i = 0; i < 11; i++)
    assert_int_equal (index_is_zero (&back, i), i % 3 == 0);
  assert_true (index_is_zero (&back, 11));        /* past the end */
  assert_true (index_is_zero (&back, UINT64_MAX));
  index_free (&back);
  assert_null (back.ids);
  assert_int_equal (back.n, 0);
  index_free (&back);                             /* twice is harmless */
  index_free (&ix);
  free (buf);
}

/* The bytes are exactly as documented, MAC included. */
static void
test_layout (void **state)
{
  struct repo_index ix;
  struct vb_error e = { 0 };
  make_sample (&ix);
  uint8_t *buf;
  size_t len;
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), 0);
  static const uint8_t hdr[HDR] = {
    'V', 'B', 'I', 'X', 1, 0, 0, 0,           /* magic, version 1 */
    0, 0, 0x10, 0, 0, 0, 0, 0,                /* chunk size 2^20, flags 0 */
    1, 0, 0xa0, 0, 0, 0, 0, 0,                /* disk size 10 MiB + 1 */
    11, 0, 0, 0, 0, 0, 0, 0,                  /* 11 chunks */
  };
  assert_memory_equal (buf, hdr, HDR);
  assert_memory_equal (buf + HDR, ix.ids, 11 * 32);
  uint8_t mac[32];
  ref_mac (keys.mac_key, buf, len - MAC, mac);
  assert_memory_equal (buf + len - MAC, mac, 32);
  index_free (&ix);
  free (buf);
}

/* A disk of 0 bytes: no chunks, header + MAC only. */
static void
test_empty_disk (void **state)
{
  struct repo_index ix, back;
  struct vb_error e = { 0 };
  assert_int_equal (index_alloc (&ix, 0, CHUNK_MIN_SIZE, &e), 0);
  assert_int_equal (ix.n, 0);
  uint8_t *buf;
  size_t len;
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), 0);
  assert_int_equal (len, HDR + MAC);
  assert_int_equal (index_decode (&keys, buf, len, "e", &back, &e), 0);
  assert_int_equal (back.n, 0);
  assert_true (index_is_zero (&back, 0));
  index_free (&back);
  index_free (&ix);
  free (buf);
}

/* Exact multiples and every legal chunk size round-trip. */
static void
test_chunk_sizes (void **state)
{
  struct vb_error e = { 0 };
  for (uint32_t cs = CHUNK_MIN_SIZE; cs <= CHUNK_MAX_SIZE; cs <<= 1) {
    struct repo_index ix, back;
    assert_int_equal (index_alloc (&ix, 3 * (uint64_t) cs, cs, &e), 0);
    assert_int_equal (ix.n, 3);
    ix.ids[1][5] = 7;
    uint8_t *buf;
    size_t len;
    assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), 0);
    assert_int_equal (index_decode (&keys, buf, len, "c", &back, &e), 0);
    assert_int_equal (back.chunk_size, cs);
    assert_false (index_is_zero (&back, 1));
    assert_true (index_is_zero (&back, 2));
    index_free (&back);
    index_free (&ix);
    free (buf);
  }
}

/* --- damage -------------------------------------------------------------- */

/* Every single-byte change (three patterns per byte) is rejected, and a
 * failed decode leaves the index zeroed. */
static void
test_every_byte_flip (void **state)
{
  struct repo_index ix, back;
  make_sample (&ix);
  uint8_t *buf;
  size_t len;
  struct vb_error e = { 0 };
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), 0);
  static const uint8_t pats[] = { 0x01, 0x80, 0xff };
  for (size_t i = 0; i < len; i++)
    for (size_t p = 0; p < sizeof pats; p++) {
      buf[i] ^= pats[p];
      vb_err_clear (&e);
      memset (&back, 0xaa, sizeof back);
      int r = index_decode (&keys, buf, len, "flip", &back, &e);
      if (r >= 0)
        fail_msg ("flip 0x%02x at byte %zu was not detected", pats[p], i);
      assert_int_equal (e.code, -r);
      assert_non_null (strstr (e.msg, "'flip'"));
      assert_null (back.ids);
      assert_int_equal (back.n, 0);
      buf[i] ^= pats[p];
    }
  /* untouched it still decodes */
  assert_int_equal (index_decode (&keys, buf, len, "flip", &back, &e), 0);
  index_free (&back);
  index_free (&ix);
  free (buf);
}

/* The wrong key is a MAC failure with the documented message. */
static void
test_wrong_key (void **state)
{
  struct repo_index ix, back;
  make_sample (&ix);
  uint8_t *buf;
  size_t len;
  struct vb_error e = { 0 };
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), 0);
  struct repo_keys other = keys;
  other.mac_key[31] ^= 1;
  assert_int_equal (index_decode (&other, buf, len, "snapshots/a/b/disk0",
                                  &back, &e), -EBADMSG);
  assert_string_equal (e.msg, "index 'snapshots/a/b/disk0' is damaged or was "
                       "tampered with");
  index_free (&ix);
  free (buf);
}

/* Every truncation, and extensions (with and without a fresh MAC). */
static void
test_truncated_extended (void **state)
{
  struct repo_index ix, back;
  make_sample (&ix);
  uint8_t *buf;
  size_t len;
  struct vb_error e = { 0 };
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), 0);
  for (size_t l = 0; l < len; l++) {
    vb_err_clear (&e);
    assert_true (index_decode (&keys, buf, l, "t", &back, &e) < 0);
    assert_null (back.ids);
  }

  /* one extra id, MAC recomputed: only the length check can catch it */
  uint8_t *big = calloc (1, len + 32);
  assert_non_null (big);
  memcpy (big, buf, len - MAC);
  remac (big, len + 32);
  vb_err_clear (&e);
  assert_int_equal (index_decode (&keys, big, len + 32, "x", &back, &e),
                    -EBADMSG);
  assert_non_null (strstr (e.msg, "header says"));
  /* ... and not re-MACed: trailing garbage */
  memcpy (big, buf, len);
  vb_err_clear (&e);
  assert_true (index_decode (&keys, big, len + 1, "x", &back, &e) < 0);
  assert_true (index_decode (&keys, big, len + 32, "x", &back, &e) < 0);
  /* one id short, re-MACed */
  memcpy (big, buf, len - MAC - 32);
  remac (big, len - 32);
  vb_err_clear (&e);
  assert_int_equal (index_decode (&keys, big, len - 32, "x", &back, &e),
                    -EBADMSG);
  free (big);
  index_free (&ix);
  free (buf);
}

/* An index of header, extra zero bytes and MAC (correctly MACed) with the
 * given fields; returns the decode result and its message in e (1000 if
 * a failed decode left ids behind).  No cmocka assertion here: it also
 * runs in a forked child. */
static int
decode_header (uint32_t version, uint32_t cs, uint32_t flags, uint64_t size,
               uint64_t n, size_t extra, struct vb_error *e)
{
  size_t len = HDR + extra + MAC;
  uint8_t *b = calloc (1, len);
  if (b == NULL)
    abort ();
  memcpy (b, "VBIX", 4);
  le32_put (b + 4, version);
  le32_put (b + 8, cs);
  le32_put (b + 12, flags);
  le64_put (b + 16, size);
  le64_put (b + 24, n);
  remac (b, len);
  struct repo_index ix;
  vb_err_clear (e);
  int r = index_decode (&keys, b, len, "h", &ix, e);
  if (r == 0)
    index_free (&ix);
  else if (ix.ids != NULL)
    r = 1000;
  free (b);
  return r;
}

/* Each header field checked on its own, behind a valid MAC. */
static void
test_bad_headers (void **state)
{
  struct vb_error e = { 0 };
  const uint32_t M = 1u << 20;
  /* sanity: the template itself is fine */
  assert_int_equal (decode_header (1, M, 0, M, 1, 32, &e), 0);
  assert_int_equal (decode_header (1, M, 0, 0, 0, 0, &e), 0);

  assert_int_equal (decode_header (2, M, 0, M, 1, 32, &e), -ENOTSUP);
  assert_non_null (strstr (e.msg, "version 2"));
  assert_int_equal (decode_header (0, M, 0, M, 1, 32, &e), -ENOTSUP);
  assert_int_equal (decode_header (1, M, 1, M, 1, 32, &e), -ENOTSUP);
  assert_int_equal (decode_header (1, M, 0x80000000u, M, 1, 32, &e), -ENOTSUP);

  /* chunk sizes: 0, 3, not a power of two, below and above the range */
  const uint32_t bad_cs[] = { 0, 1, 3, 4096, CHUNK_MIN_SIZE / 2,
                              CHUNK_MIN_SIZE + 1, 3u << 20, CHUNK_MAX_SIZE * 2,
                              16u << 20, UINT32_MAX, 1u << 31 };
  for (size_t i = 0; i < sizeof bad_cs / sizeof *bad_cs; i++) {
    assert_int_equal (decode_header (1, bad_cs[i], 0, 0, 0, 0, &e), -EBADMSG);
    assert_non_null (strstr (e.msg, "chunk size"));
  }

  /* disk sizes over 64 TiB, including ones whose chunk count overflows */
  assert_int_equal (decode_header (1, M, 0, VDISK_MAX_SIZE + 1,
                                   (VDISK_MAX_SIZE >> 20) + 1, 0, &e),
                    -EBADMSG);
  assert_non_null (strstr (e.msg, "disk size"));
  assert_int_equal (decode_header (1, M, 0, UINT64_MAX, UINT64_MAX >> 20, 0,
                                   &e), -EBADMSG);

  /* n disagreeing with the sizes */
  assert_int_equal (decode_header (1, M, 0, M, 0, 0, &e), -EBADMSG);
  assert_int_equal (decode_header (1, M, 0, M, 2, 64, &e), -EBADMSG);
  assert_int_equal (decode_header (1, M, 0, M + 1, 1, 32, &e), -EBADMSG);
  assert_int_equal (decode_header (1, M, 0, 0, 1, 32, &e), -EBADMSG);
  assert_int_equal (decode_header (1, M, 0, M, UINT64_MAX, 32, &e), -EBADMSG);
  assert_non_null (strstr (e.msg, "lists"));
}

/* Address-space limits do not mix with ASan's shadow memory. */
#if defined(__SANITIZE_ADDRESS__)
# define HAVE_ASAN 1
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define HAVE_ASAN 1
# endif
#endif

/* Absurd but self-consistent headers: rejected without allocating the
 * ids.  The checks run in a child whose address space may grow by at
 * most 64 MiB, so a 256 MiB allocation would fail (ENOMEM, not the
 * expected code). */
static void
test_absurd_sizes_no_alloc (void **state)
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0) {
#ifndef HAVE_ASAN
    long pages = 0;
    FILE *f = fopen ("/proc/self/statm", "r");
    if (f == NULL || fscanf (f, "%ld", &pages) != 1)
      _exit (10);
    fclose (f);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t) pages * (rlim_t) sysconf (_SC_PAGESIZE)
      + (64u << 20);
    if (setrlimit (RLIMIT_AS, &rl) != 0)
      _exit (11);
    /* the limit works: a 256 MiB allocation fails */
    void *p = malloc (256u << 20);
    if (p != NULL)
      _exit (12);
#endif
    struct vb_error e = { 0 };
    const uint32_t S = CHUNK_MIN_SIZE;
    uint64_t cap = UINT64_C (1) << 23;
    /* cap + 1 chunks of 256 KiB (a 2 TiB disk): over the ids limit */
    if (decode_header (1, S, 0, (cap + 1) * S, cap + 1, 0, &e) != -EFBIG)
      _exit (13);
    /* exactly the cap, but the buffer holds no ids */
    if (decode_header (1, S, 0, cap * S, cap, 0, &e) != -EBADMSG)
      _exit (14);
    /* 64 TiB in 256 KiB chunks: 2^28 ids = 8 GiB */
    if (decode_header (1, S, 0, VDISK_MAX_SIZE, VDISK_MAX_SIZE / S, 0, &e)
        != -EFBIG)
      _exit (15);
    /* 64 TiB in 8 MiB chunks = 2^23 ids, allowed, but absent */
    if (decode_header (1, CHUNK_MAX_SIZE, 0, VDISK_MAX_SIZE,
                       VDISK_MAX_SIZE / CHUNK_MAX_SIZE, 64, &e) != -EBADMSG)
      _exit (16);
    /* index_alloc refuses the same geometry */
    struct repo_index ix;
    if (index_alloc (&ix, VDISK_MAX_SIZE, S, &e) != -EFBIG || ix.ids != NULL)
      _exit (17);
    _exit (0);
  }
  int st;
  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_true (WIFEXITED (st));
  assert_int_equal (WEXITSTATUS (st), 0);
}

/* A buffer longer than any possible index is refused before the MAC is
 * even computed (the length alone says so; no need to touch the bytes
 * behind the first 64). */
static void
test_oversized_buffer (void **state)
{
  /* 256 MiB + 65 bytes: only the header is read */
  size_t len = (256u << 20) + 65;
  uint8_t *b = malloc (len);
  assert_non_null (b);
  memset (b, 0, 64);
  memcpy (b, "VBIX", 4);
  le32_put (b + 4, 1);
  struct repo_index ix;
  struct vb_error e = { 0 };
  assert_int_equal (index_decode (&keys, b, len, "o", &ix, &e), -EFBIG);
  free (b);
}

/* index_alloc and index_encode check their arguments like decode does,
 * so we never write an index we would refuse to read. */
static void
test_alloc_encode_limits (void **state)
{
  struct repo_index ix;
  struct vb_error e = { 0 };
  assert_int_equal (index_alloc (&ix, MiB, 0, &e), -EINVAL);
  vb_err_clear (&e);
  assert_int_equal (index_alloc (&ix, MiB, 3u << 20, &e), -EINVAL);
  vb_err_clear (&e);
  assert_int_equal (index_alloc (&ix, MiB, 16u << 20, &e), -EINVAL);
  vb_err_clear (&e);
  assert_int_equal (index_alloc (&ix, VDISK_MAX_SIZE + 1, CHUNK_MAX_SIZE, &e),
                    -EFBIG);
  vb_err_clear (&e);
  /* 8 TiB + 1 byte at 1 MiB = 2^23 + 1 chunks */
  assert_int_equal (index_alloc (&ix, (UINT64_C (8) << 40) + 1, 1u << 20, &e),
                    -EFBIG);
  assert_non_null (strstr (e.msg, "larger chunk size"));
  assert_null (ix.ids);

  /* encode refuses an inconsistent struct */
  make_sample (&ix);
  uint8_t *buf = (uint8_t *) &e;
  size_t len = 1;
  ix.n = 12;
  vb_err_clear (&e);
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), -EINVAL);
  assert_null (buf);
  assert_int_equal (len, 0);
  ix.n = 11;
  ix.chunk_size = 3;
  vb_err_clear (&e);
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), -EINVAL);
  ix.chunk_size = 1u << 20;
  uint8_t (*ids)[REPO_ID_LEN] = ix.ids;
  ix.ids = NULL;
  vb_err_clear (&e);
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), -EINVAL);
  ix.ids = ids;
  index_free (&ix);
}

/* The header's n is read as a full 64-bit value (no truncation to 32
 * bits: 2^32 + 11 chunks must not pass for 11). */
static void
test_n_high_bits (void **state)
{
  struct repo_index ix, back;
  make_sample (&ix);
  uint8_t *buf;
  size_t len;
  struct vb_error e = { 0 };
  assert_int_equal (index_encode (&keys, &ix, &buf, &len, &e), 0);
  le64_put (buf + 24, le64_get (buf + 24) + (UINT64_C (1) << 32));
  remac (buf, len);
  assert_int_equal (index_decode (&keys, buf, len, "n", &back, &e), -EBADMSG);
  index_free (&ix);
  free (buf);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_layout),
    cmocka_unit_test (test_empty_disk),
    cmocka_unit_test (test_chunk_sizes),
    cmocka_unit_test (test_every_byte_flip),
    cmocka_unit_test (test_wrong_key),
    cmocka_unit_test (test_truncated_extended),
    cmocka_unit_test (test_bad_headers),
    cmocka_unit_test (test_absurd_sizes_no_alloc),
    cmocka_unit_test (test_oversized_buffer),
    cmocka_unit_test (test_alloc_encode_limits),
    cmocka_unit_test (test_n_high_bits),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
