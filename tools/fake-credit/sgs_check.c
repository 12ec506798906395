/* The fake platform checks what arrives with the very rules creditpush checks before it
 * sends (services/creditpush/sgs_record.c), so both sides read sgs-fields.md alike. */
#include "../../services/creditpush/sgs_record.c"
