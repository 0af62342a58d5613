/* kinds.c — item kinds and the folder classes that hold them: one answer for the
 * server's checks (store.c) and the cached client's (cache_ops.c, cache_apply.c). */
#include "kinds.h"

Mbx__FolderClass mbx_kind_folder_class(Mbx__ItemKind k)
{
  switch (k) {
  case MBX__ITEM_KIND__ITEM_EVENT:
    return MBX__FOLDER_CLASS__FOLDER_CALENDAR;
  case MBX__ITEM_KIND__ITEM_CONTACT:
    return MBX__FOLDER_CLASS__FOLDER_CONTACTS;
  case MBX__ITEM_KIND__ITEM_TASK:
    return MBX__FOLDER_CLASS__FOLDER_TASKS;
  case MBX__ITEM_KIND__ITEM_NOTE:
    return MBX__FOLDER_CLASS__FOLDER_NOTES;
  default:
    return MBX__FOLDER_CLASS__FOLDER_MAIL;
  }
}
