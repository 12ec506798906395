/* creditpush: what the service's modules share. */
#ifndef SX_CREDITPUSH_H
#define SX_CREDITPUSH_H

#define CP_SCHEMA     "creditpush"  /* its Postgres schema */
#define CP_PUB_STREAM "publication" /* the stream it consumes */
#define CP_TIMER_KIND "cp_retry"    /* the Redis timer that wakes the deliverer */
#define CP_TIMER_KEY  "queue"

#endif
