/* commit.c — not written yet. */
typedef int mbx__placeholder_commit;
