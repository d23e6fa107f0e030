/* options.h - the SIMALLOC_* environment options, one table (options.c),
 * mirrored in the README. */
#ifndef SA_OPTIONS_H
#define SA_OPTIONS_H

#include <stddef.h>

typedef enum sa_option_id {
  SA_OPT_ARENA_SIZE,
  SA_OPT_RELEASE_THRESHOLD,
  SA_OPT_RETAIN,
  SA_OPT_DECAY,
  SA_OPT_STATS,
  SA_OPT_SNAPSHOT,
  SA_OPT_SNAPSHOT_INTERVAL_MS,
  SA_OPT_SNAPSHOT_BLOCKS,
  SA_OPT_HEAPS,
  SA_OPT_LARGE_THRESHOLD,
  SA_OPT_CACHE_SIZE,
  SA_OPT_CACHE_LIMIT,
  SA_OPT_SITES,        /* SA_SITES_OFF, _SAMPLE or _ALL (sites.h) */
  SA_OPT_SITE_RATE,
  SA_OPT_SITE_DEPTH,
  SA_OPT_SITE_MAX,
  SA_OPT_ON_ERROR,
  SA_OPT_CHECK,
  SA_OPT_LEAKS,
  SA_OPT_COUNT
} sa_option_id;

/* Reads the environment once; later calls do nothing.  Never allocates.
 * A malformed value is reported on stderr (quoting it) and ignored. */
void sa_options_load(void);
size_t sa_option(sa_option_id id);
/* The name of an option without its SIMALLOC_ prefix, e.g. "ARENA_SIZE". */
const char *sa_option_name(sa_option_id id);

/* Parses "123", "64K", "4M", "2G" (binary units); 0 on success. */
int sa_parse_size(const char *s, size_t *out);

#endif
