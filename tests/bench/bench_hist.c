/* bench_hist.c — the latency histogram of mbx-bench and its scratch allocator.
 * Log buckets (128 per power of two) keep percentiles within 0.4% at a fixed
 * 60 KiB per histogram, however long the run. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

uint64_t bench_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- histogram ------------------------------------------------------------ */

/* Values below 2*SUB are their own bucket; above, v in [2^(s+7), 2^(s+8)) keeps its
 * top 8 bits: index = SUB*s + (v >> s), contiguous with the exact range. */
static unsigned hist_index(uint64_t v)
{
  if (v < 2 * BENCH_HIST_SUB)
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned s = msb - 7;
  unsigned idx = BENCH_HIST_SUB * s + (unsigned)(v >> s);
  return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

/* Middle of a bucket: halves the worst-case error of reporting its lower edge. */
static uint64_t hist_value(unsigned idx)
{
  if (idx < 2 * BENCH_HIST_SUB)
    return idx;
  unsigned s = idx / BENCH_HIST_SUB - 1;
  uint64_t lower = (uint64_t)(idx - BENCH_HIST_SUB * s) << s;
  return lower + ((1ull << s) >> 1);
}

void bench_hist_init(struct bench_hist *h)
{
  memset(h, 0, sizeof(*h));
  h->min_ns = UINT64_MAX;
}

void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
  h->buckets[hist_index(ns)]++;
  h->count++;
  h->sum_ns += (double)ns;
  if (ns < h->min_ns)
    h->min_ns = ns;
  if (ns > h->max_ns)
    h->max_ns = ns;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
  if (!h->count)
    return 0;
  if (q >= 1.0)
    return h->max_ns;
  /* rank of the wanted value, 1-based, nearest-rank definition */
  uint64_t rank = (uint64_t)(q * (double)h->count);
  if ((double)rank < q * (double)h->count)
    rank++;
  if (rank == 0)
    rank = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen >= rank) {
      uint64_t v = hist_value(i);
      /* the bucket's middle may lie outside what was actually seen */
      if (v > h->max_ns)
        v = h->max_ns;
      if (v < h->min_ns)
        v = h->min_ns;
      return v;
    }
  }
  return h->max_ns;
}

void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from)
{
  for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
    into->buckets[i] += from->buckets[i];
  into->count += from->count;
  into->sum_ns += from->sum_ns;
  if (from->min_ns < into->min_ns)
    into->min_ns = from->min_ns;
  if (from->max_ns > into->max_ns)
    into->max_ns = from->max_ns;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int bench_hist_selftest(void)
{
  enum { N = 200000 };
  static uint64_t vals[N];
  static struct bench_hist h;
  bench_hist_init(&h);
  uint64_t x = 88172645463325252ull;
  for (unsigned i = 0; i < N; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    /* log-uniform from 1 ns to ~70 s: every bucket scale gets exercised */
    unsigned bits = (unsigned)(x % 36);
    vals[i] = 1 + ((x >> 8) & ((1ull << bits) - 1));
    bench_hist_add(&h, vals[i]);
  }
  qsort(vals, N, sizeof(vals[0]), cmp_u64);
  static const double qs[] = {0.0001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0};
  for (unsigned i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
    size_t rank = (size_t)(qs[i] * N + 0.999999);
    uint64_t exact = vals[rank ? rank - 1 : 0];
    uint64_t got = bench_hist_quantile(&h, qs[i]);
    double err = exact ? ((double)got - (double)exact) / (double)exact : 0;
    if (err < 0)
      err = -err;
    if (err > 0.01) {
      fprintf(stderr, "hist selftest: q=%g exact=%llu got=%llu error %.4f > 1%%\n", qs[i],
              (unsigned long long)exact, (unsigned long long)got, err);
      return -1;
    }
  }
  if (h.count != N || h.min_ns != vals[0] || h.max_ns != vals[N - 1]) {
    fprintf(stderr, "hist selftest: count/min/max wrong\n");
    return -1;
  }
  return 0;
}

/* ---- scratch allocator ----------------------------------------------------- */

#define SCRATCH_BYTES (4u << 20)

static _Alignas(16) unsigned char scratch_mem[SCRATCH_BYTES];
static size_t scratch_used;

static void *scratch_alloc(void *data, size_t size)
{
  (void)data;
  size_t need = (size + 15) & ~(size_t)15;
  if (need >= size && SCRATCH_BYTES - scratch_used >= need) {
    void *p = scratch_mem + scratch_used;
    scratch_used += need;
    return p;
  }
  return malloc(size);
}

static void scratch_free(void *data, void *p)
{
  (void)data;
  unsigned char *c = p;
  if (c >= scratch_mem && c < scratch_mem + SCRATCH_BYTES)
    return;
  free(p);
}

ProtobufCAllocator bench_scratch = {scratch_alloc, scratch_free, NULL};

void bench_scratch_reset(void) { scratch_used = 0; }
