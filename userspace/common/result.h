// Result<T>: a value or an Error that names the operation, the object and the
// errno, so every failure reads "<op> of '<object>' failed: <strerror>".
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace microseg {

struct Error {
  std::string op;      // what was attempted: "update of map", "attach", "open"
  std::string object;  // on what: "ms_policy_0", "/sys/fs/cgroup/unified/x"
  int err = 0;         // errno (positive), 0 if not a system error
  std::string detail;  // extra human text (optional)

  std::string str() const {
    std::string s = op;
    if (!object.empty()) s += " of '" + object + "'";
    s += " failed";
    if (err != 0) s += std::string(": ") + std::strerror(err);
    if (!detail.empty()) s += (err != 0 ? " (" + detail + ")" : ": " + detail);
    return s;
  }
};

inline Error sysError(std::string op, std::string object, int err = errno) {
  return Error{std::move(op), std::move(object), err < 0 ? -err : err, {}};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}      // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool ok_ = true;
};

}  // namespace microseg
