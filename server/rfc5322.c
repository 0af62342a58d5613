/* rfc5322.c — not written yet. */
typedef int mbx__placeholder_rfc5322;
