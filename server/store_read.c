/* store_read.c — not written yet. */
typedef int mbx__placeholder_store_read;
