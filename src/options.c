/* options.c - the table of SIMALLOC_* options and their parsing.
 *
 * Options are read straight from `environ`: no getenv copies, no
 * allocation, so this is safe on the very first malloc of a process. */
#include "options.h"

#include <stdint.h>
#include <string.h>

#include "fmt.h"
#include "heap.h"
#include "os.h"

extern char **environ;

typedef enum { KIND_SIZE, KIND_BOOL, KIND_COUNT, KIND_WORD } kind;

/* The words of KIND_WORD options; a word's value is its index. */
static const char *const sites_modes[] = {"off", "sample", "all", NULL};  /* sites.h */
static const char *const error_modes[] = {"abort", "warn", NULL};

typedef struct option {
  const char *name;   /* without the SIMALLOC_ prefix */
  kind kind;
  size_t value;       /* the default until the environment says otherwise */
  size_t max;
  const char *const *words;
} option;

static option table[SA_OPT_COUNT] = {
  [SA_OPT_ARENA_SIZE]           = {"ARENA_SIZE", KIND_SIZE, (size_t)32 << 30, (size_t)63 << 30, NULL},
  [SA_OPT_RELEASE_THRESHOLD]    = {"RELEASE_THRESHOLD", KIND_SIZE, SA_HEAP_RELEASE_THRESHOLD, (size_t)63 << 30, NULL},
  [SA_OPT_RETAIN]               = {"RETAIN", KIND_SIZE, SA_HEAP_RETAIN, (size_t)63 << 30, NULL},
  [SA_OPT_DECAY]                = {"DECAY", KIND_COUNT, SA_HEAP_DECAY, 3600, NULL},
  [SA_OPT_STATS]                = {"STATS", KIND_BOOL, 0, 1, NULL},
  [SA_OPT_SNAPSHOT]             = {"SNAPSHOT", KIND_BOOL, 1, 1, NULL},
  [SA_OPT_SNAPSHOT_INTERVAL_MS] = {"SNAPSHOT_INTERVAL_MS", KIND_COUNT, 0, 3600000, NULL},
  [SA_OPT_SNAPSHOT_BLOCKS]      = {"SNAPSHOT_BLOCKS", KIND_COUNT, 1 << 20, 1 << 26, NULL},
  [SA_OPT_HEAPS]                = {"HEAPS", KIND_COUNT, 0, 64, NULL},
  [SA_OPT_LARGE_THRESHOLD]      = {"LARGE_THRESHOLD", KIND_SIZE, 32 << 10, (size_t)63 << 30, NULL},
  [SA_OPT_CACHE_SIZE]           = {"CACHE_SIZE", KIND_SIZE, 8 << 10, 1 << 20, NULL},
  [SA_OPT_CACHE_LIMIT]          = {"CACHE_LIMIT", KIND_SIZE, 32 << 20, (size_t)16 << 30, NULL},
  [SA_OPT_SITES]                = {"SITES", KIND_WORD, 0, 2, sites_modes},
  [SA_OPT_SITE_RATE]            = {"SITE_RATE", KIND_SIZE, 512 << 10, (size_t)1 << 40, NULL},
  [SA_OPT_SITE_DEPTH]           = {"SITE_DEPTH", KIND_COUNT, 16, 32, NULL},
  [SA_OPT_SITE_MAX]             = {"SITE_MAX", KIND_COUNT, 4096, 1 << 20, NULL},
  [SA_OPT_ON_ERROR]             = {"ON_ERROR", KIND_WORD, 0, 1, error_modes},
  [SA_OPT_CHECK]                = {"CHECK", KIND_COUNT, 0, (size_t)1 << 40, NULL},
  [SA_OPT_LEAKS]                = {"LEAKS", KIND_BOOL, 0, 1, NULL},
};

static int loaded;

int sa_parse_size(const char *s, size_t *out) {
  size_t v = 0;
  const char *p = s;
  if (*p < '0' || *p > '9') return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (SIZE_MAX - 9) / 10) return -1;
    v = v * 10 + (size_t)(*p - '0');
  }
  int shift = 0;
  switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    default: break;
  }
  if (*p == 'i' && shift) p++;           /* accept KiB/MiB/GiB too */
  if ((*p == 'b' || *p == 'B') && shift) p++;
  if (*p) return -1;
  if (shift && v > (SIZE_MAX >> shift)) return -1;
  *out = v << shift;
  return 0;
}

static int parse(const option *o, const char *s, size_t *out) {
  if (o->kind == KIND_BOOL) {
    if (!strcmp(s, "1") || !strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true")) {
      *out = 1;
      return 0;
    }
    if (!strcmp(s, "0") || !strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false")) {
      *out = 0;
      return 0;
    }
    return -1;
  }
  if (o->kind == KIND_WORD) {
    for (size_t i = 0; o->words[i]; i++)
      if (!strcmp(s, o->words[i])) {
        *out = i;
        return 0;
      }
    return -1;
  }
  if (sa_parse_size(s, out) != 0) return -1;
  return *out <= o->max ? 0 : -1;
}

static void complain(const char *entry) {
  char buf[256];
  sa_fmt f = SA_FMT_INIT(buf);
  sa_fmt_str(&f, "simalloc: ignoring invalid option '");
  sa_fmt_str(&f, entry);
  sa_fmt_str(&f, "'\n");
  sa_os_write(2, f.buf, f.len);
}

static void apply(const char *entry) {
  const char *name = entry + 9;  /* past "SIMALLOC_" */
  for (int i = 0; i < SA_OPT_COUNT; i++) {
    size_t n = strlen(table[i].name);
    if (strncmp(name, table[i].name, n) != 0 || name[n] != '=') continue;
    size_t v;
    if (parse(&table[i], name + n + 1, &v) == 0)
      table[i].value = v;
    else
      complain(entry);
    return;
  }
  /* Unknown names are left alone: they may belong to a newer version. */
}

void sa_options_load(void) {
  if (loaded || !environ) return;
  loaded = 1;
  for (char **e = environ; *e; e++)
    if (!strncmp(*e, "SIMALLOC_", 9)) apply(*e);
}

size_t sa_option(sa_option_id id) {
  return table[id].value;
}

const char *sa_option_name(sa_option_id id) {
  return table[id].name;
}
