/* html: the portal's shared layout and escaping (see html.h). */
#include "html.h"

#include <stdlib.h>
#include <string.h>

/* One stylesheet for every page, inline so a page is one request and works offline. */
static const char s_css[] =
    "body{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;margin:0;"
    "color:#222;background:#fafafa;line-height:1.6}"
    "header{background:#a61b1b;color:#fff;padding:.6em 1em}"
    "header .site{font-size:1.3em;font-weight:bold;color:#fff;text-decoration:none}"
    "nav a{color:#fff;margin-right:1.2em;text-decoration:none}"
    "nav a[aria-current]{text-decoration:underline}"
    "main{max-width:960px;margin:1em auto;padding:0 1em;background:#fff}"
    "footer{max-width:960px;margin:2em auto;padding:0 1em;color:#666;font-size:.85em}"
    "table{border-collapse:collapse;margin:.5em 0;width:100%}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3;white-space:nowrap}"
    "form.q{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:end}"
    "form.q label{display:flex;flex-direction:column;font-size:.9em}"
    ".err{background:#fff3f0;border:1px solid #e0b4a8;padding:.5em 1em}"
    ".note{color:#666;font-size:.9em}.pager a,.pager span{margin-right:1em}"
    ".ok{color:#1e7b34;font-weight:bold}.bad{color:#a61b1b;font-weight:bold}";

int
html_doc_open(html_doc_t *doc)
{
    doc->text = NULL;
    doc->len = 0;
    doc->f = open_memstream(&doc->text, &doc->len);
    return doc->f ? 0 : -1;
}

char *
html_doc_close(html_doc_t *doc, size_t *len)
{
    if (!doc->f)
        return NULL;
    int bad = ferror(doc->f);
    if (fclose(doc->f) != 0)
        bad = 1;
    doc->f = NULL;
    if (bad) {
        free(doc->text);
        doc->text = NULL;
        return NULL;
    }
    if (len)
        *len = doc->len;
    char *text = doc->text;
    doc->text = NULL;
    return text;
}

void
html_escape_n(FILE *f, const char *s, size_t n)
{
    if (!s)
        return;
    size_t i = 0;
    while (i < n) {
        /* Copy the run of bytes that need nothing in one write. */
        size_t j = i;
        while (j < n && s[j] != '&' && s[j] != '<' && s[j] != '>' && s[j] != '"' && s[j] != '\'')
            j++;
        if (j > i)
            fwrite(s + i, 1, j - i, f);
        if (j == n)
            break;
        switch (s[j]) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputs("&#39;", f);
            break;
        }
        i = j + 1;
    }
}

void
html_escape(FILE *f, const char *s)
{
    if (s)
        html_escape_n(f, s, strlen(s));
}

void
html_url_escape(FILE *f, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            fputc(c, f);
        else {
            fputc('%', f);
            fputc(hex[c >> 4], f);
            fputc(hex[c & 15], f);
        }
    }
}

void
html_page_begin(FILE *f, const char *title, html_nav_t current)
{
    static const struct {
        html_nav_t id;
        const char *href, *label;
    } nav[] = {{HTML_NAV_SEARCH, "/", "执法公示查询"},
               {HTML_NAV_OFFICERS, "/officers", "执法证件查询"},
               {HTML_NAV_STATISTICS, "/statistics", "统计年报"}};
    fputs("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>",
          f);
    html_escape(f, title);
    fputs(" - 行政执法公示平台</title><style>", f);
    fputs(s_css, f);
    fputs("</style></head><body>\n<header><a class=\"site\" href=\"/\">行政执法公示平台</a>"
          "<nav>",
          f);
    for (size_t i = 0; i < sizeof nav / sizeof nav[0]; i++)
        fprintf(f, "<a href=\"%s\"%s>%s</a>", nav[i].href,
                nav[i].id == current ? " aria-current=\"page\"" : "", nav[i].label);
    fputs("</nav></header>\n<main>\n", f);
}

void
html_page_end(FILE *f)
{
    fputs("</main>\n<footer><p>本平台依据行政执法公示制度公开执法信息；自然人姓名、证件号码已作"
          "去标识化处理。对公示内容有异议的，可向作出决定的执法机关或本级司法行政部门反映。</p>"
          "<p>数据接口：<a href=\"/api/v1/decisions\">/api/v1/decisions</a></p></footer>\n"
          "</body></html>\n",
          f);
}

char *
html_message_page(const char *title, const char *heading, const char *message,
                  const char *back_href)
{
    html_doc_t doc;
    if (html_doc_open(&doc) < 0)
        return NULL;
    html_page_begin(doc.f, title, HTML_NAV_NONE);
    fputs("<h1>", doc.f);
    html_escape(doc.f, heading);
    fputs("</h1>\n<p class=\"err\">", doc.f);
    html_escape(doc.f, message);
    fputs("</p>\n", doc.f);
    if (back_href)
        fprintf(doc.f, "<p><a href=\"%s\">返回</a></p>\n", back_href);
    html_page_end(doc.f);
    return html_doc_close(&doc, NULL);
}
