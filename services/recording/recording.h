/* recording: the whole-process record service (sx-recording, 执法全过程记录). What its
 * parts share.
 *
 * main.c reads the settings, wires the sockets and runs the loop; the parts:
 *   chain.c     canonical entry bytes and the SHA-256 chain (pure)
 *   events.c    the intake-event subscriber: appends entries, AV checks, archive at close
 *   av_rules.c  the audio/video record (音像记录) rules (pure)
 *   archive.c   the Ed25519-sealed archive manifest (归档)
 *   access.c    record.get / record.verify / record.access_log and the access log (调阅监督)
 *   classified.c record.classified_roles.put/.get: the roles an agency allows to read its
 *               classified records in full
 *
 * Tables live in schema "recording" (schemas/sql/recording); events leave through its
 * outbox on stream "recording" (record.appended, record.gap, record.gap_closed,
 * record.archived). Contract: schemas/messages/recording.md. */
#ifndef SX_RECORDING_H
#define SX_RECORDING_H

#include <sodium.h>

#include "ops.h"

#define RECORDING_SCHEMA  "recording"
#define RECORDING_STREAM  "recording"
#define RECORDING_EVENT_V 1
#define RECORDING_SOURCE  "intake" /* the stream whose case events are recorded */

/* The service's shared state: built by main.c, borrowed by the parts. */
typedef struct {
    unsigned char sign_pk[crypto_sign_PUBLICKEYBYTES]; /* the archive seal's public key */
    unsigned char sign_sk[crypto_sign_SECRETKEYBYTES]; /* and its secret key */
    ops_t *ops;                                        /* metrics; may be NULL in tests */
} recording_t;

#endif
