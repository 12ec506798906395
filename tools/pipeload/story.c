/* The story world (tests/support/story.c), built into pipeload: the Makefile links a
 * tool from its own folder's files only, and the bench drives the same world the
 * end-to-end test does. story.c does not use cmocka. */
#include "../../tests/support/story.c"
