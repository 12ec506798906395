/* page_portal: the portal's Chinese HTML pages (see page_portal.h). */
#include "page_portal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "records.h"

#define S_CONCLUSION_CUT 180 /* bytes of 执法结论 shown in a result row */

static const char *
s_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* One row of a two-column table: label (a literal) and value (escaped); nothing when
 * value is empty. */
static void
s_row(FILE *f, const char *label, const char *value)
{
    if (!value || !value[0])
        return;
    fprintf(f, "<tr><th>%s</th><td>", label);
    html_escape(f, value);
    fputs("</td></tr>\n", f);
}

const char *
page_withdraw_kind_zh(const char *kind)
{
    static const char *const map[][2] = {{"revoke", "撤销"},
                                         {"confirm_illegal", "确认违法"},
                                         {"change", "变更"},
                                         {"invalid", "确认无效"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (kind && strcmp(kind, map[i][0]) == 0)
            return map[i][1];
    return kind ? kind : "";
}

/* ---- Search (执法公示查询) ------------------------------------------------------------ */

/* Writes the query string of q for page (the filters as given), "&amp;"-separated. */
static void
s_query_href(FILE *f, const query_search_t *q, int page)
{
    const struct {
        const char *k, *v;
    } kv[] = {{"party", q->party}, {"uscc", q->uscc}, {"agency", q->agency},
              {"type", q->type},   {"from", q->from}, {"to", q->to}};
    fputs("/?", f);
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kv[i].v[0]) {
            fprintf(f, "%s=", kv[i].k);
            html_url_escape(f, kv[i].v);
            fputs("&amp;", f);
        }
    if (q->size != QUERY_SIZE_DEFAULT)
        fprintf(f, "size=%d&amp;", q->size);
    fprintf(f, "page=%d", page);
}

static void
s_search_form(FILE *f, const query_search_t *q, const json_t *agencies)
{
    static const char *const types[][2] = {{"penalty", "行政处罚"},
                                           {"licence", "行政许可"},
                                           {"coercion", "行政强制"},
                                           {"inspection", "行政检查"},
                                           {"levy", "行政征收"}};
    const char *party = q ? q->party : "", *uscc = q ? q->uscc : "", *agency = q ? q->agency : "";
    const char *type = q ? q->type : "", *from = q ? q->from : "", *to = q ? q->to : "";
    fputs(
        "<form class=\"q\" method=\"get\" action=\"/\" id=\"search\">\n"
        "<label>当事人名称（关键字）<input type=\"text\" name=\"party\" maxlength=\"100\" value=\"",
        f);
    html_escape(f, party);
    fputs("\"></label>\n<label>统一社会信用代码<input type=\"text\" name=\"uscc\" maxlength=\"18\" "
          "value=\"",
          f);
    html_escape(f, uscc);
    fputs("\"></label>\n<label>执法机关<select name=\"agency\"><option value=\"\">全部</option>",
          f);
    size_t i;
    json_t *a;
    json_array_foreach(agencies, i, a)
    {
        const char *code = s_str(a, "code");
        fputs("<option value=\"", f);
        html_escape(f, code);
        fputs(strcmp(code, agency) == 0 ? "\" selected>" : "\">", f);
        html_escape(f, s_str(a, "name")[0] ? s_str(a, "name") : code);
        fputs("</option>", f);
    }
    fputs(
        "</select></label>\n<label>执法类别<select name=\"type\"><option value=\"\">全部</option>",
        f);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        fprintf(f, "<option value=\"%s\"%s>%s</option>", types[t][0],
                strcmp(types[t][0], type) == 0 ? " selected" : "", types[t][1]);
    fputs("</select></label>\n<label>决定日期自<input type=\"date\" name=\"from\" value=\"", f);
    html_escape(f, from);
    fputs("\"></label>\n<label>至<input type=\"date\" name=\"to\" value=\"", f);
    html_escape(f, to);
    fputs("\"></label>\n<button type=\"submit\">查询</button>\n</form>\n", f);
}

char *
page_search(const query_search_t *q, const json_t *agencies, const json_t *result,
            const char *error_zh)
{
    html_doc_t doc;
    if (html_doc_open(&doc) < 0)
        return NULL;
    FILE *f = doc.f;
    html_page_begin(f, "执法公示查询", HTML_NAV_SEARCH);
    fputs("<h1>执法公示查询</h1>\n<p class=\"note\">查询已公示的行政执法决定（行政许可、行政处罚"
          "等）。自然人姓名、身份证件号码已去标识化处理。</p>\n",
          f);
    if (error_zh) {
        fputs("<p class=\"err\" id=\"error\">查询参数有误：", f);
        html_escape(f, error_zh);
        fputs("</p>\n", f);
    }
    s_search_form(f, q, agencies);
    if (result && q) {
        long long total = (long long)json_integer_value(json_object_get(result, "total"));
        const json_t *items = json_object_get(result, "items");
        int pages = total > 0 ? (int)((total + q->size - 1) / q->size) : 0;
        fprintf(f, "<p id=\"total\">共 %lld 条记录", total);
        if (pages > 0)
            fprintf(f, "，第 %d / %d 页", q->page, pages);
        fputs("</p>\n", f);
        if (json_array_size(items) > 0) {
            fputs("<table id=\"results\"><thead><tr><th>决定日期</th><th>执法机关</th>"
                  "<th>执法对象</th><th>执法类别</th><th>决定书文号</th><th>执法结论</th></tr>"
                  "</thead><tbody>\n",
                  f);
            size_t i;
            json_t *it;
            json_array_foreach(items, i, it)
            {
                const json_t *ag = json_object_get(it, "agency");
                const json_t *party = json_object_get(it, "party");
                char cut[S_CONCLUSION_CUT + 4];
                const char *concl = s_str(it, "conclusion");
                records_utf8_cut(cut, S_CONCLUSION_CUT, concl, strlen(concl));
                fputs("<tr><td>", f);
                html_escape(f, s_str(it, "decision_date"));
                fputs("</td><td>", f);
                html_escape(f, s_str(ag, "name")[0] ? s_str(ag, "name") : s_str(ag, "code"));
                fputs("</td><td>", f);
                html_escape(f, s_str(party, "name"));
                fputs("</td><td>", f);
                html_escape(f, s_str(it, "type_zh"));
                fprintf(f, "</td><td><a href=\"/decisions/%lld\">",
                        (long long)json_integer_value(json_object_get(it, "id")));
                html_escape(f, s_str(it, "decision_no"));
                fputs("</a></td><td>", f);
                html_escape(f, cut);
                if (strlen(cut) < strlen(concl))
                    fputs("…", f);
                fputs("</td></tr>\n", f);
            }
            fputs("</tbody></table>\n", f);
        } else
            fputs("<p id=\"none\">没有符合条件的公示记录。</p>\n", f);
        if (pages > 1 || q->page > 1) {
            fputs("<p class=\"pager\">", f);
            if (q->page > 1) {
                fputs("<a rel=\"prev\" href=\"", f);
                s_query_href(f, q, q->page - 1 <= pages || pages == 0 ? q->page - 1 : pages);
                fputs("\">上一页</a>", f);
            }
            if (q->page < pages && q->page < QUERY_PAGE_MAX) {
                fputs("<a rel=\"next\" href=\"", f);
                s_query_href(f, q, q->page + 1);
                fputs("\">下一页</a>", f);
            }
            fputs("</p>\n", f);
        }
    }
    html_page_end(f);
    return html_doc_close(&doc, NULL);
}

/* ---- A decision (事后公开) ----------------------------------------------------------- */

/* The 双公示 field names of sgs-fields.md, in the order shown. */
static const char *const s_sgs_zh[][2] = {
    {"CF_WSH", "行政处罚决定书文号"},
    {"CF_XDR_MC", "行政相对人名称"},
    {"CF_XDR_LB", "行政相对人类别"},
    {"CF_XDR_SHXYM", "统一社会信用代码"},
    {"CF_XDR_ZZJG", "组织机构代码"},
    {"CF_XDR_ZJLX", "证件类型"},
    {"CF_XDR_ZJHM", "证件号码"},
    {"CF_WFXW", "违法行为类型"},
    {"CF_SY", "违法事实"},
    {"CF_YJ", "处罚依据"},
    {"CF_CFLB", "处罚类别"},
    {"CF_NR", "处罚内容"},
    {"CF_NR_FK", "罚款金额（万元）"},
    {"CF_NR_WFFF", "没收违法所得、没收非法财物的金额（万元）"},
    {"CF_NR_ZKDX", "暂扣或吊销证照名称及编号"},
    {"CF_JDRQ", "处罚决定日期"},
    {"CF_YXQ", "处罚有效期"},
    {"CF_GSJZQ", "公示截止期"},
    {"CF_CFJG", "处罚机关"},
    {"CF_CFJGDM", "处罚机关统一社会信用代码"},
    {"CF_SJLY", "数据来源单位"},
    {"CF_SJLYDM", "数据来源单位统一社会信用代码"},
    {"XK_XKWS", "行政许可决定文书名称"},
    {"XK_WSH", "行政许可决定文书号"},
    {"XK_XDR_MC", "行政相对人名称"},
    {"XK_XDR_LB", "行政相对人类别"},
    {"XK_XDR_SHXYM", "统一社会信用代码"},
    {"XK_XDR_ZZJG", "组织机构代码"},
    {"XK_XDR_ZJLX", "证件类型"},
    {"XK_XDR_ZJHM", "证件号码"},
    {"XK_XKLB", "许可类别"},
    {"XK_XKZS", "许可证书名称"},
    {"XK_XKBH", "许可编号"},
    {"XK_NR", "许可内容"},
    {"XK_JDRQ", "许可决定日期"},
    {"XK_YXQZ", "有效期自"},
    {"XK_YXQZI", "有效期至"},
    {"XK_XKJG", "许可机关"},
    {"XK_XKJGDM", "许可机关统一社会信用代码"},
    {"XK_ZT", "当前状态"},
    {"XK_LYDW", "数据来源单位"},
    {"XK_LYDWDM", "数据来源单位统一社会信用代码"},
    {"BZ", "备注"},
};

/* A 双公示 code as the public reads it: 证件类型 and 许可类别 by name (sgs-fields.md). */
static const char *
s_sgs_value(const char *key, const char *v)
{
    static const char *const idtype[] = {"身份证", "护照", "港澳居民来往内地通行证",
                                         "台湾居民来往大陆通行证", "外国人永久居留身份证"};
    static const char *const xklb[] = {"普通", "特许", "认可", "核准", "登记", "其他"};
    size_t klen = strlen(key);
    bool zjlx = klen >= 4 && strcmp(key + klen - 4, "ZJLX") == 0;
    bool lb = strcmp(key, "XK_XKLB") == 0;
    if ((zjlx || lb) && v[0] == '0' && v[1] >= '1' && v[1] <= (zjlx ? '5' : '6') && !v[2])
        return zjlx ? idtype[v[1] - '1'] : xklb[v[1] - '1'];
    return v;
}

char *
page_decision(const json_t *rec)
{
    html_doc_t doc;
    if (html_doc_open(&doc) < 0)
        return NULL;
    FILE *f = doc.f;
    const json_t *ag = json_object_get(rec, "agency");
    const json_t *party = json_object_get(rec, "party");
    const char *agency_name = s_str(ag, "name")[0] ? s_str(ag, "name") : s_str(ag, "code");
    char title[300];
    snprintf(title, sizeof title, "%s %s", s_str(rec, "type_zh"), s_str(rec, "decision_no"));
    html_page_begin(f, title, HTML_NAV_SEARCH);
    fputs("<h1>", f);
    html_escape(f, s_str(rec, "type_zh"));
    fputs("决定公示</h1>\n<table id=\"decision\">\n", f);
    fputs("<tr><th>执法机关</th><td><a href=\"/agencies/", f);
    html_url_escape(f, s_str(ag, "code"));
    fputs("\">", f);
    html_escape(f, agency_name);
    fputs("</a></td></tr>\n", f);
    fputs("<tr><th>执法对象</th><td>", f);
    html_escape(f, s_str(party, "name"));
    fputs(strcmp(s_str(party, "kind"), "person") == 0 ? "（自然人）" : "（法人或其他组织）", f);
    fputs("</td></tr>\n", f);
    s_row(f, "证件号码", s_str(party, "id_no"));
    s_row(f, "执法类别", s_str(rec, "type_zh"));
    s_row(f, "执法结论", s_str(rec, "conclusion"));
    s_row(f, "决定书文号", s_str(rec, "decision_no"));
    s_row(f, "决定日期", s_str(rec, "decision_date"));
    s_row(f, "类别", s_str(rec, "category"));
    s_row(f, "法律依据", s_str(rec, "legal_basis"));
    const char *fine = s_str(rec, "fine"), *conf = s_str(rec, "confiscation");
    if (strcmp(s_str(rec, "type"), "penalty") == 0) {
        s_row(f, "罚款金额（万元）", fine);
        s_row(f, "没收金额（万元）", conf);
    }
    s_row(f, "公示时间", s_str(rec, "published_at"));
    fputs("</table>\n", f);
    const json_t *sgs = json_object_get(rec, "sgs");
    if (json_is_object(sgs) && json_object_size(sgs) > 0) {
        fputs("<h2>双公示信息</h2>\n<table id=\"sgs\">\n", f);
        for (size_t i = 0; i < sizeof s_sgs_zh / sizeof s_sgs_zh[0]; i++)
            s_row(f, s_sgs_zh[i][1], s_sgs_value(s_sgs_zh[i][0], s_str(sgs, s_sgs_zh[i][0])));
        /* Any field this list does not name yet is still shown, by its code. */
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)sgs, k, v)
        {
            bool named = false;
            for (size_t i = 0; i < sizeof s_sgs_zh / sizeof s_sgs_zh[0] && !named; i++)
                named = strcmp(k, s_sgs_zh[i][0]) == 0;
            if (!named && json_is_string(v) && json_string_value(v)[0]) {
                fputs("<tr><th>", f);
                html_escape(f, k);
                fputs("</th><td>", f);
                html_escape(f, json_string_value(v));
                fputs("</td></tr>\n", f);
            }
        }
        fputs("</table>\n", f);
    }
    fprintf(f,
            "<p class=\"note\"><a href=\"/api/v1/decisions/%lld\">JSON 数据</a>　"
            "对本决定不服的，可依法申请行政复议或者提起行政诉讼（见",
            (long long)json_integer_value(json_object_get(rec, "id")));
    fputs("<a href=\"/agencies/", f);
    html_url_escape(f, s_str(ag, "code"));
    fputs("#remedy\">执法机关页面的救济渠道</a>）。</p>\n", f);
    html_page_end(f);
    return html_doc_close(&doc, NULL);
}

char *
page_withdrawn(const char *id, const char *kind, const char *reason, const char *withdrawn_on)
{
    html_doc_t doc;
    if (html_doc_open(&doc) < 0)
        return NULL;
    FILE *f = doc.f;
    html_page_begin(f, "公示已撤回", HTML_NAV_SEARCH);
    fputs("<h1>该执法决定的公示已撤回</h1>\n<p class=\"err\" id=\"withdrawn\">编号 ", f);
    html_escape(f, id);
    fputs(" 的执法决定因", f);
    html_escape(f, page_withdraw_kind_zh(kind));
    fputs("已于 ", f);
    html_escape(f, withdrawn_on);
    fputs(" 撤回公示，原公示内容不再公开。</p>\n<table><tr><th>撤回原因</th><td>", f);
    html_escape(f, reason);
    fputs("</td></tr></table>\n<p class=\"note\">依据《中华人民共和国行政处罚法》第四十八条，"
          "行政处罚决定被依法变更、撤销、确认违法或者确认无效的，行政机关应当在三日内撤回"
          "行政处罚决定信息并公开说明理由。</p>\n<p><a href=\"/\">返回执法公示查询</a></p>\n",
          f);
    html_page_end(f);
    return html_doc_close(&doc, NULL);
}

/* ---- An agency (事前公开) ------------------------------------------------------------ */

static const char *
s_level_zh(const char *level)
{
    static const char *const map[][2] = {{"province", "省级"},
                                         {"city", "市级"},
                                         {"district", "区级"},
                                         {"county", "县级"},
                                         {"township", "乡镇级"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(level, map[i][0]) == 0)
            return map[i][1];
    return level;
}

/* A JSON value as text: strings as they are, numbers printed, anything else "". */
static void
s_value_text(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%g", json_real_value(v));
    else
        buf[0] = '\0';
}

static void
s_officers(FILE *f, const json_t *list, const char *today)
{
    fputs("<h2 id=\"officers\">执法人员</h2>\n", f);
    if (json_array_size(list) == 0) {
        fputs("<p>暂无公开的执法人员信息。</p>\n", f);
        return;
    }
    fputs("<table><thead><tr><th>姓名</th><th>执法证号</th><th>执法区域</th><th>有效期</th>"
          "<th>状态</th></tr></thead><tbody>\n",
          f);
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        const char *from = s_str(o, "valid_from"), *to = s_str(o, "valid_to");
        json_t *act = json_object_get(o, "active");
        bool valid = !json_is_false(act) && strcmp(today, from) >= 0 && strcmp(today, to) <= 0;
        fputs("<tr><td>", f);
        html_escape(f, s_str(o, "name"));
        fputs("</td><td>", f);
        html_escape(f, s_str(o, "cert_no"));
        fputs("</td><td>", f);
        html_escape(f, s_str(o, "area"));
        fputs("</td><td>", f);
        html_escape(f, from);
        fputs(" 至 ", f);
        html_escape(f, to);
        fputs(valid ? "</td><td class=\"ok\">有效</td></tr>\n"
                    : "</td><td class=\"bad\">已过期</td></tr>\n",
              f);
    }
    fputs("</tbody></table>\n", f);
}

static void
s_matters(FILE *f, const json_t *list)
{
    fputs("<h2 id=\"matters\">行政执法事项清单及服务指南</h2>\n", f);
    if (json_array_size(list) == 0) {
        fputs("<p>暂无公开的执法事项。</p>\n", f);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        char limit[64];
        s_value_text(json_object_get(m, "time_limit"), limit, sizeof limit);
        fputs("<section class=\"matter\"><h3>", f);
        html_escape(f, s_str(m, "name"));
        fputs("（", f);
        html_escape(f, s_str(m, "code"));
        fputs("）</h3>\n<table>\n", f);
        s_row(f, "事项类别", records_type_zh(s_str(m, "type")));
        s_row(f, "法律依据", s_str(m, "legal_basis"));
        s_row(f, "受理机构", s_str(m, "accepting_body"));
        s_row(f, "审批机构", s_str(m, "approving_body"));
        s_row(f, "受理条件", s_str(m, "conditions"));
        if (limit[0]) {
            fputs("<tr><th>法定办理时限</th><td>", f);
            html_escape(f, limit);
            fputs(strcmp(s_str(m, "time_limit_unit"), "workday") == 0 ? " 个工作日" : " 日", f);
            fputs("</td></tr>\n", f);
        }
        s_row(f, "服务指南", s_str(m, "guide"));
        fputs("</table></section>\n", f);
    }
}

static void
s_inspections(FILE *f, const json_t *list)
{
    fputs("<h2 id=\"inspections\">随机抽查事项清单（双随机、一公开）</h2>\n", f);
    if (json_array_size(list) == 0) {
        fputs("<p>暂无公开的随机抽查事项。</p>\n", f);
        return;
    }
    fputs("<table><thead><tr><th>抽查事项</th><th>抽查依据</th><th>抽查对象</th>"
          "<th>抽查方式</th></tr></thead><tbody>\n",
          f);
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        const char *cols[] = {"name", "basis", "subjects", "method"};
        fputs("<tr>", f);
        for (int c = 0; c < 4; c++) {
            fputs("<td>", f);
            html_escape(f, s_str(o, cols[c]));
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

static void
s_other_lists(FILE *f, const json_t *lists)
{
    static const char *const stage_zh[][2] = {{"start", "启动"},
                                              {"investigation", "调查取证"},
                                              {"review_decision", "审核决定"},
                                              {"service_execution", "送达执行"}};
    const json_t *av = json_object_get(lists, "av_matter");
    fputs("<h2 id=\"av\">音像记录事项清单</h2>\n", f);
    if (json_array_size(av) == 0)
        fputs("<p>暂无。</p>\n", f);
    else {
        fputs("<table><thead><tr><th>事项编码</th><th>全程音像记录的环节</th></tr></thead>"
              "<tbody>\n",
              f);
        size_t i, j;
        json_t *o, *st;
        json_array_foreach(av, i, o)
        {
            fputs("<tr><td>", f);
            html_escape(f, s_str(o, "matter_code"));
            fputs("</td><td>", f);
            json_array_foreach(json_object_get(o, "stages"), j, st)
            {
                const char *s = json_string_value(st) ? json_string_value(st) : "";
                const char *zh = s;
                for (size_t k = 0; k < sizeof stage_zh / sizeof stage_zh[0]; k++)
                    if (strcmp(s, stage_zh[k][0]) == 0)
                        zh = stage_zh[k][1];
                if (j)
                    fputs("、", f);
                html_escape(f, zh);
            }
            fputs("</td></tr>\n", f);
        }
        fputs("</tbody></table>\n", f);
    }
    const json_t *rules = json_object_get(lists, "review_rule");
    fputs("<h2 id=\"review\">重大执法决定法制审核目录清单</h2>\n", f);
    if (json_array_size(rules) == 0)
        fputs("<p>暂无。</p>\n", f);
    else {
        fputs("<ul>\n", f);
        size_t i;
        json_t *o;
        json_array_foreach(rules, i, o)
        {
            fputs("<li>", f);
            html_escape(f, s_str(o, "description"));
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    const json_t *disc = json_object_get(lists, "discretion");
    if (json_array_size(disc) > 0) {
        static const char *const circ[][2] = {
            {"minor", "轻微"}, {"general", "一般"}, {"serious", "严重"}};
        fputs("<h2 id=\"discretion\">行政处罚自由裁量基准</h2>\n<table><thead><tr><th>违法行为"
              "编码</th><th>情节</th><th>罚款（万元）</th><th>裁量依据</th></tr></thead><tbody>\n",
              f);
        size_t i;
        json_t *o;
        json_array_foreach(disc, i, o)
        {
            char lo[64], hi[64];
            s_value_text(json_object_get(o, "fine_min"), lo, sizeof lo);
            s_value_text(json_object_get(o, "fine_max"), hi, sizeof hi);
            const char *c = s_str(o, "circumstance");
            for (size_t k = 0; k < 3; k++)
                if (strcmp(c, circ[k][0]) == 0)
                    c = circ[k][1];
            fputs("<tr><td>", f);
            html_escape(f, s_str(o, "violation_code"));
            fputs("</td><td>", f);
            html_escape(f, c);
            fputs("</td><td>", f);
            html_escape(f, lo);
            fputs(" ～ ", f);
            html_escape(f, hi);
            fputs("</td><td>", f);
            html_escape(f, s_str(o, "basis"));
            fputs("</td></tr>\n", f);
        }
        fputs("</tbody></table>\n", f);
    }
}

char *
page_agency(const json_t *doc_json, const char *today)
{
    html_doc_t doc;
    if (html_doc_open(&doc) < 0)
        return NULL;
    FILE *f = doc.f;
    const json_t *ag = json_object_get(doc_json, "agency");
    const json_t *lists = json_object_get(doc_json, "lists");
    const char *code = s_str(doc_json, "code");
    const char *name = s_str(ag, "name")[0] ? s_str(ag, "name") : code;
    html_page_begin(f, name, HTML_NAV_NONE);
    fputs("<h1>", f);
    html_escape(f, name);
    fputs("</h1>\n<p class=\"note\">事前公开：执法主体、人员、职责、权限、依据、程序、"
          "监督方式和救济渠道。</p>\n<h2 id=\"agency\">执法主体</h2>\n<table>\n",
          f);
    s_row(f, "执法主体名称", name);
    s_row(f, "统一社会信用代码", code);
    s_row(f, "执法层级", s_level_zh(s_str(ag, "level")));
    s_row(f, "执法领域", s_str(ag, "domain"));
    if (s_str(ag, "head_name")[0]) {
        fputs("<tr><th>主要负责人</th><td>", f);
        html_escape(f, s_str(ag, "head_name"));
        if (s_str(ag, "head_title")[0]) {
            fputs("（", f);
            html_escape(f, s_str(ag, "head_title"));
            fputs("）", f);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n<p><a href=\"/?agency=", f);
    html_url_escape(f, code);
    fputs("\">查询本机关已公示的执法决定</a></p>\n", f);
    s_officers(f, json_object_get(lists, "officer"), today);
    s_matters(f, json_object_get(lists, "matter"));
    s_inspections(f, json_object_get(lists, "inspection_item"));
    s_other_lists(f, lists);
    fputs("<h2 id=\"supervision\">监督方式</h2>\n<ul><li>对执法人员的执法行为，可向本机关投诉、"
          "举报；</li><li>可向本级人民政府司法行政部门（行政执法监督机构）反映；</li>"
          "<li>可通过“执法证件查询”核实执法人员身份（<a href=\"/officers\">执法证件查询</a>）。"
          "</li></ul>\n<h2 id=\"remedy\">救济渠道</h2>\n<ul><li>行政复议：自知道或者应当知道该"
          "行政行为之日起六十日内，依《中华人民共和国行政复议法》向行政复议机关申请；</li>"
          "<li>行政诉讼：自知道或者应当知道作出行政行为之日起六个月内，依《中华人民共和国行政"
          "诉讼法》向人民法院提起；</li><li>行政处罚案件中，当事人依法享有陈述、申辩及要求听证"
          "的权利。</li></ul>\n<p class=\"note\"><a href=\"/api/v1/agencies/",
          f);
    html_url_escape(f, code);
    fputs("\">JSON 数据</a></p>\n", f);
    html_page_end(f);
    return html_doc_close(&doc, NULL);
}

/* ---- Certificate check (事中公示) ---------------------------------------------------- */

char *
page_officer(const char *cert, const json_t *result, const char *error_zh)
{
    html_doc_t doc;
    if (html_doc_open(&doc) < 0)
        return NULL;
    FILE *f = doc.f;
    html_page_begin(f, "执法证件查询", HTML_NAV_OFFICERS);
    fputs("<h1>执法证件查询</h1>\n<p class=\"note\">输入执法人员出示的执法证号，核实其执法资格。"
          "</p>\n",
          f);
    if (error_zh) {
        fputs("<p class=\"err\" id=\"error\">查询参数有误：", f);
        html_escape(f, error_zh);
        fputs("</p>\n", f);
    }
    fputs("<form class=\"q\" method=\"get\" action=\"/officers\" id=\"check\"><label>执法证号"
          "<input type=\"text\" name=\"cert_no\" maxlength=\"32\" value=\"",
          f);
    html_escape(f, cert);
    fputs("\"></label><button type=\"submit\">查询</button></form>\n", f);
    if (cert && result) {
        const char *status = s_str(result, "status");
        fputs("<section id=\"result\"><h2>查询结果</h2>\n", f);
        if (strcmp(status, "unknown") == 0) {
            fputs("<p class=\"bad\" id=\"status\">未查到</p><p>执法证号 ", f);
            html_escape(f, cert);
            fputs(" 未查到对应的执法人员。请核对证号，或向相关执法机关、司法行政部门核实。</p>\n",
                  f);
        } else {
            bool valid = strcmp(status, "valid") == 0;
            fputs(valid ? "<p class=\"ok\" id=\"status\">有效</p>\n"
                        : "<p class=\"bad\" id=\"status\">已过期</p>\n",
                  f);
            const json_t *ag = json_object_get(result, "agency");
            fputs("<table>\n", f);
            s_row(f, "执法证号", cert);
            s_row(f, "姓名", s_str(result, "name"));
            fputs("<tr><th>所属执法机关</th><td><a href=\"/agencies/", f);
            html_url_escape(f, s_str(ag, "code"));
            fputs("\">", f);
            html_escape(f, s_str(ag, "name")[0] ? s_str(ag, "name") : s_str(ag, "code"));
            fputs("</a></td></tr>\n", f);
            s_row(f, "执法区域", s_str(result, "area"));
            fputs("<tr><th>有效期</th><td>", f);
            html_escape(f, s_str(result, "valid_from"));
            fputs(" 至 ", f);
            html_escape(f, s_str(result, "valid_to"));
            fputs("</td></tr>\n</table>\n", f);
        }
        fputs("</section>\n", f);
    }
    html_page_end(f);
    return html_doc_close(&doc, NULL);
}
