/* error.c — mbx_strerror and friends over the MBX_ERRORS table. */
#include "mbx_error.h"

const char *mbx_strerror(int err)
{
  switch (err) {
  case 0: return "success";
#define X(name, num, msg) case MBX_##name: return msg;
  MBX_ERRORS(X)
#undef X
  default: return "unknown error";
  }
}

const char *mbx_strerror_name(int err)
{
  switch (err) {
  case 0: return "OK";
#define X(name, num, msg) case MBX_##name: return #name;
  MBX_ERRORS(X)
#undef X
  default: return "E?";
  }
}

int mbx_error_from_wire(unsigned code)
{
  switch (code) {
#define X(name, num, msg) case num: return MBX_##name;
  MBX_ERRORS(X)
#undef X
  default: return MBX_EPROTO;
  }
}
