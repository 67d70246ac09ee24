#include "trainer/infer/predictions.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "data/shard_format.h"
#include "trainer/core/error.h"

namespace rn {

std::vector<ClassScore> top_k(const float* logits, int64_t classes, int k) {
  const double zmax = *std::max_element(logits, logits + classes);
  std::vector<ClassScore> all(size_t(classes), ClassScore{});
  double sum = 0;
  for (int64_t j = 0; j < classes; ++j) {
    all[size_t(j)] = {j, std::exp(double(logits[j]) - zmax)};
    sum += all[size_t(j)].prob;
  }
  for (auto& c : all) c.prob /= sum;
  const size_t n = size_t(std::clamp<int64_t>(k, 0, classes));
  std::partial_sort(all.begin(), all.begin() + long(n), all.end(), [](const ClassScore& a, const ClassScore& b) {
    return a.prob != b.prob ? a.prob > b.prob : a.index < b.index;
  });
  all.resize(n);
  return all;
}

std::vector<std::string> class_names_for(const CheckpointInfo& ck, const std::string& classes_dir) {
  if (classes_dir.empty()) {
    if (int64_t(ck.state.class_names.size()) == ck.num_classes) return ck.state.class_names;
    return {};  // none stored (synthetic data, imported weights), or not for these labels
  }
  const shards::Manifest m = shards::read_manifest(classes_dir);
  if (m.num_classes != ck.num_classes)
    throw UserError(
        fmt::format("--classes {} has {} classes but checkpoint {} has {}; give the dataset the model "
                    "was trained on",
                    classes_dir, m.num_classes, ck.path, ck.num_classes));
  return m.class_names;
}

std::string class_label(const std::vector<std::string>& names, int64_t index) {
  return index < int64_t(names.size()) ? names[size_t(index)] : fmt::format("class {}", index);
}

std::string format_text(const std::string& image, const std::vector<ClassScore>& top,
                        const std::vector<std::string>& names) {
  std::string s = image + "\n";
  for (size_t r = 0; r < top.size(); ++r)
    s += fmt::format("  {}. {:.4f}  {}\n", r + 1, top[r].prob, class_label(names, top[r].index));
  return s;
}

nlohmann::json to_json(const std::string& image, const std::vector<ClassScore>& top,
                       const std::vector<std::string>& names) {
  nlohmann::json list = nlohmann::json::array();
  for (size_t r = 0; r < top.size(); ++r)
    list.push_back(
        {{"rank", r + 1}, {"class", top[r].index}, {"name", class_label(names, top[r].index)}, {"prob", top[r].prob}});
  return {{"image", image}, {"top", list}};
}

}  // namespace rn
