/* case_state: the life of an enforcement case (执法案件) and which op may act in which
 * state. The one place the transitions are written down; intake consults it before it
 * writes anything.
 *
 *   licence 许可      open -> proposed -> decided -> served [-> executed] -> closed
 *   penalty 处罚      open -> proposed -> decided -> served -> executed -> closed
 *   coercion 强制     as penalty
 *   levy 征收征用     as penalty
 *   inspection 检查   open -> resulted (inspection.result, 双随机一公开) -> closed
 *
 * case.propose may repeat while proposed (each proposal is a new version: the
 * resubmission loop of legal review, 法制审核). case.record is allowed in every state but
 * closed and revoked: the whole-process record (执法全过程记录) covers each stage until the
 * file is archived. case.revoke (撤销 / 确认违法 / 变更 / 无效) applies to a decision that
 * exists: decided, served, executed or closed; revoked is final. */
#ifndef SX_INTAKE_CASE_STATE_H
#define SX_INTAKE_CASE_STATE_H

#include <stddef.h>

typedef enum {
    CASE_LICENCE = 0, /* 许可 */
    CASE_PENALTY,     /* 处罚 */
    CASE_COERCION,    /* 强制 */
    CASE_INSPECTION,  /* 检查 */
    CASE_LEVY,        /* 征收征用 */
    CASE_TYPE_COUNT
} case_type_t;

typedef enum {
    CS_OPEN = 0,
    CS_PROPOSED,
    CS_DECIDED,
    CS_SERVED,
    CS_EXECUTED,
    CS_RESULTED,
    CS_CLOSED,
    CS_REVOKED,
    CS_COUNT
} case_state_t;

typedef enum {
    CO_RECORD = 0,
    CO_PROPOSE,
    CO_DECIDE,
    CO_SERVE,
    CO_EXECUTE,
    CO_CLOSE,
    CO_REVOKE,
    CO_RESULT, /* inspection.result */
    CO_COUNT
} case_op_t;

/* Names as they appear on the wire and in the database ("licence", "proposed",
 * "case.propose"); NULL for a value out of range. */
const char *case_type_name(case_type_t t);
const char *case_state_name(case_state_t s);
const char *case_op_name(case_op_t op);

/* Parses a wire name; returns the value, or -1 when it is not one. */
int case_type_parse(const char *name);
int case_state_parse(const char *name);

/* The state after op on a case of type t in state s: returns it, or -1 when op is not
 * allowed there, with a one-line reason in English and Chinese written into en and zh
 * ("case is decided; case.propose needs open or proposed" / "案件当前状态为已决定，
 * 拟作决定须在已立案或已拟决定状态"), each NUL-terminated and truncated to its size. */
int case_state_next(case_type_t t, case_state_t s, case_op_t op, char *en, size_t en_size, char *zh,
                    size_t zh_size);

#endif
