// SharedList<T>: a list of immutable objects held by shared pointers, read
// like a std::vector<T>. Copying a Bundle copies pointers, not 100,000
// rules: the daemon's next policy generation shares every Workload, External
// and Policy it did not re-read with the generation in force.
#pragma once

#include <cstddef>
#include <iterator>
#include <memory>
#include <vector>

namespace microseg::policy {

template <typename T>
class SharedList {
  using Items = std::vector<std::shared_ptr<const T>>;

 public:
  using value_type = T;

  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;
    const_iterator() = default;
    explicit const_iterator(typename Items::const_iterator it) : it_(it) {}
    const T& operator*() const { return **it_; }
    const T* operator->() const { return it_->get(); }
    const T& operator[](difference_type n) const { return *it_[n]; }
    const_iterator& operator++() {
      ++it_;
      return *this;
    }
    const_iterator operator++(int) { return const_iterator(it_++); }
    const_iterator& operator--() {
      --it_;
      return *this;
    }
    const_iterator operator--(int) { return const_iterator(it_--); }
    const_iterator& operator+=(difference_type n) {
      it_ += n;
      return *this;
    }
    const_iterator& operator-=(difference_type n) {
      it_ -= n;
      return *this;
    }
    friend const_iterator operator+(const_iterator a, difference_type n) { return a += n; }
    friend const_iterator operator+(difference_type n, const_iterator a) { return a += n; }
    friend const_iterator operator-(const_iterator a, difference_type n) { return a -= n; }
    friend difference_type operator-(const const_iterator& a, const const_iterator& b) { return a.it_ - b.it_; }
    friend bool operator==(const const_iterator& a, const const_iterator& b) { return a.it_ == b.it_; }
    friend auto operator<=>(const const_iterator& a, const const_iterator& b) { return a.it_ <=> b.it_; }
    typename Items::const_iterator base() const { return it_; }

   private:
    typename Items::const_iterator it_;
  };
  using iterator = const_iterator;

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const T& operator[](size_t i) const { return *items_[i]; }
  const T& front() const { return *items_.front(); }
  const T& back() const { return *items_.back(); }
  const_iterator begin() const { return const_iterator(items_.begin()); }
  const_iterator end() const { return const_iterator(items_.end()); }

  // The shared object itself (the same one in every copy of the list).
  const std::shared_ptr<const T>& shared(size_t i) const { return items_[i]; }

  // The same objects (not merely equal ones) in the same order.
  bool sameObjects(const SharedList& other) const { return items_ == other.items_; }

  void push_back(T v) { items_.push_back(std::make_shared<const T>(std::move(v))); }
  void push_back(std::shared_ptr<const T> p) { items_.push_back(std::move(p)); }
  const_iterator erase(const_iterator pos) { return const_iterator(items_.erase(pos.base())); }
  void reserve(size_t n) { items_.reserve(n); }
  void clear() { items_.clear(); }

 private:
  Items items_;
};

}  // namespace microseg::policy
