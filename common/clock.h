/* clock.h — wall-clock time for records, monotonic time for timeouts and leases. */
#ifndef MBX_CLOCK_H
#define MBX_CLOCK_H
#include <stdint.h>
int64_t mbx_now_us(void);             /* CLOCK_REALTIME, microseconds since the epoch */
uint64_t mbx_mono_us(void);           /* CLOCK_MONOTONIC, microseconds */
#endif
