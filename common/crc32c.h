/* crc32c.h — CRC-32C (Castagnoli), the checksum of every log record. */
#ifndef MBX_CRC32C_H
#define MBX_CRC32C_H
#include <stddef.h>
#include <stdint.h>
/* crc: 0 to start, or a previous result to continue over more bytes. */
uint32_t mbx_crc32c(uint32_t crc, const void *data, size_t len);
/* The table-driven form, whatever the CPU has (tests compare the two). */
uint32_t mbx_crc32c_portable(uint32_t crc, const void *data, size_t len);
#endif
