/* handler.c — not written yet. */
typedef int mbx__placeholder_handler;
