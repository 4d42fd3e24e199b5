#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {

absl::string_view CtrlTypeName(uint32_t type) {
  switch (type) {
    case kCmdGetDisplayInfo:
      return "GET_DISPLAY_INFO";
    case kCmdResourceCreate2d:
      return "RESOURCE_CREATE_2D";
    case kCmdResourceUnref:
      return "RESOURCE_UNREF";
    case kCmdSetScanout:
      return "SET_SCANOUT";
    case kCmdResourceFlush:
      return "RESOURCE_FLUSH";
    case kCmdTransferToHost2d:
      return "TRANSFER_TO_HOST_2D";
    case kCmdResourceAttachBacking:
      return "RESOURCE_ATTACH_BACKING";
    case kCmdResourceDetachBacking:
      return "RESOURCE_DETACH_BACKING";
    case kCmdGetCapsetInfo:
      return "GET_CAPSET_INFO";
    case kCmdGetCapset:
      return "GET_CAPSET";
    case kCmdGetEdid:
      return "GET_EDID";
    case kCmdResourceAssignUuid:
      return "RESOURCE_ASSIGN_UUID";
    case kCmdResourceCreateBlob:
      return "RESOURCE_CREATE_BLOB";
    case kCmdSetScanoutBlob:
      return "SET_SCANOUT_BLOB";
    case kCmdCtxCreate:
      return "CTX_CREATE";
    case kCmdCtxDestroy:
      return "CTX_DESTROY";
    case kCmdCtxAttachResource:
      return "CTX_ATTACH_RESOURCE";
    case kCmdCtxDetachResource:
      return "CTX_DETACH_RESOURCE";
    case kCmdResourceCreate3d:
      return "RESOURCE_CREATE_3D";
    case kCmdTransferToHost3d:
      return "TRANSFER_TO_HOST_3D";
    case kCmdTransferFromHost3d:
      return "TRANSFER_FROM_HOST_3D";
    case kCmdSubmit3d:
      return "SUBMIT_3D";
    case kCmdResourceMapBlob:
      return "RESOURCE_MAP_BLOB";
    case kCmdResourceUnmapBlob:
      return "RESOURCE_UNMAP_BLOB";
    case kCmdUpdateCursor:
      return "UPDATE_CURSOR";
    case kCmdMoveCursor:
      return "MOVE_CURSOR";
    case kRespOkNodata:
      return "RESP_OK_NODATA";
    case kRespOkDisplayInfo:
      return "RESP_OK_DISPLAY_INFO";
    case kRespOkCapsetInfo:
      return "RESP_OK_CAPSET_INFO";
    case kRespOkCapset:
      return "RESP_OK_CAPSET";
    case kRespOkEdid:
      return "RESP_OK_EDID";
    case kRespOkResourceUuid:
      return "RESP_OK_RESOURCE_UUID";
    case kRespOkMapInfo:
      return "RESP_OK_MAP_INFO";
    case kRespErrUnspec:
      return "ERR_UNSPEC";
    case kRespErrOutOfMemory:
      return "ERR_OUT_OF_MEMORY";
    case kRespErrInvalidScanoutId:
      return "ERR_INVALID_SCANOUT_ID";
    case kRespErrInvalidResourceId:
      return "ERR_INVALID_RESOURCE_ID";
    case kRespErrInvalidContextId:
      return "ERR_INVALID_CONTEXT_ID";
    case kRespErrInvalidParameter:
      return "ERR_INVALID_PARAMETER";
  }
  return "?";
}

absl::string_view FormatName(uint32_t format) {
  switch (format) {
    case kFormatB8G8R8A8:
      return "B8G8R8A8";
    case kFormatB8G8R8X8:
      return "B8G8R8X8";
    case kFormatA8R8G8B8:
      return "A8R8G8B8";
    case kFormatX8R8G8B8:
      return "X8R8G8B8";
    case kFormatR8G8B8A8:
      return "R8G8B8A8";
    case kFormatX8B8G8R8:
      return "X8B8G8R8";
    case kFormatA8B8G8R8:
      return "A8B8G8R8";
    case kFormatR8G8B8X8:
      return "R8G8B8X8";
  }
  return "?";
}

}  // namespace vhost::gpu
