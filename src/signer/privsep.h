/*
 * privsep.h - the signer process: CA keys out of the process that talks to
 * the network (OpenBSD acme-client's keyproc and relayd's ca process are
 * the model).
 *
 * `fleetpki serve` forks its supervisor (supervisor.h) first, before any
 * key is opened or any thread or socket exists; the supervisor forks the
 * signer, and a new one whenever it dies.  It is the only process that reads key files or opens
 * PKCS#11 sessions; the network process holds remote keys (keys/rkey.h)
 * that ask it for each signature over socketpairs.  Startup opens every
 * key the server needs by reference (path or pkcs11: URI); then the parent
 * seals the signer: from then on it opens no new reference, so a
 * compromised network process can use the keys it was configured with,
 * but can neither read them nor make the signer open other files.
 *
 * Wire (each direction, on one channel at a time; integers big-endian):
 *   request  = u32 length, u8 op, body            length = 1 + |body|
 *     OPEN   body = u16 n, ref[n], u16 m, passphrase[m]
 *     SIGN   body = u32 key id, u8 n, digest name[n] (n = 0: whole message,
 *            Ed25519), data (a digest of exactly that digest's size, or
 *            the message)
 *     GEN    body = u16 n, ref[n], u16 a, algorithm[a], u16 m, passphrase[m]
 *            (a new key for key file ref, written to ref.new, 0600; after
 *            the seal only for a ref already open)
 *     SEAL   body = empty
 *   response = u32 length, u8 status (fp_errcode), body
 *     OPEN, GEN ok: u32 key id, SubjectPublicKeyInfo DER;  SIGN ok: signature;
 *     error: the message text.
 * Every length is checked against the bytes present and against a fixed
 * maximum (FP_PRIVSEP_MAX_MSG); a malformed request closes its channel
 * (the requests before it on the channel are still answered).
 *
 * Pipelining: a synchronous channel carries one request, then its answer.
 * An async channel (one per network worker) carries up to async_per
 * requests back to back; one signing thread serves it, so the answers
 * come back in the order of the requests, which is how the client matches
 * them (no request ids on the wire).  The client writes the requests of
 * one event-loop turn in one write, the signer reads what is there in one
 * read and writes the answers in as few writes, so a busy worker wakes the
 * signer once per batch rather than once per signature.
 */
#ifndef FP_PRIVSEP_H
#define FP_PRIVSEP_H

#include <sys/types.h>

#include "../common/err.h"

/* Largest request: an Ed25519 CRL is signed whole (RFC 8032 PureEdDSA). */
#define FP_PRIVSEP_MAX_MSG (64u * 1024 * 1024)

typedef struct fp_privsep fp_privsep;

/*
 * Fork the signer with nchan channels (one per thread that may sign at
 * once; more threads wait for a channel), and async_blocks more for
 * asynchronous signing (rkey.h start/finish: a network worker's ASYNC
 * jobs, signer/async.h), each drawn by one thread, which then has up to
 * async_per signatures out at once on it (0: none; at most 64).  In the parent: *out is set and
 * every later fp_signer_open_file goes to the signer (signer.h).  The child
 * never returns: it serves until every channel closes, then exits.
 */
int fp_privsep_start(int nchan, int async_blocks, int async_per, fp_privsep **out,
                     fp_error *err);

/* Startup is over: the signer refuses references it has not opened. */
int fp_privsep_seal(fp_privsep *p, fp_error *err);

/* The signer process running now (it changes when one is restarted), and
 * its supervisor (supervisor.h), which is this process's child. */
pid_t fp_privsep_pid(const fp_privsep *p);
pid_t fp_privsep_supervisor_pid(const fp_privsep *p);

/* The signer's main loop on already-made channel fds (does not return):
 * what the forked child runs; tests drive it with hand-made frames. */
void fp_privsep_child_main(int *fds, int n);

/* The same, for a signer the supervisor starts (supervisor.h): journal j
 * (NULL: none) gives the key ids to reopen and the socket to record new
 * ones on. */
struct fp_sigjournal;
void fp_privsep_child_run(int *fds, int n, const struct fp_sigjournal *j);

/* Close the channels (the signer exits) and reap it; restores direct
 * opening.  Remote keys still alive fail with FP_ERR_KEY_UNAVAILABLE. */
void fp_privsep_free(fp_privsep *p);

#endif
