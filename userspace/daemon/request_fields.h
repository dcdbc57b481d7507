// The optional fields of a control request's body, checked: a field of the
// wrong type or out of range is a bad_request naming the field.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "control/protocol.h"

namespace microseg::daemon {

inline std::string optString(const nlohmann::json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return {};
  if (!body[key].is_string()) {
    throw control::ControlError(control::kErrBadRequest, std::string("field '") + key + "' must be a string", {});
  }
  return body[key].get<std::string>();
}

inline int64_t optInt(const nlohmann::json& body, const char* key, int64_t lo, int64_t hi, int64_t dflt) {
  if (!body.contains(key) || body[key].is_null()) return dflt;
  if (!body[key].is_number_integer()) {
    throw control::ControlError(control::kErrBadRequest, std::string("field '") + key + "' must be an integer", {});
  }
  const int64_t v = body[key].get<int64_t>();
  if (v < lo || v > hi) {
    throw control::ControlError(control::kErrBadRequest, std::string("field '") + key + "' is out of range (" +
                                                             std::to_string(lo) + "-" + std::to_string(hi) + ")",
                                {});
  }
  return v;
}

inline bool optBool(const nlohmann::json& body, const char* key) {
  if (!body.contains(key) || body[key].is_null()) return false;
  if (!body[key].is_boolean()) {
    throw control::ControlError(control::kErrBadRequest, std::string("field '") + key + "' must be true or false", {});
  }
  return body[key].get<bool>();
}

}  // namespace microseg::daemon
