/* html: the public portal's shared HTML layout (执法公示平台) — the header, navigation and
 * footer every page wears, inline CSS (no external resource, no script), and escaping.
 * Pages are written into a FILE * opened with open_memstream (html_doc_open), the buffer
 * the portal's pages and the statistics page (stats.c) both write into.
 *
 * Every value that did not come from a literal in the code goes through html_escape (or
 * html_url_escape inside an href's query string): the portal shows names and reasons that
 * agencies typed. Output is UTF-8; html_escape passes bytes >= 0x80 through unchanged
 * (the database and query.c only ever hand it valid UTF-8). */
#ifndef SX_PUB_HTML_H
#define SX_PUB_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The navigation entries; html_page_begin marks the current one (aria-current). */
typedef enum {
    HTML_NAV_NONE = 0,
    HTML_NAV_SEARCH,     /* / : 执法公示查询 */
    HTML_NAV_OFFICERS,   /* /officers : 执法证件查询 */
    HTML_NAV_STATISTICS, /* /statistics : 统计年报 */
} html_nav_t;

/* A page being written: f is an open_memstream over text/len. */
typedef struct {
    FILE *f;    /* write the page here */
    char *text; /* owned by the stream until html_doc_close */
    size_t len;
} html_doc_t;

/* Opens doc's stream. Returns 0, or -1 when out of memory (doc->f is then NULL). */
int html_doc_open(html_doc_t *doc);

/* Closes doc's stream and returns the page (NUL-terminated; the caller frees it), with
 * its length in *len when len is not NULL; NULL when a write failed (out of memory), the
 * buffer then freed. doc->f is NULL afterwards. */
char *html_doc_close(html_doc_t *doc, size_t *len);

/* Writes s (NULL: nothing) with & < > " ' escaped, fit for text and quoted attributes. */
void html_escape(FILE *f, const char *s);

/* The same for n bytes of s. */
void html_escape_n(FILE *f, const char *s, size_t n);

/* Writes s percent-encoded (RFC 3986 unreserved characters kept), for a query-string value
 * inside an href; the result needs no further HTML escaping. NULL: nothing. */
void html_url_escape(FILE *f, const char *s);

/* Writes the start of a page: doctype, <head> with charset, viewport, the title
 * ("<title> - 行政执法公示平台", title escaped) and the shared inline CSS, then the header
 * with the site name, the navigation (current marked) and <main>. */
void html_page_begin(FILE *f, const char *title, html_nav_t current);

/* Writes the end of a page: </main>, the footer (监督电话 note, the JSON API), </html>. */
void html_page_end(FILE *f);

/* A whole page saying what went wrong, in Chinese, e.g. for a 400 (heading "查询参数有误",
 * message naming the parameter) or a 404 ("未找到"). heading and message are escaped;
 * back_href (a literal path, not escaped; NULL: none) links back to a form. Returns a new
 * string (the caller frees it) or NULL when out of memory. */
char *html_message_page(const char *title, const char *heading, const char *message,
                        const char *back_href);

#endif
