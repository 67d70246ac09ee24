// Per-input-shape state of a layer (kernel, output tensor),
// built the first time a shape is seen and reused after: training and
// evaluation batches each get theirs, and the steady-state step allocates
// nothing. Entries never move (std::map), so references stay valid.
#pragma once

#include <map>
#include <utility>

#include "trainer/core/tensor.h"

namespace rn {

template <class Plan>
class ShapeCache {
 public:
  // Returns the plan for `shape`, calling make() to build it if it is new.
  template <class Make>
  Plan& get(const Shape& shape, Make&& make) {
    auto it = plans_.find(shape);
    if (it == plans_.end()) it = plans_.emplace(shape, std::forward<Make>(make)()).first;
    return it->second;
  }

 private:
  std::map<Shape, Plan> plans_;
};

}  // namespace rn
