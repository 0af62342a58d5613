/* store_sync.c — not written yet. */
typedef int mbx__placeholder_store_sync;
