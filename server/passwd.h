/* passwd.h — memory-hard password hashing (scrypt, from OpenSSL 3's KDF).
 * Hashing costs tens of milliseconds on purpose: never call it on a loop thread
 * (use uv_queue_work). Format: "scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>". */
#ifndef MBX_PASSWD_H
#define MBX_PASSWD_H

/* Hashes password into out (size >= 128). Returns 0, MBX_EINVAL (empty or over
 * 1024 bytes), MBX_ENOMEM/MBX_EIO (OpenSSL failure). */
int mbx_passwd_hash(const char *password, char *out, unsigned out_size);
/* Returns 0 if password matches hash, MBX_EAUTH if not, MBX_EINVAL if the hash is
 * malformed. Constant-time comparison. */
int mbx_passwd_verify(const char *password, const char *hash);

#endif
