/* xmalloc - producers allocate, consumers free, through a shared queue.
 *
 * Modelled on the xmalloc test.  With `-t N` there are N producer and N
 * consumer threads around one bounded queue.  A producer allocates a batch
 * of blocks of 16-256 bytes, writes them and pushes the batch; a consumer
 * pops a batch, reads and frees every block.  No block is ever freed by the
 * thread that allocated it.  Stresses remote frees and memory that flows
 * steadily from one set of threads to another.
 *
 * The total number of blocks does not depend on the thread count.
 */
#include "common.h"

#define NAME "xmalloc"
#define BATCH 64
#define QUEUE 256
#define BASE_BATCHES 8e4

struct batch {
  void *p[BATCH];
  size_t size[BATCH];
};

/* A bounded ring of batches under one mutex; `done` counts producers that
 * have finished so consumers know when to stop. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t not_empty, not_full;
  struct batch *ring[QUEUE];
  unsigned head, count;
  int producers_left;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
        PTHREAD_COND_INITIALIZER, { 0 }, 0, 0, 0 };

struct worker {
  int id;
  uint64_t batches;   /* producers: how many to make */
  uint64_t sum;       /* consumers: sum of what they read */
};

static void queue_push(struct batch *b)
{
  pthread_mutex_lock(&q.lock);
  while (q.count == QUEUE)
    pthread_cond_wait(&q.not_full, &q.lock);
  q.ring[(q.head + q.count++) % QUEUE] = b;
  pthread_cond_signal(&q.not_empty);
  pthread_mutex_unlock(&q.lock);
}

/* Returns NULL once the queue is empty and every producer has finished. */
static struct batch *queue_pop(void)
{
  struct batch *b = NULL;
  pthread_mutex_lock(&q.lock);
  while (q.count == 0 && q.producers_left > 0)
    pthread_cond_wait(&q.not_empty, &q.lock);
  if (q.count) {
    b = q.ring[q.head];
    q.head = (q.head + 1) % QUEUE;
    q.count--;
    pthread_cond_signal(&q.not_full);
  }
  pthread_mutex_unlock(&q.lock);
  return b;
}

static void producer_done(void)
{
  pthread_mutex_lock(&q.lock);
  if (--q.producers_left == 0)
    pthread_cond_broadcast(&q.not_empty);
  pthread_mutex_unlock(&q.lock);
}

static void *producer(void *arg)
{
  struct worker *w = arg;
  uint64_t rng = rng_seed((uint64_t)w->id + 1), tag = (uint64_t)w->id << 40;
  uint64_t batches = w->batches;  /* the workers' records share cache lines */
  for (uint64_t i = 0; i < batches; i++) {
    struct batch *b = malloc(sizeof *b);
    if (!b)
      bench_nomem(NAME, sizeof *b);
    for (int j = 0; j < BATCH; j++) {
      b->size[j] = rng_range(&rng, 16, 256);
      b->p[j] = malloc(b->size[j]);
      if (!b->p[j])
        bench_nomem(NAME, b->size[j]);
      bench_stamp(b->p[j], b->size[j], tag++);
    }
    queue_push(b);
  }
  producer_done();
  return NULL;
}

static void *consumer(void *arg)
{
  struct worker *w = arg;
  struct batch *b;
  uint64_t sum = 0;
  while ((b = queue_pop())) {
    for (int j = 0; j < BATCH; j++) {
      sum += bench_peek(b->p[j], b->size[j]) * 0x9e3779b97f4a7c15ull;
      free(b->p[j]);
    }
    free(b);
  }
  w->sum = sum;  /* once: the workers' records share cache lines */
  return NULL;
}

static void *either(void *arg)
{
  struct worker *w = arg;
  return w->batches ? producer(arg) : consumer(arg);
}

int main(int argc, char **argv)
{
  struct bench_args a;
  bench_parse(argc, argv, NAME, 1, &a);

  int n = a.threads;
  uint64_t per = bench_scaled(&a, BASE_BATCHES) / (uint64_t)n;
  struct worker w[2 * BENCH_MAX_THREADS];
  if (per == 0)
    per = 1;
  for (int i = 0; i < 2 * n; i++)
    w[i] = (struct worker){ .id = i, .batches = i % 2 ? 0 : per };
  q.producers_left = n;
  bench_spawn(NAME, 2 * n, either, w, sizeof w[0]);

  /* Consumers interleave arbitrarily, so combine with a commutative sum. */
  uint64_t sum = 0;
  for (int i = 0; i < 2 * n; i++)
    sum += w[i].sum;
  bench_report(NAME, sum);
  return 0;
}
