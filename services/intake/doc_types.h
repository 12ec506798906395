/* doc_types: the standard enforcement documents (执法文书) a text record may be.
 *
 * 嘉政办发〔2019〕56号 item 7 (完善文字记录): text records follow the document formats the
 * national and provincial departments set (执法文书格式文本); intake refuses a text record
 * whose doc_type is not one of them, naming the allowed list (issue 5). */
#ifndef SX_INTAKE_DOC_TYPES_H
#define SX_INTAKE_DOC_TYPES_H

#include <stdbool.h>
#include <stddef.h>

/* The list, ended by NULL, in the order the error messages name them. */
extern const char *const doc_types[];

/* True when the len bytes at s are exactly one of doc_types. */
bool doc_type_known(const char *s, size_t len);

/* Writes the refusal's messages, each listing every type ("、" / ", " separated), into
 * zh and en of size n each (RPC_TEXT_MAX + 1 holds the whole list). */
void doc_types_message(char *zh, char *en, size_t n);

#endif
