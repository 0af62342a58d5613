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

bool mbx_kind_keyed_write(Mbx__Request__BodyCase c)
{
  switch (c) {
  case MBX__REQUEST__BODY_APPEND: case MBX__REQUEST__BODY_CREATE_ITEM:
  case MBX__REQUEST__BODY_SET_FLAGS: case MBX__REQUEST__BODY_MOVE:
  case MBX__REQUEST__BODY_COPY: case MBX__REQUEST__BODY_DELETE:
  case MBX__REQUEST__BODY_CREATE_FOLDER: case MBX__REQUEST__BODY_UPDATE_FOLDER:
  case MBX__REQUEST__BODY_DELETE_FOLDER: case MBX__REQUEST__BODY_EMPTY_FOLDER:
  case MBX__REQUEST__BODY_DELIVER:
    return true;
  default:
    return false;
  }
}
