/* sites.c - allocation sites (sites.h).  Sites are not recorded yet: every
 * countdown is endless, so no block is ever sampled or TRACKED. */
#include "sites.h"

void sa_sites_init(void) {}

int64_t sa_sites_first_countdown(void) { return INT64_MAX; }

void *sa_site_sampled(void *p, size_t block_size) {
  (void)block_size;
  return p;
}

void sa_site_released(void *p, size_t block_size) {
  (void)p;
  (void)block_size;
}

void sa_site_resized(void *p, size_t old_size, size_t new_size) {
  (void)p;
  (void)old_size;
  (void)new_size;
}

uint32_t sa_site_of(const void *p) {
  (void)p;
  return 0;
}

void sa_sites_report_leaks(void) {}
