/*
 * supervisor.h - the signer's supervisor: restarts a signer process that
 * died (issue 16).
 *
 * `fleetpki serve` forks the supervisor first, while it is still root and
 * holds no key; the supervisor forks the signer.  After the network side
 * drops its privileges it could not start a signer that may read root's
 * key files any more, so the process that can must be one made before the
 * drop and kept apart from the network: the supervisor reads nothing the
 * network sends (its control socket only carries channel descriptors
 * towards the network side, and its closing means "stop").
 *
 * What a new signer needs in order to answer for the same key ids as the
 * dead one, the signer tells the supervisor as it happens (the journal):
 * for each key id in order, how it was made (OPEN or GEN), its reference,
 * the passphrase it was opened with and its public key; and whether
 * startup was sealed.  The new signer is forked with that journal in its
 * memory, opens every reference again (a PKCS#11 key opens a new session),
 * keeps an id only if the key it finds has the same public key, and starts
 * sealed if the old one was.  So passphrases of encrypted key files stay
 * in the supervisor's memory for as long as the server runs (a root process
 * that is not dumpable and talks to nothing but the signer and the
 * network side's control socket); a key that cannot be reopened (a token
 * gone, a file changed) stays unavailable: its signatures fail with
 * key-unavailable (503), the others work.
 *
 * Journal record (signer -> supervisor, one SOCK_SEQPACKET message):
 *   u8 kind (1 OPEN, 2 GEN, 3 SEAL), u32 id, u16 n, ref[n], u16 m,
 *   passphrase[m], u16 k, SubjectPublicKeyInfo DER[k]      (big-endian)
 * Channel message (supervisor -> network side, SOCK_SEQPACKET):
 *   u32 restart count, u32 signer pid, u16 first, u16 count, with count
 *   descriptors (SCM_RIGHTS): the network ends of channels first..first+
 *   count-1 of the new signer.  The first message (count 0) names the
 *   first signer.
 */
#ifndef FP_SIGNER_SUPERVISOR_H
#define FP_SIGNER_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { FP_SJ_OPEN = 1, FP_SJ_GEN = 2, FP_SJ_SEAL = 3 };

#define FP_SJ_REF_MAX 4096
#define FP_SJ_SPKI_MAX 4096
/* the largest record: kind, id, three lengths and their bytes */
#define FP_SJ_MSG_MAX (1 + 4 + 2 + FP_SJ_REF_MAX + 2 + 65535 + 2 + FP_SJ_SPKI_MAX)
#define FP_SUP_HDR 12
#define FP_SUP_FDS_PER_MSG 64

typedef struct fp_sj_entry {
    uint8_t kind;         /* 0: no record for this id */
    char *ref;
    unsigned char *pass;
    size_t passlen;
    unsigned char *spki;
    size_t spki_len;
} fp_sj_entry;

typedef struct fp_sigjournal {
    fp_sj_entry *e; /* indexed by key id */
    uint32_t n, cap;
    bool sealed;
    int fd; /* the signer's end of the journal socket */
} fp_sigjournal;

/* In the signer: tell the supervisor about key id (kind OPEN or GEN), or
 * that startup is sealed (FP_SJ_SEAL, the rest empty).  0 on success. */
int fp_sj_send(int fd, uint8_t kind, uint32_t id, const char *ref, const void *pass,
               size_t passlen, const unsigned char *spki, size_t spki_len);

/* The supervisor's main loop (does not return): fds are the signer ends
 * of the n first channels, ctl its end of the control socket. */
void fp_sigsup_main(int ctl, int *fds, int n);

#endif
