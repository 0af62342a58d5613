/* output.c — what mbx prints: a small JSON emitter that turns any protobuf-c message
 * into JSON by walking its descriptor (the --json format other tools depend on), and
 * the human-readable tables. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ======================================================================== */
/* JSON                                                                     */
/* ======================================================================== */

static int put(struct mbx_buf *o, const char *s) { return mbx_buf_append(o, s, strlen(s)); }

/* Length of a valid UTF-8 sequence at s (at most n bytes), or 0 if invalid
 * (overlong forms, surrogates and code points over U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  size_t len;
  uint32_t cp, min;
  if (c < 0x80)
    return 1;
  if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
  else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
  else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
  else return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

int mbxcli_json_string(struct mbx_buf *o, const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *)str;
  int rc = put(o, "\"");
  for (size_t i = 0; rc == 0 && i < n;) {
    unsigned char c = s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\'; esc[1] = (char)c; esc[2] = 0;
      rc = put(o, esc);
      i++;
    } else if (c < 0x20 || c == 0x7F) {
      switch (c) {
      case '\n': rc = put(o, "\\n"); break;
      case '\r': rc = put(o, "\\r"); break;
      case '\t': rc = put(o, "\\t"); break;
      case '\b': rc = put(o, "\\b"); break;
      case '\f': rc = put(o, "\\f"); break;
      default:
        snprintf(esc, sizeof(esc), "\\u%04x", c);
        rc = put(o, esc);
      }
      i++;
    } else {
      size_t len = utf8_len(s + i, n - i);
      if (len == 0) {
        rc = put(o, "\\ufffd"); /* invalid byte: replacement character */
        i++;
      } else {
        rc = mbx_buf_append(o, s + i, len);
        i += len;
      }
    }
  }
  return rc ? rc : put(o, "\"");
}

static int json_scalar(struct mbx_buf *o, const ProtobufCFieldDescriptor *fd, const void *p)
{
  char num[32];
  switch (fd->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    snprintf(num, sizeof(num), "%" PRId32, *(const int32_t *)p);
    return put(o, num);
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    snprintf(num, sizeof(num), "%" PRIu32, *(const uint32_t *)p);
    return put(o, num);
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    snprintf(num, sizeof(num), "%" PRId64, *(const int64_t *)p);
    return put(o, num);
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    snprintf(num, sizeof(num), "%" PRIu64, *(const uint64_t *)p);
    return put(o, num);
  case PROTOBUF_C_TYPE_FLOAT:
    snprintf(num, sizeof(num), "%.9g", (double)*(const float *)p);
    return put(o, num);
  case PROTOBUF_C_TYPE_DOUBLE:
    snprintf(num, sizeof(num), "%.17g", *(const double *)p);
    return put(o, num);
  case PROTOBUF_C_TYPE_BOOL:
    return put(o, *(const protobuf_c_boolean *)p ? "true" : "false");
  case PROTOBUF_C_TYPE_ENUM: {
    int v = *(const int *)p;
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value(fd->descriptor, v);
    if (ev)
      return mbxcli_json_string(o, ev->name, strlen(ev->name));
    snprintf(num, sizeof(num), "%d", v); /* a value newer than our .proto */
    return put(o, num);
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)p;
    return s ? mbxcli_json_string(o, s, strlen(s)) : put(o, "\"\"");
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *b = p;
    int rc = put(o, "\"");
    if (rc == 0)
      rc = mbxcli_b64url_encode(b->data, b->len, o);
    return rc ? rc : put(o, "\"");
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
    return m ? mbxcli_json_message(o, m) : put(o, "null");
  }
  }
  return MBX_EINVAL;
}

static size_t type_size(ProtobufCType t)
{
  switch (t) {
  case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_ENUM:
    return 4;
  case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
  }
  return 0;
}

/* Whether a non-repeated field is present (proto2 has_ flags, oneof case, pointers). */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
  const char *base = (const char *)m;
  const void *p = base + fd->offset;
  if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
  if (fd->type == PROTOBUF_C_TYPE_MESSAGE || fd->type == PROTOBUF_C_TYPE_STRING) {
    if (!*(void *const *)p)
      return false;
    if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
      return true;
    /* an unset optional string points at its default (if any): omit it */
    return !(fd->type == PROTOBUF_C_TYPE_STRING && fd->default_value &&
             *(void *const *)p == fd->default_value);
  }
  if (fd->label == PROTOBUF_C_LABEL_OPTIONAL)
    return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
  if (fd->label == PROTOBUF_C_LABEL_NONE) /* proto3 scalars: omit zero */
    return memcmp(p, "\0\0\0\0\0\0\0\0", type_size(fd->type)) != 0;
  return true;
}

int mbxcli_json_message(struct mbx_buf *o, const ProtobufCMessage *m)
{
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  int rc = put(o, "{");
  bool first = true;
  for (unsigned i = 0; rc == 0 && i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[i];
    size_t count = 0;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
      count = *(const size_t *)(base + fd->quantifier_offset);
      if (count == 0)
        continue; /* an empty repeated field is not on the wire either: omit */
    } else if (!field_present(m, fd)) {
      continue;
    }
    if (!first)
      rc = put(o, ",");
    first = false;
    if (rc == 0)
      rc = mbxcli_json_string(o, fd->name, strlen(fd->name));
    if (rc == 0)
      rc = put(o, ":");
    if (rc)
      break;
    if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
      rc = json_scalar(o, fd, base + fd->offset);
      continue;
    }
    const char *arr = *(char *const *)(base + fd->offset);
    size_t sz = type_size(fd->type);
    rc = put(o, "[");
    for (size_t k = 0; rc == 0 && k < count; k++) {
      if (k)
        rc = put(o, ",");
      if (rc == 0)
        rc = json_scalar(o, fd, arr + k * sz);
    }
    if (rc == 0)
      rc = put(o, "]");
  }
  return rc ? rc : put(o, "}");
}

/* ======================================================================== */
/* human-readable output                                                    */
/* ======================================================================== */

static const char *str_or(const char *s, const char *dflt) { return s && *s ? s : dflt; }

const char *mbxcli_item_title(const Mbx__Item *it)
{
  if (it->message && it->message->subject && *it->message->subject)
    return it->message->subject;
  if (it->event && it->event->subject && *it->event->subject)
    return it->event->subject;
  if (it->contact && it->contact->display_name && *it->contact->display_name)
    return it->contact->display_name;
  if (it->task && it->task->subject && *it->task->subject)
    return it->task->subject;
  if (it->note && it->note->subject && *it->note->subject)
    return it->note->subject;
  return "(no subject)";
}

/* Prints at most width display columns of s (counting UTF-8 lead bytes), replacing
 * control characters so that a hostile subject cannot drive the terminal. */
static void print_cell(FILE *f, const char *s, int width)
{
  int cols = 0;
  const unsigned char *p = (const unsigned char *)s;
  for (; *p && cols < width; p++) {
    if (*p < 0x20 || *p == 0x7F) {
      fputc('?', f);
      cols++;
      continue;
    }
    fputc(*p, f);
    if ((*p & 0xC0) != 0x80)
      cols++;
  }
  /* finish a truncated UTF-8 sequence */
  for (; *p && (*p & 0xC0) == 0x80; p++)
    fputc(*p, f);
  for (; cols < width; cols++)
    fputc(' ', f);
}

static void print_tree(FILE *f, const Mbx__FoldersResp *fr, uint64_t parent, int depth)
{
  if (depth > 64)
    return;
  for (size_t i = 0; i < fr->n_folders; i++) {
    const Mbx__Folder *x = fr->folders[i];
    uint64_t p = x->has_parent_id ? x->parent_id : 0;
    if (p != parent || x->id == parent)
      continue;
    char label[512];
    snprintf(label, sizeof(label), "%*s%s", depth * 2, "", str_or(x->name, "?"));
    fprintf(f, "%8" PRIu64 "  ", x->id);
    print_cell(f, label, 36);
    fprintf(f, " %7" PRIu64 " %7" PRIu64 "\n", x->unread_count, x->item_count);
    print_tree(f, fr, x->id, depth + 1);
  }
}

void mbxcli_print_folders(FILE *f, const Mbx__FoldersResp *fr)
{
  fprintf(f, "%8s  %-36s %7s %7s\n", "ID", "FOLDER", "UNREAD", "TOTAL");
  print_tree(f, fr, 0, 0);
}

void mbxcli_print_folder(FILE *f, const Mbx__FoldersResp *fr, const Mbx__Folder *folder)
{
  char path[1024];
  if (!fr || mbxc_folder_path(fr, folder, path, sizeof(path)) < 0)
    snprintf(path, sizeof(path), "%s", str_or(folder->name, "?"));
  fprintf(f, "folder %" PRIu64 " %s\n", folder->id, path);
}

static void item_row(FILE *f, const Mbx__Item *it)
{
  char date[32], flags[5];
  int64_t when = it->received_us;
  if (it->message && it->message->has_date_us && it->message->date_us)
    when = it->message->date_us;
  if (it->event && it->event->has_start_us)
    when = it->event->start_us;
  mbxcli_format_time(when, date, sizeof(date));
  mbxcli_flags_column(it->flags, flags);
  const char *from = "";
  if (it->message)
    from = str_or(it->message->from, "");
  else if (it->event)
    from = str_or(it->event->location, "");
  else if (it->contact && it->contact->n_emails)
    from = it->contact->emails[0];
  fprintf(f, "%8" PRIu64 "  %-20s  %s  ", it->id, date, flags);
  print_cell(f, from, 24);
  fputs("  ", f);
  print_cell(f, mbxcli_item_title(it), 40);
  fprintf(f, " %9" PRIu64 "\n", it->size);
}

void mbxcli_print_items(FILE *f, Mbx__Item *const *items, size_t n)
{
  fprintf(f, "%8s  %-20s  %-4s  %-24s  %-40s %9s\n", "ID", "DATE", "FLAG", "FROM",
          "SUBJECT", "SIZE");
  for (size_t i = 0; i < n; i++)
    item_row(f, items[i]);
}

void mbxcli_print_list(FILE *f, const Mbx__ListResp *lr)
{
  mbxcli_print_items(f, lr->items, lr->n_items);
  fprintf(f, "(%zu of %" PRIu64 ")\n", lr->n_items, lr->total);
}

static void print_strv(FILE *f, const char *label, char *const *v, size_t n)
{
  if (!n)
    return;
  fprintf(f, "%-10s ", label);
  for (size_t i = 0; i < n; i++)
    fprintf(f, "%s%s", i ? ", " : "", v[i]);
  fputc('\n', f);
}

static void print_time_line(FILE *f, const char *label, int64_t us)
{
  char t[32];
  mbxcli_format_time(us, t, sizeof(t));
  fprintf(f, "%-10s %s\n", label, t);
}

void mbxcli_print_item(FILE *f, const Mbx__ItemResp *ir, bool with_body)
{
  const Mbx__Item *it = ir->item;
  if (!it)
    return;
  char flags[5];
  mbxcli_flags_column(it->flags, flags);
  fprintf(f, "%-10s %" PRIu64 "\n%-10s %" PRIu64 "\n%-10s %s\n", "Id:", it->id, "Folder:",
          it->folder_id, "Flags:", flags);
  print_strv(f, "Categories:", it->categories, it->n_categories);
  if (it->message) {
    const Mbx__MessageSummary *m = it->message;
    fprintf(f, "%-10s %s\n", "From:", str_or(m->from, ""));
    print_strv(f, "To:", m->to, m->n_to);
    print_strv(f, "Cc:", m->cc, m->n_cc);
    fprintf(f, "%-10s %s\n%-10s %s\n", "Date:", str_or(m->date, ""), "Subject:",
            str_or(m->subject, ""));
    if (m->message_id)
      fprintf(f, "%-10s %s\n", "Message-ID:", m->message_id);
  }
  if (it->event) {
    const Mbx__Event *e = it->event;
    fprintf(f, "%-10s %s\n", "Subject:", str_or(e->subject, ""));
    print_time_line(f, "Start:", e->start_us);
    print_time_line(f, "End:", e->end_us);
    if (e->time_zone)
      fprintf(f, "%-10s %s\n", "Zone:", e->time_zone);
    if (e->location)
      fprintf(f, "%-10s %s\n", "Location:", e->location);
    print_strv(f, "Attendees:", e->attendees, e->n_attendees);
    if (e->recurrence_rule)
      fprintf(f, "%-10s %s\n", "Repeats:", e->recurrence_rule);
    if (e->has_reminder_minutes && e->reminder_minutes >= 0)
      fprintf(f, "%-10s %d min\n", "Reminder:", e->reminder_minutes);
  }
  if (it->contact) {
    const Mbx__Contact *c = it->contact;
    fprintf(f, "%-10s %s\n", "Name:", str_or(c->display_name, ""));
    print_strv(f, "Email:", c->emails, c->n_emails);
    print_strv(f, "Phone:", c->phones, c->n_phones);
    if (c->company)
      fprintf(f, "%-10s %s\n", "Company:", c->company);
  }
  if (it->task) {
    static const char *st[] = { "not-started", "in-progress", "completed", "waiting", "deferred" };
    const Mbx__Task *t = it->task;
    fprintf(f, "%-10s %s\n", "Subject:", str_or(t->subject, ""));
    if (t->due_us)
      print_time_line(f, "Due:", t->due_us);
    fprintf(f, "%-10s %s, %u%%\n", "Status:",
            (unsigned)t->status < 5 ? st[t->status] : "?", t->percent_complete);
  }
  if (it->note)
    fprintf(f, "%-10s %s\n", "Subject:", str_or(it->note->subject, ""));
  fprintf(f, "%-10s %" PRIu64 "\n", "Size:", it->size);
  if (with_body && ir->has_body) {
    fputc('\n', f);
    fwrite(ir->body.data, 1, ir->body.len, f);
    if (ir->body.len && ir->body.data[ir->body.len - 1] != '\n')
      fputc('\n', f);
  } else if (with_body) {
    const char *b = it->event ? it->event->body : it->task ? it->task->body
                  : it->note ? it->note->body : it->contact ? it->contact->notes : NULL;
    if (b)
      fprintf(f, "\n%s\n", b);
  }
  if (ir->has_quota_warning && ir->quota_warning)
    fprintf(stderr, "mbx: warning: the mailbox is over its quota warning level\n");
}

static void print_state(FILE *f, const ProtobufCBinaryData *state, bool more)
{
  struct mbx_buf b;
  mbx_buf_init(&b, 0);
  if (mbxcli_b64url_encode(state->data, state->len, &b) == 0)
    fprintf(f, "state: %s\n", b.data ? (char *)b.data : "");
  mbx_buf_free(&b);
  if (more)
    fprintf(f, "more: run again with --state to get the rest\n");
}

void mbxcli_print_sync(FILE *f, Mbx__Item *const *added, size_t na, Mbx__Item *const *changed,
                       size_t nc, const uint64_t *deleted, size_t nd,
                       const ProtobufCBinaryData *state, bool more)
{
  for (size_t i = 0; i < na; i++)
    fprintf(f, "+ %" PRIu64 " %s\n", added[i]->id, mbxcli_item_title(added[i]));
  for (size_t i = 0; i < nc; i++)
    fprintf(f, "~ %" PRIu64 " %s\n", changed[i]->id, mbxcli_item_title(changed[i]));
  for (size_t i = 0; i < nd; i++)
    fprintf(f, "- %" PRIu64 "\n", deleted[i]);
  print_state(f, state, more);
}

void mbxcli_print_sync_folders(FILE *f, const Mbx__SyncFoldersResp *sr)
{
  for (size_t i = 0; i < sr->n_added; i++)
    fprintf(f, "+ %" PRIu64 " %s\n", sr->added[i]->id, str_or(sr->added[i]->name, ""));
  for (size_t i = 0; i < sr->n_changed; i++)
    fprintf(f, "~ %" PRIu64 " %s\n", sr->changed[i]->id, str_or(sr->changed[i]->name, ""));
  for (size_t i = 0; i < sr->n_deleted; i++)
    fprintf(f, "- %" PRIu64 "\n", sr->deleted[i]);
  print_state(f, &sr->state, sr->has_more && sr->more);
}

void mbxcli_print_dbs(FILE *f, Mbx__DbInfo *const *dbs, size_t n)
{
  fprintf(f, "%-20s %-10s %6s %10s %9s %12s\n", "DATABASE", "ROLE", "EPOCH", "LSN",
          "MAILBOXES", "SIZE");
  for (size_t i = 0; i < n; i++) {
    const Mbx__DbInfo *d = dbs[i];
    fprintf(f, "%-20s %-10s %6" PRIu64 " %10" PRIu64 " %9" PRIu64 " %12" PRIu64 "\n",
            str_or(d->name, "?"), str_or(d->role, "-"), d->epoch, d->last_lsn, d->mailboxes,
            d->size_bytes);
  }
}

void mbxcli_print_mailboxes(FILE *f, Mbx__MailboxInfo *const *m, size_t n)
{
  fprintf(f, "%-32s %-16s %-24s %8s %12s\n", "ADDRESS", "DATABASE", "NAME", "ITEMS", "USED");
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "%-32s %-16s ", str_or(m[i]->address, "?"), str_or(m[i]->database, "-"));
    print_cell(f, str_or(m[i]->display_name, ""), 24);
    fprintf(f, " %8" PRIu64 " %12" PRIu64 "\n", m[i]->item_count, m[i]->used_bytes);
  }
}
